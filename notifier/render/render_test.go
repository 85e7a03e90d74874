package render

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/varsel/varsel/notifier"
)

// TestStyreWebUpdateAcceptance: the Norwegian email for the update at 10:00
// on 17 Sept says when the next update comes, in Norwegian format, and has
// no English fixed phrase; the English one has no Norwegian.
func TestStyreWebUpdateAcceptance(t *testing.T) {
	r := newTestRenderer(t, Config{})
	events, states := loadScenario(t, "styreweb")
	const id = "styreweb-2019-09-17-1000"
	foreign, err := r.foreignPhrases()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"nb": "Neste oppdatering kommer senest 17.09.2019 kl. 12:00",
		"en": "Next update by 17 Sep 2019, 12:00 CEST",
	}
	for _, sub := range testSubscribers("") {
		locale := ResolveLocale(sub.Locale, "en")
		m, err := r.Render(events[id], states[id], sub, notifier.Email)
		if err != nil {
			t.Fatal(err)
		}
		for _, body := range []string{m.Text, m.HTML} {
			if !strings.Contains(body, want[locale]) {
				t.Errorf("%s email lacks %q:\n%s", locale, want[locale], body)
			}
		}
		text := fixedText(m)
		for _, ph := range foreign[locale] {
			if ph.re.MatchString(text) {
				t.Errorf("%s email contains the %s phrase %q", locale, languageLabel(otherLocale(locale)), ph.text)
			}
		}
		if m.Locale != locale || m.ContentLocale != locale {
			t.Errorf("Locale %q ContentLocale %q, want %q", m.Locale, m.ContentLocale, locale)
		}
	}
}

func TestRenderCachesPerEventAndPersonalizes(t *testing.T) {
	tokens, err := notifier.NewTokens([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	r := newTestRenderer(t, Config{PublicURL: "https://status.example.com/"})
	ev := everyType()[1]
	subs := []*notifier.Subscriber{
		{ID: "a", Name: "Ola", Locale: "nb"},
		{ID: "b", Name: "Kari", Locale: "no"},
		{ID: "c", Locale: "nn-NO"},
	}
	var texts []string
	for _, sub := range subs {
		m, err := r.Render(ev, nil, sub, notifier.Email)
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, m.Text)
		claims, err := tokens.Verify(strings.TrimPrefix(m.UnsubscribeURL, "https://status.example.com/unsubscribe/"))
		if err != nil || claims.SubscriberID != sub.ID || claims.Channel != notifier.Email || claims.Purpose != notifier.PurposeUnsubscribe {
			t.Errorf("%s: unsubscribe link %q: claims %+v, %v", sub.ID, m.UnsubscribeURL, claims, err)
		}
		if !strings.Contains(m.Text, m.UnsubscribeURL) || !strings.Contains(m.HTML, m.UnsubscribeURL) {
			t.Errorf("%s: unsubscribe link missing from the bodies", sub.ID)
		}
		if m.StatusURL != "https://status.example.com/" || m.IncidentURL != "https://status.example.com/incidents/db-2024-05" {
			t.Errorf("URLs %q %q", m.StatusURL, m.IncidentURL)
		}
	}
	if got := r.cache.len(); got != 1 {
		t.Errorf("three Norwegian readers in one zone made %d cache entries, want 1", got)
	}
	if !strings.HasPrefix(texts[0], "Hei Ola,\n") || !strings.HasPrefix(texts[1], "Hei Kari,\n") || !strings.HasPrefix(texts[2], "Hei,\n") {
		t.Errorf("greetings: %q / %q / %q", texts[0][:12], texts[1][:12], texts[2][:12])
	}
	if _, err := r.Render(ev, nil, &notifier.Subscriber{ID: "d", Locale: "en"}, notifier.Email); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Render(ev, nil, &notifier.Subscriber{ID: "e", Locale: "nb", Timezone: "America/New_York"}, notifier.Email); err != nil {
		t.Fatal(err)
	}
	if got := r.cache.len(); got != 3 {
		t.Errorf("cache has %d entries, want 3 (one per locale and zone)", got)
	}
}

func TestLRUIsBounded(t *testing.T) {
	c := newLRU(2)
	k := func(id string) cacheKey { return cacheKey{eventID: id} }
	c.put(k("1"), &part{})
	c.put(k("2"), &part{})
	c.get(k("1"))
	c.put(k("3"), &part{})
	if c.len() != 2 {
		t.Fatalf("len %d, want 2", c.len())
	}
	if _, ok := c.get(k("2")); ok {
		t.Error("the least recently used entry was kept")
	}
	if _, ok := c.get(k("1")); !ok {
		t.Error("a recently used entry was dropped")
	}
}

func TestHTMLEscapesIncidentTextAndNames(t *testing.T) {
	r := newTestRenderer(t, Config{})
	ev := everyType()[0]
	ev.Incident.Title = notifier.Localized{"en": `<script>alert(1)</script> & "co"`}
	ev.Incident.Message = notifier.Localized{"en": `<img src=x onerror=alert(1)>`}
	m, err := r.Render(ev, nil, &notifier.Subscriber{ID: "x", Name: "<b>Eve</b>", Locale: "en"}, notifier.Email)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"<script>", "<img", "<b>Eve"} {
		if strings.Contains(m.HTML, bad) {
			t.Errorf("HTML contains unescaped %q", bad)
		}
	}
	if !strings.Contains(m.HTML, "&lt;script&gt;") || !strings.Contains(m.HTML, "&lt;b&gt;Eve&lt;/b&gt;") {
		t.Error("escaped title or name missing from HTML")
	}
	if strings.Contains(m.HTML, "ZgotmplZ") {
		t.Error("html/template rejected a value (ZgotmplZ) in the HTML")
	}
}

