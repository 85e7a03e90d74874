package render

import (
	"strings"
	"testing"

	"github.com/varsel/varsel/notifier"
)

// TestPreferencesLinkInEmailOnly: every email's text and HTML footers link
// the subscriber's preferences page with a preferences token (not an
// unsubscribe one), in both languages; SMS and webhooks carry no link; the
// text footer takes the fast path with a bare preferences piece.
func TestPreferencesLinkInEmailOnly(t *testing.T) {
	events, states := loadScenario(t, "styreweb")
	const id = "styreweb-2019-09-17-1000"
	r := newTestRenderer(t, Config{PublicURL: "https://status.example.com"})
	tokens, _ := notifier.NewTokens([]byte(testSecret))
	words := map[string]string{"nb": "Endre innstillingene dine", "en": "Change your settings"}
	for _, sub := range testSubscribers("") {
		m, err := r.Render(events[id], states[id], sub, notifier.Email)
		if err != nil {
			t.Fatal(err)
		}
		tok, ok := strings.CutPrefix(m.PreferencesURL, "https://status.example.com/preferences/")
		c, err := tokens.Verify(tok)
		if !ok || err != nil || c.Purpose != notifier.PurposePreferences || c.SubscriberID != sub.ID || c.Channel != "" {
			t.Errorf("%s: preferences link %q: %+v, %v", sub.ID, m.PreferencesURL, c, err)
		}
		lang := notifier.BaseLanguage(sub.Locale)
		if !strings.Contains(m.Text, words[lang]+": "+m.PreferencesURL+"\n") {
			t.Errorf("%s: text footer lacks %q: %s", sub.ID, words[lang]+": "+m.PreferencesURL, m.Text)
		}
		if !strings.Contains(m.HTML, `<a href="`+m.PreferencesURL+`" style="color:#6b7280;">`+words[lang]+`</a>`) {
			t.Errorf("%s: HTML footer lacks the link", sub.ID)
		}
		for _, ch := range []notifier.ChannelName{notifier.SMS, notifier.Webhook} {
			m, err := r.Render(events[id], states[id], sub, ch)
			if err != nil {
				t.Fatal(err)
			}
			if m.PreferencesURL != "" || strings.Contains(m.SMS+m.WebhookText, "/preferences/") {
				t.Errorf("%s on %s carries a preferences link", sub.ID, ch)
			}
		}
	}
	for _, locale := range Locales {
		n := 0
		for _, seg := range r.sets[locale].personal.footer {
			if seg.prefs {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s: %d bare preferences pieces in the text footer, want 1", locale, n)
		}
	}
}
