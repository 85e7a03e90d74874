package render

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/varsel/varsel/notifier"
)

// siteEvent is an incident on the Gnist member app, whose title does not
// name it, and on an id the site file does not know.
func siteEvent(components ...string) *notifier.Event {
	at := time.Date(2024, 5, 10, 9, 0, 0, 0, time.UTC)
	return &notifier.Event{ID: "gnist-2024-05-10", Type: notifier.IncidentOpened, Time: at,
		Incident: &notifier.Incident{ID: "gnist-login-2024-05",
			Title:  notifier.Localized{"en": "Login problems", "nb": "Problemer med innlogging"},
			Status: notifier.StatusInvestigating, Impact: notifier.ImpactMajor, Components: components, StartedAt: at,
			Message: notifier.Localized{"en": "Some members cannot log in.", "nb": "Noen medlemmer får ikke logget inn."}}}
}

// TestMessagesNameComponentsFromTheSiteFile: with the site file, email
// (text and HTML), SMS and webhook text name the affected services by
// their names in the reader's language; an id the file does not know is
// shown as it is. The footer names the site. Without a site file the
// messages are as they were: no ids shown as names, the old footer.
func TestMessagesNameComponentsFromTheSiteFile(t *testing.T) {
	site := exampleSite(t)
	withSite := newTestRenderer(t, Config{Site: site})
	without := newTestRenderer(t, Config{})
	foreign, err := withSite.foreignPhrases()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct{ email, sms, webhook, footer string }{
		"nb": {"Berørte tjenester: Gnist medlemsapp, ghost", "Berørt: Gnist medlemsapp, ghost.",
			"Berørte tjenester: Gnist medlemsapp, ghost.", "Du får denne e-posten fordi du abonnerer på «Driftsmeldinger»."},
		"en": {"Affected services: Gnist member app, ghost", "Affected: Gnist member app, ghost.",
			"Affected services: Gnist member app, ghost.", "You get this email because you subscribed to “Service status”."},
	}
	ev := siteEvent("gnist", "ghost")
	for _, sub := range testSubscribers("") {
		locale := ResolveLocale(sub.Locale, "en")
		w := want[locale]
		email, err := withSite.Render(ev, nil, sub, notifier.Email)
		if err != nil {
			t.Fatal(err)
		}
		sms, err := withSite.Render(ev, nil, sub, notifier.SMS)
		if err != nil {
			t.Fatal(err)
		}
		hook, err := withSite.Render(ev, nil, sub, notifier.Webhook)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(email.Text, w.email) || !strings.Contains(email.Text, w.footer) {
			t.Errorf("%s email text lacks %q or %q:\n%s", locale, w.email, w.footer, email.Text)
		}
		label, names, _ := strings.Cut(w.email, ": ")
		if !strings.Contains(email.HTML, ">"+label+"</td><td>"+names+"</td>") {
			t.Errorf("%s email HTML lacks the row %s | %s:\n%s", locale, label, names, email.HTML)
		}
		if !strings.Contains(sms.SMS, w.sms) || sms.Segments != 1 {
			t.Errorf("%s SMS lacks %q or is %d segments: %q", locale, w.sms, sms.Segments, sms.SMS)
		}
		if !strings.Contains(hook.WebhookText, w.webhook) {
			t.Errorf("%s webhook text lacks %q: %q", locale, w.webhook, hook.WebhookText)
		}
		if got := hook.ComponentNames; got["gnist"] != site.ComponentName("gnist", locale) || got["ghost"] != "ghost" || len(got) != 2 {
			t.Errorf("%s webhook component names %v", locale, got)
		}
		for _, m := range []*notifier.Message{email, sms, hook} {
			for _, ph := range foreign[locale] {
				if ph.re.MatchString(fixedText(m)) {
					t.Errorf("%s message contains the %s phrase %q", locale, languageLabel(otherLocale(locale)), ph.text)
				}
			}
		}

		// Without a site file: nothing named, the footer as before.
		email, err = without.Render(ev, nil, sub, notifier.Email)
		if err != nil {
			t.Fatal(err)
		}
		sms, err = without.Render(ev, nil, sub, notifier.SMS)
		if err != nil {
			t.Fatal(err)
		}
		hook, err = without.Render(ev, nil, sub, notifier.Webhook)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{email.Text, email.HTML, sms.SMS, hook.WebhookText} {
			if strings.Contains(s, "Berørt") || strings.Contains(s, "Affected") || strings.Contains(s, "Gnist") || strings.Contains(s, "ghost") {
				t.Errorf("%s without a site file names components: %q", locale, s)
			}
		}
		if got := hook.ComponentNames; got["gnist"] != "gnist" || got["ghost"] != "ghost" {
			t.Errorf("%s without a site file: webhook component names %v, want the ids", locale, got)
		}
		if reason, _ := without.sets[locale].phrase("FooterReason"); !strings.Contains(email.Text, reason) {
			t.Errorf("%s without a site file: footer lacks %q:\n%s", locale, reason, email.Text)
		}
	}
}

// TestSMSLeavesOutNamesTheTitleGives: an SMS has no room to name a service
// twice; a title that names every component already ("Problemer med
// innlogging i StyreWeb") stands alone, while the email still lists them.
func TestSMSLeavesOutNamesTheTitleGives(t *testing.T) {
	r := newTestRenderer(t, Config{Site: exampleSite(t)})
	ev := siteEvent("styreweb")
	ev.Incident.Title = notifier.Localized{"en": "Login problems in StyreWeb", "nb": "Problemer med innlogging i StyreWeb"}
	for _, sub := range testSubscribers("") {
		sms, err := r.Render(ev, nil, sub, notifier.SMS)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(sms.SMS, "Berørt") || strings.Contains(sms.SMS, "Affected") {
			t.Errorf("SMS names StyreWeb twice: %q", sms.SMS)
		}
		email, err := r.Render(ev, nil, sub, notifier.Email)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(email.Text, ": StyreWeb\n") {
			t.Errorf("email does not list StyreWeb:\n%s", email.Text)
		}
	}
}

// TestSMSDropsNamesBeforeTheHoldingNote: when an SMS is too long, the
// names of the services go before anything else but the free text: for
// every length of title, an SMS that names them keeps the holding note,
// and some SMS keep the note without the names.
func TestSMSDropsNamesBeforeTheHoldingNote(t *testing.T) {
	r := newTestRenderer(t, Config{Site: exampleSite(t)})
	since := time.Date(2024, 5, 10, 8, 0, 0, 0, time.UTC)
	for _, sub := range testSubscribers("") {
		noteOnly := 0
		for n := 1; n <= 60; n++ {
			ev := siteEvent("gnist", "styreweb", "led")
			ev.ID = fmt.Sprintf("gnist-%d", n)
			ev.Incident.Title = notifier.Localized{"en": strings.Repeat("x", n), "nb": strings.Repeat("x", n)}
			ev.Incident.HoldingSince = &since
			sms, err := r.Render(ev, nil, sub, notifier.SMS)
			if err != nil {
				t.Fatal(err)
			}
			names, note := strings.Contains(sms.SMS, "Gnist"), strings.Contains(sms.SMS, "10:00")
			if sms.Segments != 1 || names && !note {
				t.Errorf("title of %d: %d segments, names %v, holding note %v: %q", n, sms.Segments, names, note, sms.SMS)
			}
			if note && !names {
				noteOnly++
			}
		}
		if noteOnly == 0 {
			t.Errorf("%s: no title length drops the names alone", sub.Locale)
		}
	}
}
