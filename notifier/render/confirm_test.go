package render

import (
	"path/filepath"
	"strings"
	"testing"
)

const (
	confirmURL = "https://status.example.com/confirm/eyJlIjoia2FyaUBleGFtcGxlLmNvbSJ9.c2lnbmF0dXJl"
	cancelURL  = "https://status.example.com/subscribe/cancel/eyJlIjoia2FyaUBleGFtcGxlLmNvbSJ9.c2lnbmF0dXJl"
)

func TestConfirmSubscription(t *testing.T) {
	r := newTestRenderer(t, Config{PublicURL: "https://status.example.com"})
	foreign, err := r.foreignPhrases()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"en": {"You asked us to send status updates to kari@example.com.", "The link works for 48 hours.", "ignore this email: nothing happens"},
		"nb": {"Du har bedt oss sende driftsmeldinger til kari@example.com.", "Lenken virker i 48 timer.", "Da skjer det ingenting"},
	}
	for _, tc := range []struct{ asked, locale string }{{"nb-NO", "nb"}, {"no", "nb"}, {"en-GB", "en"}, {"", "en"}, {"de", "en"}} {
		m, err := r.ConfirmSubscription("kari@example.com", tc.asked, confirmURL, cancelURL)
		if err != nil {
			t.Fatalf("%q: %v", tc.asked, err)
		}
		if m.Locale != tc.locale || m.ContentLocale != tc.locale || m.Subject == "" {
			t.Errorf("%q: Locale %q, ContentLocale %q, Subject %q", tc.asked, m.Locale, m.ContentLocale, m.Subject)
		}
		if m.StatusURL != "https://status.example.com/" || m.UnsubscribeURL != cancelURL {
			t.Errorf("%q: StatusURL %q, UnsubscribeURL %q", tc.asked, m.StatusURL, m.UnsubscribeURL)
		}
		for _, w := range append(want[tc.locale], confirmURL, m.StatusURL) {
			if !strings.Contains(m.Text, w) {
				t.Errorf("%q text lacks %q:\n%s", tc.asked, w, m.Text)
			}
		}
		for _, w := range []string{`href="` + confirmURL + `"`, "kari@example.com", `lang="` + tc.locale + `"`, "<title>" + m.Subject + "</title>"} {
			if !strings.Contains(m.HTML, w) {
				t.Errorf("%q HTML lacks %q", tc.asked, w)
			}
		}
		// No subscriber yet: no unsubscribe link or token, no footer that
		// says they subscribed.
		if strings.Contains(m.Text+m.HTML, "/unsubscribe/") {
			t.Errorf("%q: the confirmation carries an unsubscribe token", tc.asked)
		}
		text := fixedText(m)
		for _, ph := range foreign[tc.locale] {
			if ph.re.MatchString(text) {
				t.Errorf("%q: the %s confirmation contains the %s phrase %q", tc.asked, tc.locale, languageLabel(otherLocale(tc.locale)), ph.text)
			}
		}
	}
}

// TestConfirmSubscriptionEscapes: the address is the sign-up form's input,
// so markup in it must stay text in the HTML part.
func TestConfirmSubscriptionEscapes(t *testing.T) {
	r := newTestRenderer(t, Config{})
	m, err := r.ConfirmSubscription(`"<b>x</b>"@example.com`, "en", confirmURL, cancelURL)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(m.HTML, "<b>x</b>") {
		t.Errorf("markup from the address reached the HTML:\n%s", m.HTML)
	}
	for _, args := range [][3]string{{"", confirmURL, cancelURL}, {"kari@example.com", "", cancelURL}, {"kari@example.com", confirmURL, ""}} {
		if _, err := r.ConfirmSubscription(args[0], "en", args[1], args[2]); err == nil {
			t.Errorf("ConfirmSubscription(%q, en, %q, %q) gave no error", args[0], args[1], args[2])
		}
	}
}

func TestConfirmSubscriptionGolden(t *testing.T) {
	r := newTestRenderer(t, Config{})
	for _, locale := range Locales {
		m, err := r.ConfirmSubscription("kari@example.com", locale, "http://localhost:8080/confirm/TOKEN", "http://localhost:8080/subscribe/cancel/TOKEN")
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join("testdata", "golden", "confirm")
		checkGolden(t, filepath.Join(dir, m.Locale+".email.txt"), "Subject: "+m.Subject+"\n\n"+m.Text)
		checkGolden(t, filepath.Join(dir, m.Locale+".email.html"), m.HTML)
	}
}
