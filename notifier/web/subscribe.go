package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
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
	signupKeys    = 65536
	// maxTokenLen bounds what is verified: a real token is about 250
	// bytes, more with the components chosen on the form.
	maxTokenLen = 4096
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
	// Components chosen on the form, comma-separated; "" means all.
	Components string `json:"k,omitempty"`
	Issued     int64  `json:"i"` // Unix seconds
	Expires    int64  `json:"x"` // Unix seconds
}

// components returns the ids chosen on the form; nil for all.
func (p pending) components() []string {
	if p.Components == "" {
		return nil
	}
	return strings.Split(p.Components, ",")
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
	// "unavailable" or "toomany"; for a phone number, "verify" (the code
	// form), "verified", "codelocked" or "codeexpired"; for a cancel link
	// (signupcancel.go), "cancel" (the question), "cancelled", and
	// "withdrawn" for a confirmation link of a cancelled sign-up.
	State string
	// Days is how long a cancelled sign-up's address gets no sign-up
	// email.
	Days int
	// Token is the confirmation link's token, which the code form sends
	// back; Masked is the number the code went to, masked.
	Token, Masked string
	// CodeError is a message id for a code that was not right.
	CodeError string
	// The form's values, shown again with the problems (message ids).
	Email, Phone           string
	EmailError, PhoneError string
	// The time zone and the components offered (see signupChoices), and
	// their problems (message ids).
	Timezone                       string
	Zones                          []string
	Components                     []choice
	AllComponents                  bool
	TimezoneError, ComponentsError string
}

// signupChoices offers the time zones (v.Timezone, else the page's zone,
// selected) and the components (ids ticked; all when ids is empty) on
// the form.
func (s *server) signupChoices(v *subscribeView, ids []string) {
	if v.Timezone == "" {
		v.Timezone = v.Zone
	}
	v.Zones = zoneChoices(v.Timezone, s.cfg.DefaultTimezone)
	v.Components = s.componentChoices(v.Locale, nil)
	for i := range v.Components {
		v.Components[i].On = slices.Contains(ids, v.Components[i].ID)
	}
	v.AllComponents = len(ids) == 0
}

func (s *server) subscribePage(w http.ResponseWriter, status int, v *subscribeView) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if (v.State == "form" || v.State == "toomany") && v.Zones == nil {
		s.signupChoices(v, nil)
	}
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, "subscribe.html", v); err != nil {
		s.logger.Error("render page", "page", "subscribe.html", "error", err)
	}
}