func TestFreeTextFallbackIsHonest(t *testing.T) {
	r := newTestRenderer(t, Config{})
	tests := []struct {
		name, locale string
		message      notifier.Localized
		note         string
		contentLang  string
	}{
		{"English only, Norwegian reader", "nb", notifier.Localized{"en": "Slow."}, "(Meldingen under er bare tilgjengelig på engelsk.)", "en"},
		{"Norwegian only, English reader", "en", notifier.Localized{"nb": "Tregt."}, "(The message below is only available in Norwegian.)", "nb"},
		{"German only, Norwegian reader", "nb", notifier.Localized{"de": "Langsam."}, "(Meldingen under er bare tilgjengelig på tysk.)", "de"},
		{"both, no note", "nb", notifier.Localized{"en": "Slow.", "nb": "Tregt."}, "", "nb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := everyType()[0]
			ev.ID = "fallback-" + tt.contentLang + tt.locale
			ev.Incident.Message = tt.message
			for _, ch := range []notifier.ChannelName{notifier.Email, notifier.Webhook} {
				m, err := r.Render(ev, nil, &notifier.Subscriber{ID: "x", Locale: tt.locale}, ch)
				if err != nil {
					t.Fatal(err)
				}
				body := m.Text + m.WebhookText
				if tt.note != "" && !strings.Contains(body, tt.note) {
					t.Errorf("%s: note %q missing:\n%s", ch, tt.note, body)
				}
				if tt.note == "" && strings.Contains(body, "(") && strings.Contains(body, "only available") {
					t.Errorf("%s: note given although the text is in the reader's language", ch)
				}
				if m.ContentLocale != tt.contentLang {
					t.Errorf("%s: ContentLocale %q, want %q", ch, m.ContentLocale, tt.contentLang)
				}
			}
		})
	}
}

