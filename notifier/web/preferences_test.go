package web

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/varsel/varsel/notifier"
	"github.com/varsel/varsel/notifier/render"
)

// prefsSite is a small catalogue for the preferences and sign-up tests.
var prefsSite = &notifier.Site{Components: []notifier.Component{
	{ID: "app", Name: notifier.Localized{"en": "Member app", "nb": "Medlemsapp"}},
	{ID: "db", Name: notifier.Localized{"en": "Database", "nb": "Database"}, Group: notifier.Localized{"en": "Back end", "nb": "Bakside"}},
}}

// newPrefsFixture is newSignupFixture with a site file; it also returns
// the renderer, which signs with the fixture's tokens.
func newPrefsFixture(t *testing.T, send func(context.Context, string, *notifier.Message) error) (*fixture, *render.Renderer) {
	t.Helper()
	return buildFixture(t, fixtureOpts{site: prefsSite, send: send, config: func(c *Config) { c.AdminToken = "" }})
}

var prefsLink = regexp.MustCompile(`http://status\.example\.com/preferences/[A-Za-z0-9_.-]+`)

// prefsPath renders an incident email to sub and returns the path of the
// preferences link in its text, checking the HTML part has it too.
func prefsPath(t *testing.T, r *render.Renderer, sub *notifier.Subscriber) string {
	t.Helper()
	now := time.Now()
	ev := &notifier.Event{ID: "ev-1", Type: notifier.IncidentOpened, Time: now, Incident: &notifier.Incident{
		ID: "inc-1", Title: notifier.Localized{"en": "Login fails", "nb": "Innlogging feiler"},
		Status: notifier.StatusInvestigating, Impact: notifier.ImpactMajor, StartedAt: now, Components: []string{"app"}}}
	m, err := r.Render(ev, nil, sub, notifier.Email)
	if err != nil {
		t.Fatal(err)
	}
	links := prefsLink.FindAllString(m.Text, -1)
	if len(links) != 1 {
		t.Fatalf("want one preferences link in the email text, got %q:\n%s", links, m.Text)
	}
	if !strings.Contains(m.HTML, `href="`+links[0]+`"`) || m.PreferencesURL != links[0] {
		t.Errorf("the HTML part or Message.PreferencesURL lacks %s", links[0])
	}
	return strings.TrimPrefix(links[0], "http://status.example.com")
}

// postPrefs posts form values to path, with extra headers as pairs.
func postPrefs(t *testing.T, f *fixture, path string, v url.Values, headers ...string) (*http.Response, string) {
	t.Helper()
	return f.request(t, http.MethodPost, path, strings.NewReader(v.Encode()), append([]string{"Content-Type", "application/x-www-form-urlencoded"}, headers...)...)
}

