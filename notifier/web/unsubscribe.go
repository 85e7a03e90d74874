package web

import (
	"errors"
	"net/http"
	"time"

	"github.com/varsel/varsel/notifier"
)

type unsubscribeView struct {
	reader
	PublicURL, Action, Question string
	Invalid, Done               bool
}

var unsubscribeQuestion = map[notifier.ChannelName]string{
	notifier.Email: "PageUnsubscribeEmail", notifier.SMS: "PageUnsubscribeSMS", notifier.Webhook: "PageUnsubscribeWebhook",
}

// claims verifies the link's token; a bad one gets the localized
// invalid-link page and false.
func (s *server) claims(w http.ResponseWriter, r *http.Request, v *unsubscribeView) (notifier.TokenClaims, bool) {
	c, err := s.deps.Tokens.Verify(r.PathValue("token"))
	if err != nil || c.Purpose != notifier.PurposeUnsubscribe || unsubscribeQuestion[c.Channel] == "" {
		v.Invalid = true
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		_ = pages.ExecuteTemplate(w, "unsubscribe.html", v)
		return c, false
	}
	return c, true
}

// unsubscribeForm asks for confirmation and changes nothing: mail scanners
// follow links with GET.
func (s *server) unsubscribeForm(w http.ResponseWriter, r *http.Request) {
	v := &unsubscribeView{reader: s.readerFor(r), PublicURL: s.cfg.PublicURL, Action: r.URL.Path}
	c, ok := s.claims(w, r, v)
	if !ok {
		return
	}
	if sub, err := s.deps.Subscribers.Get(r.Context(), c.SubscriberID); err == nil && r.URL.Query().Get("lang") == "" {
		if base := notifier.BaseLanguage(sub.Locale); base != "" {
			v.Locale = base
		}
	}
	v.Question = unsubscribeQuestion[c.Channel]
	s.render(w, "unsubscribe.html", v)
}

// unsubscribe is RFC 8058's one-click POST (and the form's): it pauses the
// channel at once, answers 200 without a redirect, and is idempotent.
func (s *server) unsubscribe(w http.ResponseWriter, r *http.Request) {
	v := &unsubscribeView{reader: s.readerFor(r), PublicURL: s.cfg.PublicURL, Action: r.URL.Path}
	c, ok := s.claims(w, r, v)
	if !ok {
		return
	}
	sub, err := s.deps.Subscribers.Update(r.Context(), c.SubscriberID, func(sub *notifier.Subscriber) error {
		if _, already := sub.Suppressed[c.Channel]; already {
			return nil
		}
		if sub.Suppressed == nil {
			sub.Suppressed = map[notifier.ChannelName]notifier.Suppression{}
		}
		sub.Suppressed[c.Channel] = notifier.Suppression{Reason: notifier.ReasonOptedOut, Detail: notifier.OptOutByLink, At: time.Now().UTC()}
		return nil
	})
	switch {
	case errors.Is(err, notifier.ErrNotFound):
		// Removed already: nothing will be sent, which is what was asked.
	case err != nil:
		s.logger.Error("unsubscribe", "subscriber", c.SubscriberID, "error", err)
		http.Error(w, "could not unsubscribe right now, please try again", http.StatusServiceUnavailable)
		return
	default:
		if base := notifier.BaseLanguage(sub.Locale); base != "" && r.URL.Query().Get("lang") == "" {
			v.Locale = base
		}
		s.logger.Info("unsubscribed by link", "subscriber", c.SubscriberID, "channel", c.Channel)
	}
	v.Done = true
	s.render(w, "unsubscribe.html", v)
}