// subscribeForm shows the sign-up form in the reader's language.
func (s *server) subscribeForm(w http.ResponseWriter, r *http.Request) {
	v := &subscribeView{reader: s.readerFor(r), PublicURL: s.cfg.PublicURL, Action: r.URL.Path, State: "form"}
	if token := r.URL.Query().Get("confirm"); token != "" {
		s.phoneCodeForm(w, r, v, token)
		return
	}
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
		// A mail provider's RFC 8058 POST to the List-Unsubscribe URL of
		// a confirmation email sent before it named the cancel link
		// (/subscribe/cancel/{token}): nothing to do.
		s.subscribePage(w, http.StatusOK, v)
		return
	}
	if base := notifier.BaseLanguage(r.PostForm.Get("locale")); base != "" {
		v.Locale = base
	}
	if token := r.PostForm.Get("confirm"); token != "" {
		s.checkPhoneCode(w, r, v, token, r.PostForm.Get("code"))
		return
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
	if z := strings.TrimSpace(r.PostForm.Get("timezone")); z != "" {
		v.Timezone = z
		if validZone(z) {
			v.Zone = z
		} else {
			v.TimezoneError = "PrefTimezoneInvalid"
		}
	}
	var components []string
	if vs, ok := r.PostForm["components"]; ok {
		components, v.ComponentsError = pickComponents(vs, s.componentChoices(v.Locale, nil))
	}
	if v.EmailError != "" || v.PhoneError != "" || v.TimezoneError != "" || v.ComponentsError != "" {
		if v.TimezoneError != "" {
			v.Timezone = ""
		}
		s.signupChoices(v, components)
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
	if at, err := s.declinedAt(r.Context(), sub.Email); err != nil {
		s.logger.Error("sign-up not sent: read declined addresses", "to", to, "error", err)
		v.State = "unavailable"
		s.subscribePage(w, http.StatusServiceUnavailable, v)
		return
	} else if !at.IsZero() {
		// Same answer as a sent link: its owner said no from an earlier
		// confirmation email, and saying so would tell who.
		s.logger.Info("sign-up not sent: the address cancelled a sign-up", "to", to, "declined", at.UTC().Format(time.RFC3339))
		s.subscribePage(w, http.StatusOK, v)
		return
	}
	p := pending{Email: sub.Email, Phone: sub.Phone, Locale: v.Locale, Components: strings.Join(components, ","), Issued: now.Unix(),
		Expires: now.Add(render.ConfirmLinkValidity).Unix()}
	if v.Zone != s.cfg.DefaultTimezone {
		p.Timezone = v.Zone
	}
	link := s.cfg.PublicURL + "/confirm/" + signPending(s.deps.Tokens, p)
	cancel := s.cfg.PublicURL + "/subscribe/cancel/" + signCancel(s.deps.Tokens, sub.Email, v.Locale)
	m, err := s.deps.Localizer.ConfirmSubscription(sub.Email, v.Locale, link, cancel)
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
	if at, err := s.declinedAt(r.Context(), p.Email); err != nil {
		s.logger.Error("confirm sign-up: read declined addresses", "to", notifier.MaskEmail(p.Email), "error", err)
		v.State = "unavailable"
		s.subscribePage(w, http.StatusServiceUnavailable, v)
		return
	} else if !at.IsZero() && !at.Before(time.Unix(p.Issued, 0)) {
		// Cancelled from this or a later confirmation email.
		v.State = "withdrawn"
		s.subscribePage(w, http.StatusBadRequest, v)
		return
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
	if sub.PhoneUnverified && sub.Phone == p.Phone {
		if err := s.sendPhoneCode(r.Context(), sub, v.Locale); err != nil {
			s.logger.Error("sign-up phone code not sent", "subscriber", sub.ID, "to", notifier.MaskPhone(sub.Phone), "error", notifier.ScrubError(err))
			v.State = "unavailable"
			s.subscribePage(w, http.StatusServiceUnavailable, v)
			return
		}
		v.State, v.Token, v.Masked, v.Action = "verify", r.PathValue("token"), notifier.MaskPhone(sub.Phone), "/subscribe"
	}
	s.subscribePage(w, http.StatusOK, v)
}

// confirmPending creates or updates the subscriber of a confirmed sign-up.
// An existing subscriber keeps their name, components, webhook, time zone
// (when set) and suppressions, except an email opt-out made before this
// sign-up was asked for: asking again lifts it. An opt-out made after
// stays, so an old link cannot undo an unsubscribe.
//
// The subscriber is the one the address belongs to, found in the store's
// address index, so an address an operator imported gets no second
// subscriber; else the one with SubscriberID(p.Email). A phone number new
// to the subscriber is stored unverified: SMS waits for its code.
func (s *server) confirmPending(ctx context.Context, p pending) (*notifier.Subscriber, error) {
	id, err := s.signupID(ctx, p)
	if err != nil {
		return nil, err
	}
	asked := time.Unix(p.Issued, 0)
	sub, err := s.deps.Subscribers.Update(ctx, id, func(sub *notifier.Subscriber) error {
		sub.Email, sub.Locale = p.Email, p.Locale
		if p.Phone != "" && p.Phone != sub.Phone {
			sub.Phone, sub.PhoneUnverified, sub.PhoneCheck = p.Phone, true, nil
		}
		if sub.Timezone == "" {
			sub.Timezone = p.Timezone
		}
		if ids := p.components(); len(ids) > 0 {
			// Components ticked on the form; "all" (the default) leaves
			// what the subscriber or an operator chose before.
			sub.Components = ids
		}
		if why, ok := sub.Suppressed[notifier.Email]; ok && why.Reason == notifier.ReasonOptedOut && why.At.Before(asked) {
			delete(sub.Suppressed, notifier.Email)
		}
		return sub.Validate()
	})
	if !errors.Is(err, notifier.ErrNotFound) {
		return sub, err
	}
	sub = &notifier.Subscriber{ID: id, Email: p.Email, Phone: p.Phone, PhoneUnverified: p.Phone != "", Locale: p.Locale, Timezone: p.Timezone, Components: p.components()}
	if err := sub.Validate(); err != nil {
		return nil, fmt.Errorf("new subscriber: %w", err)
	}
	if err := s.deps.Subscribers.Put(ctx, sub); err != nil {
		return nil, err
	}
	return sub, nil
}

// signupID is the id of the subscriber a confirmed sign-up updates: the
// one its email address belongs to when the store can tell (the address
// index), else SubscriberID(p.Email), which also finds web sign-ups stored
// before the index. Only the email counts: the link proves that address,
// not the phone number, so matching on the number would let anyone change
// the subscription of a number they know.
func (s *server) signupID(ctx context.Context, p pending) (string, error) {
	if f, ok := s.deps.Subscribers.(notifier.AddressFinder); ok {
		sub, err := f.FindByAddress(ctx, p.Email)
		if err == nil {
			return sub.ID, nil
		}
		if !errors.Is(err, notifier.ErrNotFound) {
			return "", err
		}
	}
	return SubscriberID(p.Email), nil
}

// codeDigest is the keyed hash of a phone code stored in a PhoneCheck: the
// SHA-256 of a token signed under VARSEL_SECRET over the subscriber, the
// number, the salt and the code. The token never leaves this function, so
// the store holds nothing a 6-digit code can be guessed from offline
// without the secret.
func (s *server) codeDigest(id, phone string) func(salt, code string) string {
	return func(salt, code string) string {
		t := s.deps.Tokens.Sign(notifier.TokenClaims{Purpose: "phone-code", SubscriberID: id + ":" + phone + ":" + salt + ":" + code, Channel: notifier.SMS})
		sum := sha256.Sum256([]byte(t))
		return hex.EncodeToString(sum[:])
	}
}

// sendPhoneCode sends a new code by SMS to the subscriber's unverified
// number, unless one that can still be entered was sent already. A number
// gets at most signupToBurst codes at once and one more every
// signupToEvery, whoever asks; past that nothing is sent (and the page
// asks for the code as before, telling nobody).
func (s *server) sendPhoneCode(ctx context.Context, sub *notifier.Subscriber, locale string) error {
	now := s.now()
	if sub.PhoneCheck.Live(now) {
		return nil
	}
	phone := sub.Phone
	if !s.signupTo.Allow("sms "+phone, now) {
		s.logger.Info("sign-up phone code not sent: number asked too often", "subscriber", sub.ID, "to", notifier.MaskPhone(phone))
		return nil
	}
	code, err := notifier.NewPhoneCode()
	if err != nil {
		return err
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return err
	}
	check := &notifier.PhoneCheck{Salt: hex.EncodeToString(salt), Expires: now.Add(notifier.PhoneCodeValidity)}
	check.Digest = s.codeDigest(sub.ID, phone)(check.Salt, code)
	if _, err := s.deps.Subscribers.Update(ctx, sub.ID, func(cur *notifier.Subscriber) error {
		if cur.Phone != phone || !cur.PhoneUnverified {
			return errPhoneChanged
		}
		cur.PhoneCheck = check
		return nil
	}); err != nil {
		return err
	}
	text := s.deps.Localizer.T(locale, "SMSPhoneCode", map[string]any{"Code": code, "Minutes": int(notifier.PhoneCodeValidity / time.Minute)})
	m := &notifier.Message{Locale: locale, SMS: text}
	m.Segments, _ = render.Segments(text)
	sendCtx, cancel := context.WithTimeout(ctx, sendTimeout)
	defer cancel()
	// Deps.SendEmail sends a sign-up's messages; one with an SMS body goes
	// to a phone number through the SMS channel.
	if err := s.deps.SendEmail(sendCtx, phone, m); err != nil {
		return err
	}
	s.logger.Info("sign-up phone code sent", "subscriber", sub.ID, "to", notifier.MaskPhone(phone), "locale", locale)
	return nil
}

// errPhoneChanged means the number changed while a code was being made.
var errPhoneChanged = errors.New("the phone number changed")

// phoneSignup returns the sign-up a code form's token carries and its
// subscriber, or sets v.State to why there is none (the status to answer).
func (s *server) phoneSignup(ctx context.Context, v *subscribeView, token string) (*notifier.Subscriber, int) {
	p, err := verifyPending(s.deps.Tokens, token, s.now())
	if err != nil {
		v.State = "invalid"
		if errors.Is(err, errLinkExpired) {
			v.State = "expired"
		}
		return nil, http.StatusBadRequest
	}
	v.Locale = p.Locale // the language the subscriber chose
	id, err := s.signupID(ctx, p)
	var sub *notifier.Subscriber
	if err == nil {
		sub, err = s.deps.Subscribers.Get(ctx, id)
	}
	if errors.Is(err, notifier.ErrNotFound) || (err == nil && (p.Phone == "" || sub.Phone != p.Phone)) {
		v.State = "invalid" // not confirmed yet, or the number changed since
		return nil, http.StatusBadRequest
	}
	if err != nil {
		s.logger.Error("phone code: read subscriber", "error", err)
		v.State = "unavailable"
		return nil, http.StatusServiceUnavailable
	}
	v.Token, v.Masked, v.Action = token, notifier.MaskPhone(sub.Phone), "/subscribe"
	return sub, http.StatusOK
}

// phoneCodeForm shows the form for the code sent to a sign-up's number
// (GET /subscribe?confirm=TOKEN, the confirmation link's token).
func (s *server) phoneCodeForm(w http.ResponseWriter, r *http.Request, v *subscribeView, token string) {
	sub, status := s.phoneSignup(r.Context(), v, token)
	if sub != nil {
		v.State = "verify"
		if !sub.PhoneUnverified {
			v.State = "verified"
		}
	}
	s.subscribePage(w, status, v)
}

// checkPhoneCode takes a code entered for a sign-up's number (POST
// /subscribe with confirm=TOKEN and code). A right code within
// PhoneCodeValidity verifies the number; PhoneCodeAttempts wrong ones lock
// the code. The code is compared in constant time and never logged.
func (s *server) checkPhoneCode(w http.ResponseWriter, r *http.Request, v *subscribeView, token, code string) {
	ctx := r.Context()
	sub, status := s.phoneSignup(ctx, v, token)
	if sub == nil {
		s.subscribePage(w, status, v)
		return
	}
	var result error
	_, err := s.deps.Subscribers.Update(ctx, sub.ID, func(cur *notifier.Subscriber) error {
		if cur.Phone != sub.Phone {
			return errPhoneChanged
		}
		result = cur.CheckPhoneCode(code, s.now(), s.codeDigest(cur.ID, cur.Phone))
		return nil // stored whatever the result, so wrong codes count
	})
	if err != nil {
		s.logger.Error("phone code: update subscriber", "subscriber", sub.ID, "error", err)
		v.State = "unavailable"
		s.subscribePage(w, http.StatusServiceUnavailable, v)
		return
	}
	to := notifier.MaskPhone(sub.Phone)
	switch {
	case result == nil:
		s.logger.Info("sign-up phone verified", "subscriber", sub.ID, "to", to)
		v.State = "verified"
		s.subscribePage(w, http.StatusOK, v)
	case errors.Is(result, notifier.ErrPhoneCodeWrong):
		s.logger.Info("sign-up phone code wrong", "subscriber", sub.ID, "to", to)
		v.State, v.CodeError = "verify", "PagePhoneCodeWrong"
		s.subscribePage(w, http.StatusBadRequest, v)
	case errors.Is(result, notifier.ErrPhoneCodeExpired), errors.Is(result, notifier.ErrNoPhoneCode):
		v.State = "codeexpired"
		s.subscribePage(w, http.StatusBadRequest, v)
	default: // locked
		s.logger.Info("sign-up phone code locked", "subscriber", sub.ID, "to", to)
		v.State = "codelocked"
		s.subscribePage(w, http.StatusBadRequest, v)
	}
}
