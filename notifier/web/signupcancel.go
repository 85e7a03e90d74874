package web

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/varsel/varsel/notifier"
)

// SignupDeclineFor is how long an address that cancelled a sign-up from
// its confirmation email gets no sign-up email again, whoever fills in the
// form: so the form cannot be used to mail someone who said no.
const SignupDeclineFor = 30 * 24 * time.Hour

// purposeCancelSignup is the token purpose of the confirmation email's
// List-Unsubscribe link, /subscribe/cancel/{token}.
const purposeCancelSignup = "signup-cancel"

// SignupDeclines is a subscriber store that remembers the addresses whose
// owner cancelled a sign-up (notifier/jetstream keeps them beside its
// address index, keyed by the address's hash).
type SignupDeclines interface {
	// DeclineSignup remembers that the owner of addr cancelled at at.
	DeclineSignup(ctx context.Context, addr string, at time.Time) error
	// SignupDeclined returns when the owner of addr last cancelled, if
	// not before since; else the zero time (and forgets older ones).
	SignupDeclined(ctx context.Context, addr string, since time.Time) (time.Time, error)
}

// signupCancel is what a cancel link's token carries: the address and the
// sign-up's language. The short JSON names keep the link short.
type signupCancel struct {
	Email  string `json:"e"`
	Locale string `json:"l"`
}

// signCancel returns the token of the cancel link for a sign-up of email:
// like a confirmation token, the HMAC covers the address, and the link
// does not expire (one can say no to a sign-up at any time).
func signCancel(t *notifier.Tokens, email, locale string) string {
	b, _ := json.Marshal(signupCancel{Email: email, Locale: locale}) // plain strings: cannot fail
	return t.Sign(notifier.TokenClaims{Purpose: purposeCancelSignup,
		SubscriberID: base64.RawURLEncoding.EncodeToString(b), Channel: notifier.Email})
}

// verifyCancel checks a cancel token in constant time; an error wraps
// notifier.ErrBadToken when it is not genuine.
func verifyCancel(t *notifier.Tokens, token string) (signupCancel, error) {
	var c signupCancel
	if len(token) > maxTokenLen {
		return c, notifier.ErrBadToken
	}
	claims, err := t.Verify(token)
	if err != nil {
		return c, err
	}
	if claims.Purpose != purposeCancelSignup || claims.Channel != notifier.Email {
		return c, notifier.ErrBadToken
	}
	b, err := base64.RawURLEncoding.DecodeString(claims.SubscriberID)
	if err != nil || json.Unmarshal(b, &c) != nil || c.Email == "" {
		return signupCancel{}, notifier.ErrBadToken
	}
	return c, nil
}

// declinedAt returns when the owner of email cancelled a sign-up within
// SignupDeclineFor; the zero time when they did not, or the store cannot
// remember it.
func (s *server) declinedAt(ctx context.Context, email string) (time.Time, error) {
	d, ok := s.deps.Subscribers.(SignupDeclines)
	if !ok {
		return time.Time{}, nil
	}
	return d.SignupDeclined(ctx, email, s.now().Add(-SignupDeclineFor))
}

// cancelSignupPage is the page of a cancel link; a bad token gets the
// invalid-link page and 403, and false.
func (s *server) cancelSignupPage(w http.ResponseWriter, r *http.Request) (*subscribeView, signupCancel, bool) {
	v := &subscribeView{reader: s.readerFor(r), PublicURL: s.cfg.PublicURL, Action: r.URL.Path, State: "cancel",
		Days: int(SignupDeclineFor / (24 * time.Hour))}
	c, err := verifyCancel(s.deps.Tokens, r.PathValue("token"))
	if err != nil {
		v.State = "invalid"
		s.subscribePage(w, http.StatusForbidden, v)
		return nil, c, false
	}
	if base := notifier.BaseLanguage(c.Locale); base != "" && r.URL.Query().Get("lang") == "" {
		v.Locale = base
	}
	return v, c, true
}

