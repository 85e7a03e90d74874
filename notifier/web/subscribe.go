package web

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/varsel/varsel/notifier"
	"github.com/varsel/varsel/notifier/ratelimit"
	"github.com/varsel/varsel/notifier/render"
)

// Errors of confirmation links.
var (
	// errLinkExpired means a genuine confirmation link is older than
	// render.ConfirmLinkValidity.
	errLinkExpired = errors.New("confirmation link expired")
)

// Sign-up limits. A client address may ask for signupIPBurst confirmation
// emails at once and one more every signupIPEvery; one email address gets
// at most signupToBurst at once and one more every signupToEvery, whoever
// asks, so the form cannot be used to flood someone's inbox. Each limiter
// remembers at most signupKeys keys.
const (
	signupIPBurst = 5
	signupIPEvery = 2 * time.Minute
	signupToBurst = 3
	signupToEvery = 10 * time.Minute
	signupKeys    = 4096
	// maxTokenLen bounds what is verified: a real token is about 250 bytes.
	maxTokenLen = 1024
	// sendTimeout bounds sending one confirmation email.
	sendTimeout = 30 * time.Second
)

// pending is a sign-up waiting for its confirmation link to be opened. It
// travels inside the link's signed token, so nothing is stored until the
// address is confirmed. The short JSON names keep the link short.
type pending struct {
	Email    string `json:"e"`
	Phone    string `json:"p,omitempty"`
	Locale   string `json:"l"`
	Timezone string `json:"z,omitempty"`
	Issued   int64  `json:"i"` // Unix seconds
	Expires  int64  `json:"x"` // Unix seconds
}

// signPending returns the token of a confirmation link. It is a
// notifier.Tokens token with purpose PurposeConfirm whose SubscriberID is
// the pending sign-up as base64url JSON: the HMAC covers purpose, data and
// expiry, so the link can be neither forged nor altered (nor an
// unsubscribe token replayed as one), under the one VARSEL_SECRET key.
func signPending(t *notifier.Tokens, p pending) string {
	b, _ := json.Marshal(p) // plain strings and integers: cannot fail
	return t.Sign(notifier.TokenClaims{Purpose: notifier.PurposeConfirm,
		SubscriberID: base64.RawURLEncoding.EncodeToString(b), Channel: notifier.Email})
}

// verifyPending checks a confirmation token in constant time and returns
// the sign-up it carries; errLinkExpired once it is past its expiry, an
// error wrapping notifier.ErrBadToken when it is not genuine.
func verifyPending(t *notifier.Tokens, token string, now time.Time) (pending, error) {
	var p pending
	if len(token) > maxTokenLen {
		return p, notifier.ErrBadToken
	}
	c, err := t.Verify(token)
	if err != nil {
		return p, err
	}
	if c.Purpose != notifier.PurposeConfirm || c.Channel != notifier.Email {
		return p, notifier.ErrBadToken
	}
	b, err := base64.RawURLEncoding.DecodeString(c.SubscriberID)
	if err != nil || json.Unmarshal(b, &p) != nil || p.Email == "" || p.Expires == 0 {
		return pending{}, notifier.ErrBadToken
	}
	if !now.Before(time.Unix(p.Expires, 0)) {
		return pending{}, errLinkExpired
	}
	return p, nil
}

// SubscriberID is the id of the subscriber who signs up on the status page
// with the address email: "web-" and the first 16 hex digits of SHA-256 of
// the trimmed, lower-cased address. Deriving it from the address makes
// confirming twice, or signing up again, update the same subscriber.
func SubscriberID(email string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(email))))
	return "web-" + hex.EncodeToString(sum[:8])
}

// subscribeView is the sign-up page in one of its states.
type subscribeView struct {
	reader
	PublicURL, Action string
	// State is "form", "sent", "confirmed", "invalid", "expired",
	// "unavailable" or "toomany".
	State string
	// The form's values, shown again with the problems (message ids).
	Email, Phone           string
	EmailError, PhoneError string
}

func (s *server) subscribePage(w http.ResponseWriter, status int, v *subscribeView) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, "subscribe.html", v); err != nil {
		s.logger.Error("render page", "page", "subscribe.html", "error", err)
	}
}

// subscribeForm shows the sign-up form in the reader's language.
func (s *server) subscribeForm(w http.ResponseWriter, r *http.Request) {
	v := &subscribeView{reader: s.readerFor(r), PublicURL: s.cfg.PublicURL, Action: r.URL.Path, State: "form"}
	if s.deps.SendEmail == nil {
		v.State = "unavailable"
	}
	s.subscribePage(w, http.StatusOK, v)
}

