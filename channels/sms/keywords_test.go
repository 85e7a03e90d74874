package sms

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/varsel/varsel/notifier"
	"github.com/varsel/varsel/notifier/render"
)

// inbound posts a signed inbound message and returns the TwiML answer's
// text.
func inbound(t *testing.T, h http.Handler, form url.Values) string {
	t.Helper()
	w := post(t, h, "/twilio/inbound", form, sign(t, testToken, publicURL+"/twilio/inbound", form))
	if w.Code != http.StatusOK {
		t.Fatalf("%s: status %d: %s", form.Get("Body"), w.Code, w.Body)
	}
	return twiml(t, w)
}

func smsSuppression(t *testing.T, store *memStore, id string) (notifier.Suppression, bool) {
	t.Helper()
	s, err := store.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := s.Suppressed[notifier.SMS]
	return got, ok
}

// Who confirms which keyword: Twilio its own (we stay silent, but follow
// START with our confirmation for a reader of another language), we the
// ones it does not know; an unknown number hears START confirmed by
// Twilio only.
func TestInboundKeywordReplies(t *testing.T) {
	for _, tc := range []struct {
		name, from string
		bodies     []string // sent in turn; the last one's answer is checked
		want       string
		optedOut   bool // whether ola's SMS is opted out afterwards
	}{
		{name: "STOP, English", from: "+4798765432", bodies: []string{"STOP"}, optedOut: true},
		{name: "STOPP, English reader", from: "+4798765432", bodies: []string{"stopp"}, want: stoppedText("en"), optedOut: true},
		{name: "AVSLUTT, English reader", from: "+4798765432", bodies: []string{"AVSLUTT"}, want: stoppedText("en"), optedOut: true},
		{name: "START after STOPP, English reader: Twilio's", from: "+4798765432", bodies: []string{"STOPP", "START"}},
		{name: "JA after STOPP, English reader", from: "+4798765432", bodies: []string{"STOPP", "JA"}, want: startedText("en")},
		{name: "STOPP, unknown number", from: "+4740000000", bodies: []string{"STOPP"}, want: stoppedText("en")},
		{name: "START, unknown number", from: "+4740000000", bodies: []string{"START"}},
		{name: "JA, unknown number", from: "+4740000000", bodies: []string{"JA"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := newMemStore(subscribers()...)
			h := InboundHandler(store, testToken, publicURL, texts, nil)
			got := ""
			for _, b := range tc.bodies {
				got = inbound(t, h, inboundForm(tc.from, b))
			}
			if got != tc.want {
				t.Errorf("reply %q, want %q", got, tc.want)
			}
			if _, ok := smsSuppression(t, store, "ola"); ok != tc.optedOut {
				t.Errorf("ola opted out: %v, want %v", ok, tc.optedOut)
			}
		})
	}
}

// A message Twilio's Advanced Opt-Out matched (it sends OptOutType) was
// answered there, with the replies configured for the Messaging Service:
// we apply its type, also to a keyword of the operator's own, and answer
// nothing.
func TestInboundAdvancedOptOut(t *testing.T) {
	store := newMemStore(subscribers()...)
	h := InboundHandler(store, testToken, publicURL, texts, nil)
	for _, tc := range []struct {
		body, optOutType string
		optedOut         bool
	}{
		{"STOPP", "STOP", true},
		{"SLUTT", "STOP", true}, // the operator's own keyword
		{"START", "START", false},
		{"HJELP", "HELP", false},
	} {
		form := inboundForm(testPhone, tc.body)
		form.Set("OptOutType", tc.optOutType)
		if got := inbound(t, h, form); got != "" {
			t.Errorf("%s (%s): reply %q, want none", tc.body, tc.optOutType, got)
		}
		if _, ok := smsSuppression(t, store, "kari"); ok != tc.optedOut {
			t.Errorf("%s (%s): opted out %v, want %v", tc.body, tc.optOutType, ok, tc.optedOut)
		}
	}
}

// With the real catalogue: a Norwegian subscriber's STOPP and AVSLUTT are
// confirmed in Norwegian, naming the site; START lifts the opt-out and is
// confirmed in Norwegian after Twilio's English; STOP gets nothing from us.
func TestInboundNorwegianWithCatalogue(t *testing.T) {
	tokens, _ := notifier.NewTokens([]byte("0123456789abcdef0123456789abcdef"))
	site := &notifier.Site{Name: notifier.Localized{"en": "Gnist status", "nb": "Gnist driftsstatus"}}
	r, err := render.New(render.Config{PublicURL: publicURL, DefaultLocale: "en", Site: site}, tokens, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	stopped := "Du får ikke flere SMS-varsler fra Gnist driftsstatus. Send START for å melde deg på igjen."
	started := "Du får SMS-varsler fra Gnist driftsstatus igjen. Send STOPP for å melde deg av."
	for _, word := range []string{"STOPP", "Avslutt"} {
		store := newMemStore(subscribers()...)
		h := InboundHandler(store, testToken, publicURL, r.SMSReply, nil)
		if got := inbound(t, h, inboundForm(testPhone, word)); got != stopped {
			t.Errorf("%s: reply %q, want %q", word, got, stopped)
		}
		if got, ok := smsSuppression(t, store, "kari"); !ok || got.Reason != notifier.ReasonOptedOut {
			t.Errorf("%s: kari not opted out: %+v", word, got)
		}
		if got := inbound(t, h, inboundForm(testPhone, "START")); got != started {
			t.Errorf("START after %s: reply %q, want %q", word, got, started)
		}
		if _, ok := smsSuppression(t, store, "kari"); ok {
			t.Errorf("START after %s did not lift the opt-out", word)
		}
		if got := inbound(t, h, inboundForm(testPhone, "STOP")); got != "" {
			t.Errorf("STOP: reply %q, want none (Twilio confirms it)", got)
		}
		if _, ok := smsSuppression(t, store, "kari"); !ok {
			t.Error("STOP did not opt kari out")
		}
	}
	// An English reader of the same site, and the texts' segments.
	for id, want := range map[string]string{
		TextStopped: "You will get no more SMS alerts from Gnist status. Reply START to subscribe again.",
		TextStarted: "You will get SMS alerts from Gnist status again. Reply STOP to unsubscribe.",
	} {
		if got, lang := r.SMSReply("en-GB", id); got != want || lang != "en" {
			t.Errorf("%s: %q (%s), want %q", id, got, lang, want)
		}
	}
	for _, locale := range []string{"en", "nb"} {
		for _, id := range []string{TextStopped, TextStarted, TextHelp} {
			text, _ := r.SMSReply(locale, id)
			if n, enc := render.Segments(text); enc != render.GSM7 || n != 1 || strings.Contains(text, "{{") {
				t.Errorf("%s %s: %q is %d %s segments", locale, id, text, n, enc)
			}
		}
	}
}