// cancelSignupForm (GET /subscribe/cancel/{token}) asks whether to cancel
// the sign-up and changes nothing: mail scanners follow links with GET.
func (s *server) cancelSignupForm(w http.ResponseWriter, r *http.Request) {
	if v, _, ok := s.cancelSignupPage(w, r); ok {
		s.subscribePage(w, http.StatusOK, v)
	}
}

// cancelSignup (POST /subscribe/cancel/{token}) is the confirmation
// email's RFC 8058 one-click unsubscribe (a mail client posts
// List-Unsubscribe=One-Click, without cookies) and the page's button. It
// answers 200 without a redirect and is idempotent. The sign-up's
// confirmation link stops working, the address gets no sign-up email for
// SignupDeclineFor, and a subscriber with the address (one who confirmed
// already, or was added by an operator) is unsubscribed from email: an
// "unsubscribe" from our email means no more email.
func (s *server) cancelSignup(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	_ = r.ParseForm() // the body says nothing the token does not
	v, c, ok := s.cancelSignupPage(w, r)
	if !ok {
		return
	}
	ctx, now := r.Context(), s.now()
	to := notifier.MaskEmail(c.Email)
	if d, ok := s.deps.Subscribers.(SignupDeclines); ok {
		if err := d.DeclineSignup(ctx, c.Email, now); err != nil {
			s.logger.Error("sign-up cancel not recorded", "to", to, "error", err)
			v.State = "unavailable"
			s.subscribePage(w, http.StatusServiceUnavailable, v)
			return
		}
	} else {
		s.logger.Warn("sign-up cancel: the store cannot remember declined addresses", "to", to)
	}
	var ids []string
	if f, ok := s.deps.Subscribers.(notifier.AllAddressFinder); ok {
		// Everyone with the address: it said no more email.
		subs, err := f.FindAllByAddress(ctx, c.Email)
		if err != nil {
			s.logger.Error("sign-up cancel: find subscriber", "to", to, "error", err)
			v.State = "unavailable"
			s.subscribePage(w, http.StatusServiceUnavailable, v)
			return
		}
		for _, sub := range subs {
			ids = append(ids, sub.ID)
		}
	} else if f, ok := s.deps.Subscribers.(notifier.AddressFinder); ok {
		sub, err := f.FindByAddress(ctx, c.Email)
		switch {
		case err == nil:
			ids = []string{sub.ID}
		case !errors.Is(err, notifier.ErrNotFound):
			s.logger.Error("sign-up cancel: find subscriber", "to", to, "error", err)
			v.State = "unavailable"
			s.subscribePage(w, http.StatusServiceUnavailable, v)
			return
		}
	} else {
		ids = []string{SubscriberID(c.Email)}
	}
	for _, id := range ids {
		_, err := s.deps.Subscribers.Update(ctx, id, func(sub *notifier.Subscriber) error {
			if !sub.HasAddress(c.Email) {
				return nil
			}
			if _, already := sub.Suppressed[notifier.Email]; already {
				return nil
			}
			if sub.Suppressed == nil {
				sub.Suppressed = map[notifier.ChannelName]notifier.Suppression{}
			}
			sub.Suppressed[notifier.Email] = notifier.Suppression{Reason: notifier.ReasonOptedOut, Detail: notifier.OptOutByLink, At: now.UTC()}
			return nil
		})
		if err != nil && !errors.Is(err, notifier.ErrNotFound) {
			s.logger.Error("sign-up cancel: unsubscribe", "subscriber", id, "error", err)
			v.State = "unavailable"
			s.subscribePage(w, http.StatusServiceUnavailable, v)
			return
		}
	}
	s.logger.Info("sign-up cancelled by link", "to", to, "one_click", r.PostForm.Get("List-Unsubscribe") == "One-Click")
	v.State = "cancelled"
	s.subscribePage(w, http.StatusOK, v)
}