func getSub(t *testing.T, f *fixture, id string) *notifier.Subscriber {
	t.Helper()
	sub, err := f.conn.Subscribers.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

// kari reads Norwegian in New York, follows the database, turned SMS off
// herself and wants SMS only at start and end.
func putKari(t *testing.T, f *fixture) *notifier.Subscriber {
	t.Helper()
	kari := &notifier.Subscriber{ID: "kari", Email: "kari@example.com", Phone: "+4791234567", Locale: "nb",
		Timezone: "America/New_York", Components: []string{"db"}, SMSStartEndOnly: true,
		Suppressed: map[notifier.ChannelName]notifier.Suppression{
			notifier.SMS: {Reason: notifier.ReasonOptedOut, Detail: notifier.OptOutByLink, At: time.Now().UTC().Truncate(time.Second)},
		}}
	if err := f.conn.Subscribers.Put(context.Background(), kari); err != nil {
		t.Fatal(err)
	}
	return getSub(t, f, "kari")
}

// TestPreferencesLinkFromEmail follows the link out of a rendered email:
// the page shows the stored settings in the subscriber's language, with
// no English phrase; a POST of locale=en changes the locale only and
// answers in English.
func TestPreferencesLinkFromEmail(t *testing.T) {
	f, r := newPrefsFixture(t, nil)
	kari := putKari(t, f)
	path := prefsPath(t, r, kari)

	res, body := f.do(t, http.MethodGet, path, "", nil)
	if res.StatusCode != 200 {
		t.Fatalf("GET: %d %s", res.StatusCode, body)
	}
	for _, want := range []string{
		`<html lang="nb">`, "<h1>Ditt abonnement</h1>",
		`<option value="nb" lang="nb" selected>`, `<option value="America/New_York" selected>`,
		`value="email" checked>`, "k***@example.com", "47******67",
		`name="sms_start_end_only" value="1" checked>`,
		`value="db" checked> Database</label> <span class="meta">Bakside</span>`, `value="app"> Medlemsapp`,
		"Lagre", "Endringene gjelder fra neste melding.",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("GET lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, `value="sms" checked`) || strings.Contains(body, `value="sms" disabled`) {
		t.Error("SMS, turned off by the subscriber, should show unticked and changeable")
	}
	for _, english := range []string{"Save", "Your subscription", "Time zone", "Channels", "Services"} {
		if strings.Contains(text(body), english) {
			t.Errorf("the Norwegian page says %q", english)
		}
	}
	if sub := getSub(t, f, "kari"); !sub.UpdatedAt.Equal(kari.UpdatedAt) {
		t.Error("GET changed the subscriber")
	}

	res, body = postPrefs(t, f, path, url.Values{"locale": {"en"}})
	if res.StatusCode != 200 || !strings.Contains(body, "Saved. Your changes apply from the next message.") || !strings.Contains(body, `<html lang="en">`) {
		t.Fatalf("POST locale=en: %d\n%s", res.StatusCode, body)
	}
	got := getSub(t, f, "kari")
	if got.Locale != "en" {
		t.Errorf("locale %q, want en", got.Locale)
	}
	got.Locale, got.UpdatedAt = kari.Locale, kari.UpdatedAt
	if got.Timezone != kari.Timezone || !slices.Equal(got.Components, kari.Components) || got.SMSStartEndOnly != kari.SMSStartEndOnly ||
		len(got.Suppressed) != 1 || got.Suppressed[notifier.SMS] != kari.Suppressed[notifier.SMS] || got.Email != kari.Email || got.Phone != kari.Phone {
		t.Errorf("POST locale=en changed more than the locale:\n got %+v\nwant %+v", got, kari)
	}
}

// TestPreferencesRefusesBadFieldsAndSavesNothing: an invalid time zone or
// an unknown component is named, in the reader's language, and nothing of
// the POST is saved.
func TestPreferencesRefusesBadFieldsAndSavesNothing(t *testing.T) {
	f, _ := newPrefsFixture(t, nil)
	kari := putKari(t, f)
	path := "/preferences/" + f.tokens.Sign(notifier.TokenClaims{Purpose: notifier.PurposePreferences, SubscriberID: "kari"})
	for name, tc := range map[string]struct {
		form  url.Values
		field string
		want  string
	}{
		"time zone":  {url.Values{"timezone": {"Mars/Olympus_Mons"}, "components": {"app"}}, "timezone", "Velg en tidssone fra listen."},
		"Local":      {url.Values{"timezone": {"Local"}}, "timezone", "Velg en tidssone fra listen."},
		"component":  {url.Values{"components": {"app", "nope"}, "timezone": {"UTC"}}, "components", "Velg blant tjenestene som vises."},
		"none":       {url.Values{"components": {""}}, "components", "Velg minst én tjeneste, eller alle."},
		"locale":     {url.Values{"locale": {"sv"}}, "locale", "Velg English eller Norsk (bokmål)."},
		"no address": {url.Values{"channels": {"webhook"}}, "channels", "Velg blant kanalene som vises."},
	} {
		res, body := postPrefs(t, f, path, tc.form)
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(body, `id="`+tc.field+`-error"`) || !strings.Contains(body, tc.want) ||
			!strings.Contains(body, "Ingenting ble lagret.") {
			t.Errorf("%s: %d, want 400 naming %s with %q:\n%s", name, res.StatusCode, tc.field, tc.want, body)
		}
	}
	if got := getSub(t, f, "kari"); !got.UpdatedAt.Equal(kari.UpdatedAt) {
		t.Errorf("a refused POST saved something: %+v", got)
	}
}

// TestPreferencesTokens: a tampered link, another secret's, and an
// unsubscribe link are refused (403) and change nothing; a preferences
// token is no unsubscribe token either.
func TestPreferencesTokens(t *testing.T) {
	f, _ := newPrefsFixture(t, nil)
	kari := putKari(t, f)
	good := f.tokens.Sign(notifier.TokenClaims{Purpose: notifier.PurposePreferences, SubscriberID: "kari"})
	payload, sig, _ := strings.Cut(good, ".")
	other, _ := notifier.NewTokens([]byte("another-secret-another-secret!!"))
	for name, tok := range map[string]string{
		"altered signature": payload + "." + strings.ToUpper(sig[:4]) + sig[4:],
		"altered payload":   strings.Replace(good, payload, "cHxvbGF8", 1), // "p|ola|"
		"other secret":      other.Sign(notifier.TokenClaims{Purpose: notifier.PurposePreferences, SubscriberID: "kari"}),
		"unsubscribe token": f.tokens.Sign(notifier.TokenClaims{Purpose: notifier.PurposeUnsubscribe, SubscriberID: "kari", Channel: notifier.Email}),
		"confirm token":     f.tokens.Sign(notifier.TokenClaims{Purpose: notifier.PurposeConfirm, SubscriberID: "kari", Channel: notifier.Email}),
		"garbage":           "not-a-token",
	} {
		res, body := f.do(t, http.MethodGet, "/preferences/"+url.PathEscape(tok), "", nil)
		if res.StatusCode != http.StatusForbidden || !strings.Contains(body, "link") || strings.Contains(body, "kari@") || strings.Contains(body, "k***") {
			t.Errorf("GET %s: %d, want 403 with the invalid-link page", name, res.StatusCode)
		}
		if res, _ := postPrefs(t, f, "/preferences/"+url.PathEscape(tok), url.Values{"locale": {"en"}}); res.StatusCode != http.StatusForbidden {
			t.Errorf("POST %s: %d, want 403", name, res.StatusCode)
		}
	}
	// The preferences token does not unsubscribe.
	if res, _ := f.do(t, http.MethodPost, "/unsubscribe/"+good, "", strings.NewReader("List-Unsubscribe=One-Click")); res.StatusCode != http.StatusBadRequest {
		t.Errorf("a preferences token at /unsubscribe: %d, want 400", res.StatusCode)
	}
	if got := getSub(t, f, "kari"); !got.UpdatedAt.Equal(kari.UpdatedAt) {
		t.Errorf("a refused token changed the subscriber: %+v", got)
	}
	// A removed subscriber: 404.
	gone := f.tokens.Sign(notifier.TokenClaims{Purpose: notifier.PurposePreferences, SubscriberID: "gone"})
	if res, body := f.do(t, http.MethodGet, "/preferences/"+gone, "", nil); res.StatusCode != http.StatusNotFound || !strings.Contains(body, "no longer exists") {
		t.Errorf("removed subscriber: %d", res.StatusCode)
	}
}

// TestPreferencesChannels: turning a channel off is an opt-out like an
// unsubscribe; one the subscriber turned off may be turned on again, one
// turned off by STOP may not; a POST from another site is refused.
func TestPreferencesChannels(t *testing.T) {
	f, _ := newPrefsFixture(t, nil)
	putKari(t, f)
	path := "/preferences/" + f.tokens.Sign(notifier.TokenClaims{Purpose: notifier.PurposePreferences, SubscriberID: "kari"})

	// What the form sends with only SMS ticked: email off, SMS back on.
	res, body := postPrefs(t, f, path, url.Values{"channels": {"", "sms"}}, "Origin", "http://status.example.com")
	if res.StatusCode != 200 {
		t.Fatalf("channels=sms: %d\n%s", res.StatusCode, body)
	}
	got := getSub(t, f, "kari")
	if why := got.Suppressed[notifier.Email]; why.Reason != notifier.ReasonOptedOut || why.Detail != notifier.OptOutOnPreferences || !got.Reachable(notifier.SMS) || got.Reachable(notifier.Email) {
		t.Fatalf("after channels=sms: %+v", got.Suppressed)
	}
	if !strings.Contains(body, `value="sms" checked>`) || strings.Contains(body, `value="email" checked`) {
		t.Errorf("the saved page does not show the channels as stored:\n%s", body)
	}
	// Every box unticked: both off.
	if res, _ := postPrefs(t, f, path, url.Values{"channels": {""}}); res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	if got := getSub(t, f, "kari"); got.Reachable(notifier.Email) || got.Reachable(notifier.SMS) {
		t.Fatalf("channels= left a channel on: %+v", got.Suppressed)
	}
	// A STOP cannot be undone here.
	if _, err := f.conn.Subscribers.Update(context.Background(), "kari", func(s *notifier.Subscriber) error {
		s.Suppressed[notifier.SMS] = notifier.Suppression{Reason: notifier.ReasonOptedOut, Detail: "replied STOP", At: time.Now()}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	_, page := f.do(t, http.MethodGet, path, "", nil)
	if !strings.Contains(page, `value="sms" disabled>`) || !strings.Contains(page, "Slått av fordi du svarte STOPP.") {
		t.Errorf("a STOP shows as changeable:\n%s", page)
	}
	res, body = postPrefs(t, f, path, url.Values{"channels": {"email", "sms"}})
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(body, `id="channels-error"`) {
		t.Errorf("turning on a STOPped SMS: %d\n%s", res.StatusCode, body)
	}
	if got := getSub(t, f, "kari"); got.Reachable(notifier.Email) || got.Suppressed[notifier.SMS].Detail != "replied STOP" {
		t.Errorf("the refused POST saved something: %+v", got.Suppressed)
	}
	// Cross-site: refused, nothing saved.
	for _, h := range [][]string{{"Origin", "http://evil.example"}, {"Origin", "null"}, {"Sec-Fetch-Site", "cross-site"}} {
		if res, _ := postPrefs(t, f, path, url.Values{"channels": {"email"}}, h...); res.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %s: %d, want 403", h[0], h[1], res.StatusCode)
		}
	}
	if got := getSub(t, f, "kari"); got.Reachable(notifier.Email) {
		t.Error("a cross-site POST turned email on")
	}
}

// TestSMSStartEndOnlyPlansNoUpdates: a subscriber with SMS only at start
// and end gets no SMS for an update that pages everyone else, but does for
// the opening and the resolution; email is unaffected.
func TestSMSStartEndOnlyPlansNoUpdates(t *testing.T) {
	f, _ := newPrefsFixture(t, nil)
	ctx := context.Background()
	for _, s := range []*notifier.Subscriber{
		{ID: "quiet", Email: "quiet@example.com", Phone: "+4791234567", SMSStartEndOnly: true},
		{ID: "all", Email: "all@example.com", Phone: "+4791234568"},
	} {
		if err := f.conn.Subscribers.Put(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	p := &notifier.Planner{Subscribers: f.conn.Subscribers, Policy: notifier.DefaultPolicy{}}
	now := time.Now()
	inc := &notifier.Incident{ID: "inc", Status: notifier.StatusInvestigating, Impact: notifier.ImpactMinor, StartedAt: now}
	planned := func(typ notifier.EventType, state *notifier.IncidentState) map[notifier.ChannelName][]string {
		jobs := map[notifier.ChannelName][]string{}
		in := *inc
		if typ == notifier.IncidentUpdated {
			in.Impact = notifier.ImpactCritical
		}
		ev := &notifier.Event{ID: string(typ), Type: typ, Time: now, Incident: &in}
		if _, err := p.Plan(ctx, ev, state, func(j notifier.Job) error {
			jobs[j.Channel] = append(jobs[j.Channel], j.SubscriberID)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for _, ids := range jobs {
			slices.Sort(ids)
		}
		return jobs
	}
	// An update raising the impact to critical: SMS-worthy by the policy.
	raised := &notifier.IncidentState{Incident: *inc, PreviousImpact: notifier.ImpactMinor, LastEventTime: now}
	raised.Incident.Impact = notifier.ImpactCritical
	up := planned(notifier.IncidentUpdated, raised)
	if !slices.Equal(up[notifier.SMS], []string{"all"}) || !slices.Equal(up[notifier.Email], []string{"all", "quiet"}) {
		t.Errorf("update: %v, want SMS to all only and email to both", up)
	}
	for _, typ := range []notifier.EventType{notifier.IncidentOpened, notifier.IncidentResolved} {
		if got := planned(typ, nil); !slices.Equal(got[notifier.SMS], []string{"all", "quiet"}) {
			t.Errorf("%s: SMS to %v, want both", typ, got[notifier.SMS])
		}
	}
}

// TestSignupOffersComponentsAndTimezone: the form lists the site file's
// components (named in the reader's language) and the time zones, the
// default selected; a sign-up with components and a zone stores them.
func TestSignupOffersComponentsAndTimezone(t *testing.T) {
	mb := &mailbox{}
	f, _ := newPrefsFixture(t, mb.send)
	page := f.getInLanguage(t, "/subscribe", "nb")
	for _, want := range []string{`<option value="Europe/Oslo" selected>`, `value="all" checked> Alle tjenester`, `value="app"> Medlemsapp`, "Tidssone"} {
		if !strings.Contains(page, want) {
			t.Errorf("the sign-up form lacks %q:\n%s", want, page)
		}
	}
	// A component the site does not name is refused with the field named.
	res, body := f.do(t, http.MethodPost, "/subscribe", "", strings.NewReader(url.Values{
		"email": {"ola@example.com"}, "locale": {"nb"}, "components": {"", "nope"}}.Encode()))
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(body, `id="components-error"`) || len(mb.all()) != 0 {
		t.Fatalf("unknown component: %d\n%s", res.StatusCode, body)
	}
	res, body = f.do(t, http.MethodPost, "/subscribe", "", strings.NewReader(url.Values{
		"email": {"ola@example.com"}, "locale": {"nb"}, "timezone": {"Mars/Base"}}.Encode()))
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(body, `id="timezone-error"`) {
		t.Fatalf("bad zone: %d\n%s", res.StatusCode, body)
	}
	res, body = f.do(t, http.MethodPost, "/subscribe", "", strings.NewReader(url.Values{
		"email": {"ola@example.com"}, "locale": {"nb"}, "timezone": {"America/New_York"}, "components": {"", "db", "app"}}.Encode()))
	if res.StatusCode != 200 || len(mb.all()) != 1 {
		t.Fatalf("sign-up: %d\n%s", res.StatusCode, body)
	}
	if res, body := f.do(t, http.MethodGet, linkPath(t, mb.all()[0].M), "", nil); res.StatusCode != 200 {
		t.Fatalf("confirm: %d\n%s", res.StatusCode, body)
	}
	sub := getSub(t, f, SubscriberID("ola@example.com"))
	if !slices.Equal(sub.Components, []string{"db", "app"}) || sub.Timezone != "America/New_York" || sub.Locale != "nb" {
		t.Errorf("stored %+v, want components db, app in America/New_York", sub)
	}
	// Without the fields (an older form), everything as before: all.
	mb.sent = nil
	signUp(t, f, mb, "email", "per@example.com", "locale", "en")
	if res, _ := f.do(t, http.MethodGet, linkPath(t, mb.all()[0].M), "", nil); res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	if sub := getSub(t, f, SubscriberID("per@example.com")); len(sub.Components) != 0 || sub.Timezone != "" {
		t.Errorf("stored %+v, want all components in the default zone", sub)
	}
}