// subscribe takes a sign-up and emails a confirmation link; it creates no
// subscriber. Its answer is the same whether or not the address is
// subscribed already, so the form tells nobody who is.
func (s *server) subscribe(w http.ResponseWriter, r *http.Request) {
	v := &subscribeView{reader: s.readerFor(r), PublicURL: s.cfg.PublicURL, Action: r.URL.Path, State: "form"}
	if s.deps.SendEmail == nil {
		v.State = "unavailable"
		s.subscribePage(w, http.StatusServiceUnavailable, v)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil {
		s.subscribePage(w, http.StatusBadRequest, v)
		return
	}
	if r.PostForm.Get("List-Unsubscribe") == "One-Click" {
		// A mail provider's RFC 8058 POST to the confirmation email's
		// List-Unsubscribe URL: nothing is subscribed, nothing to do.
		s.subscribePage(w, http.StatusOK, v)
		return
	}
	if base := notifier.BaseLanguage(r.PostForm.Get("locale")); base != "" {
		v.Locale = base
	}
	now := s.now()
	if !s.signupIP.Allow(ratelimit.ClientKey(r), now) {
		v.State = "toomany"
		w.Header().Set("Retry-After", strconv.Itoa(int(signupIPEvery/time.Second)))
		s.subscribePage(w, http.StatusTooManyRequests, v)
		return
	}
	sub := notifier.Subscriber{Email: r.PostForm.Get("email"), Phone: r.PostForm.Get("phone"), Locale: v.Locale}
	_ = sub.Normalize() // no webhook: cannot fail
	v.Email, v.Phone = sub.Email, r.PostForm.Get("phone")
	sub.ID = SubscriberID(sub.Email)
	var verr *notifier.ValidationError
	if err := sub.Validate(); errors.As(err, &verr) {
		for _, p := range verr.Problems {
			switch p.Field {
			case "email":
				v.EmailError = "PageSubscribeEmailInvalid"
			case "phone":
				v.PhoneError = "PageSubscribePhoneInvalid"
			}
		}
	}
	if sub.Email == "" || len(sub.Email) > 254 {
		v.EmailError = "PageSubscribeEmailInvalid" // a phone alone cannot be confirmed by email
	}
	if v.EmailError != "" || v.PhoneError != "" {
		s.subscribePage(w, http.StatusBadRequest, v)
		return
	}
	to := notifier.MaskEmail(sub.Email)
	v.State, v.Email, v.Phone = "sent", "", ""
	if !s.signupTo.Allow(strings.ToLower(sub.Email), now) {
		// Same answer as a sent link: the limit is about the address, and
		// saying so would tell who asked for it recently.
		s.logger.Info("sign-up not sent: address asked too often", "to", to)
		s.subscribePage(w, http.StatusOK, v)
		return
	}
	p := pending{Email: sub.Email, Phone: sub.Phone, Locale: v.Locale, Issued: now.Unix(),
		Expires: now.Add(render.ConfirmLinkValidity).Unix()}
	if v.Zone != s.cfg.DefaultTimezone {
		p.Timezone = v.Zone
	}
	link := s.cfg.PublicURL + "/confirm/" + signPending(s.deps.Tokens, p)
	m, err := s.deps.Localizer.ConfirmSubscription(sub.Email, v.Locale, link)
	if err == nil {
		ctx, cancel := context.WithTimeout(r.Context(), sendTimeout)
		err = s.deps.SendEmail(ctx, sub.Email, m)
		cancel()
	}
	if err != nil {
		s.logger.Error("sign-up confirmation not sent", "to", to, "error", err)
		v.State = "unavailable"
		s.subscribePage(w, http.StatusServiceUnavailable, v)
		return
	}
	s.logger.Info("sign-up confirmation sent", "to", to, "locale", v.Locale, "sms", sub.Phone != "")
	s.subscribePage(w, http.StatusOK, v)
}

// confirm opens a confirmation link: it creates the subscriber, or updates
// the one with the same address, and is idempotent. A HEAD request (link
// checkers) changes nothing.
func (s *server) confirm(w http.ResponseWriter, r *http.Request) {
	v := &subscribeView{reader: s.readerFor(r), PublicURL: s.cfg.PublicURL, Action: "/subscribe", State: "confirmed"}
	p, err := verifyPending(s.deps.Tokens, r.PathValue("token"), s.now())
	if err != nil {
		v.State = "invalid"
		if errors.Is(err, errLinkExpired) {
			v.State = "expired"
		}
		s.subscribePage(w, http.StatusBadRequest, v)
		return
	}
	if r.URL.Query().Get("lang") == "" {
		v.Locale = p.Locale
	}
	if r.Method == http.MethodHead {
		s.subscribePage(w, http.StatusOK, v)
		return
	}
	sub, err := s.confirmPending(r.Context(), p)
	if err != nil {
		s.logger.Error("confirm sign-up", "to", notifier.MaskEmail(p.Email), "error", err)
		v.State = "unavailable"
		s.subscribePage(w, http.StatusServiceUnavailable, v)
		return
	}
	s.logger.Info("sign-up confirmed", "subscriber", sub.ID, "to", notifier.MaskEmail(p.Email), "locale", sub.Locale)
	s.subscribePage(w, http.StatusOK, v)
}

// confirmPending creates or updates the subscriber of a confirmed sign-up.
// An existing subscriber keeps their name, components, webhook, time zone
// (when set) and suppressions, except an email opt-out made before this
// sign-up was asked for: asking again lifts it. An opt-out made after
// stays, so an old link cannot undo an unsubscribe.
func (s *server) confirmPending(ctx context.Context, p pending) (*notifier.Subscriber, error) {
	id := SubscriberID(p.Email)
	asked := time.Unix(p.Issued, 0)
	sub, err := s.deps.Subscribers.Update(ctx, id, func(sub *notifier.Subscriber) error {
		sub.Email, sub.Locale = p.Email, p.Locale
		if p.Phone != "" {
			sub.Phone = p.Phone
		}
		if sub.Timezone == "" {
			sub.Timezone = p.Timezone
		}
		if why, ok := sub.Suppressed[notifier.Email]; ok && why.Reason == notifier.ReasonOptedOut && why.At.Before(asked) {
			delete(sub.Suppressed, notifier.Email)
		}
		return sub.Validate()
	})
	if !errors.Is(err, notifier.ErrNotFound) {
		return sub, err
	}
	sub = &notifier.Subscriber{ID: id, Email: p.Email, Phone: p.Phone, Locale: p.Locale, Timezone: p.Timezone}
	if err := sub.Validate(); err != nil {
		return nil, fmt.Errorf("new subscriber: %w", err)
	}
	if err := s.deps.Subscribers.Put(ctx, sub); err != nil {
		return nil, err
	}
	return sub, nil
}