// TestContactAndTitleSayTheirOwnLanguage: a contact text or title in fewer
// languages than the message is marked as what it is (the contact was
// shown to a Norwegian reader as Norwegian, with no note and lang="nb").
func TestContactAndTitleSayTheirOwnLanguage(t *testing.T) {
	r := newTestRenderer(t, Config{})
	ev := everyType()[0]
	ev.ID = "contact-only-en"
	ev.Incident.Title = notifier.Localized{"en": "Slow logins"}
	ev.Incident.Message = notifier.Localized{"en": "We are on it.", "nb": "Vi jobber med saken."}
	ev.Incident.Contact = notifier.Localized{"en": "Email ops@example.com if you are blocked."}
	m, err := r.Render(ev, nil, &notifier.Subscriber{ID: "x", Locale: "nb"}, notifier.Email)
	if err != nil {
		t.Fatal(err)
	}
	if want := "Trenger du hjelp? Email ops@example.com if you are blocked. (bare på engelsk)"; !strings.Contains(m.Text, want) {
		t.Errorf("text part lacks %q:\n%s", want, m.Text)
	}
	for _, want := range []string{`<span lang="en">Email ops@example.com if you are blocked.</span>`, "(bare på engelsk)", `lang="en">Slow logins</h1>`} {
		if !strings.Contains(m.HTML, want) {
			t.Errorf("HTML part lacks %s", want)
		}
	}
	if strings.Contains(m.Text, "Meldingen under er bare") {
		t.Errorf("the message is in Norwegian, yet the note says it is not:\n%s", m.Text)
	}
	// In the reader's language: no note.
	ev.ID = "contact-both"
	ev.Incident.Contact = notifier.Localized{"en": "Email ops@example.com.", "nb": "Send e-post til ops@example.com."}
	if m, err = r.Render(ev, nil, &notifier.Subscriber{ID: "x", Locale: "nb"}, notifier.Email); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(m.Text+m.HTML, "bare på") || !strings.Contains(m.HTML, `<span lang="nb">Send e-post til ops@example.com.</span>`) {
		t.Errorf("a Norwegian contact is marked as another language:\n%s", m.Text)
	}
}

func TestTemplatesDirOverridesFileByFile(t *testing.T) {
	dir := writeOverride(t, "webhook.tmpl", `{{define "webhook.incident"}}Own text: {{.Title}}{{end}}{{define "webhook.letter"}}{{.Title}}{{end}}`)
	r := newTestRenderer(t, Config{TemplatesDir: dir})
	ev := everyType()[0]
	m, err := r.Render(ev, nil, &notifier.Subscriber{ID: "x", Locale: "en"}, notifier.Webhook)
	if err != nil {
		t.Fatal(err)
	}
	if m.WebhookText != "Own text: Slow member lists" {
		t.Errorf("override not used: %q", m.WebhookText)
	}
	// Other files stay embedded.
	if m, err = r.Render(ev, nil, &notifier.Subscriber{ID: "x", Locale: "en"}, notifier.Email); err != nil || !strings.Contains(m.Subject, "Slow member lists") {
		t.Errorf("embedded subject lost: %v %q", err, m.Subject)
	}

	bad := writeOverride(t, "sms.tmpl", "{{define \"sms.incident\"}}\n{{if}}{{end}}")
	tokens, _ := notifier.NewTokens([]byte(testSecret))
	if _, err := New(Config{TemplatesDir: bad}, tokens, nil); err == nil || !strings.Contains(err.Error(), "sms.tmpl:2") {
		t.Errorf("New with a broken template: %v, want an error naming sms.tmpl:2", err)
	}
}

func TestRenderLogsNoContactDetails(t *testing.T) {
	var logs bytes.Buffer
	tokens, _ := notifier.NewTokens([]byte(testSecret))
	r, err := New(Config{}, tokens, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	sub := &notifier.Subscriber{ID: "x", Email: "kari@example.com", Phone: "+4791234567", Locale: "nb", Timezone: "Not/AZone"}
	for _, ch := range notifier.ChannelNames {
		if _, err := r.Render(everyType()[0], nil, sub, ch); err != nil {
			t.Fatal(err)
		}
	}
	if logs.Len() == 0 {
		t.Fatal("expected a warning about the unknown time zone")
	}
	for _, secret := range []string{sub.Email, sub.Phone, "unsubscribe/"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("log contains %q: %s", secret, logs.String())
		}
	}
}

func TestRenderRejectsUnknownChannel(t *testing.T) {
	r := newTestRenderer(t, Config{})
	if _, err := r.Render(everyType()[0], nil, &notifier.Subscriber{ID: "x"}, "pigeon"); err == nil {
		t.Error("rendered for an unknown channel")
	}
}
