package console_test

import (
	"context"
	"encoding/json"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/varsel/varsel/notifier"
	"github.com/varsel/varsel/notifier/console"
	"github.com/varsel/varsel/notifier/jetstream"
	"github.com/varsel/varsel/notifier/render"
	"github.com/varsel/varsel/notifier/staff"
)

type fixture struct {
	t      *testing.T
	srv    *httptest.Server
	conn   *jetstream.Conn
	status *jetstream.StatusCache
	client *http.Client
	csrf   string
	sent   []string // test letters: the address
}

const password = "correct horse battery"

// newFixture runs the console on an embedded NATS with two staff members,
// Kari (Norwegian) and Alex (English), and no pipeline: published events
// stay in the stream.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureSite(t, nil)
}

// newFixtureSite is newFixture with a site file.
func newFixtureSite(t *testing.T, site *notifier.Site) *fixture {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	conn, err := jetstream.Connect(context.Background(), jetstream.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0"}, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	for _, who := range [][3]string{{"kari@example.com", "Kari Nordmann", "nb"}, {"alex@example.com", "Alex Smith", "en"}} {
		a, err := staff.NewAccount(who[0], who[1], who[2], password)
		if err != nil {
			t.Fatal(err)
		}
		if err := conn.Staff.Put(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	status, err := conn.WatchStatus(ctx, logger)
	if err != nil {
		t.Fatal(err)
	}
	tokens, _ := notifier.NewTokens([]byte("0123456789abcdef0123456789abcdef"))
	r, err := render.New(render.Config{PublicURL: "http://status.example.com", DefaultLocale: "en", DefaultTimezone: "Europe/Oslo", Site: site}, tokens, logger)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, conn: conn, status: status}
	h, err := console.New(console.Config{PublicURL: "http://status.example.com", DefaultLocale: "en", Timezone: "Europe/Oslo", Site: site}, console.Deps{
		Staff: staff.NewManager(conn.Staff, conn.Sessions, false, logger), Status: status, Operator: conn, Renderer: r, Logger: logger,
		Planner: &notifier.Planner{Subscribers: conn.Subscribers, Policy: notifier.DefaultPolicy{}},
		SendTest: func(_ context.Context, to string, m *notifier.Message) error {
			f.sent = append(f.sent, to+" "+m.Subject)
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	jar, _ := cookiejar.New(nil)
	f.client = &http.Client{Jar: jar}
	return f
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (f *fixture) get(path string) (*http.Response, string) {
	f.t.Helper()
	res, err := f.client.Get(f.srv.URL + path)
	if err != nil {
		f.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if m := csrfField.FindStringSubmatch(string(b)); m != nil {
		f.csrf = html.UnescapeString(m[1])
	}
	return res, string(b)
}

// postWith posts form to path with the header pairs given, and returns
// the page with its entities unescaped.
func (f *fixture) postWith(path string, form url.Values, header ...string) (*http.Response, string) {
	f.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := f.client.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, html.UnescapeString(string(b))
}

func (f *fixture) post(path string, form url.Values) (*http.Response, string) {
	f.t.Helper()
	res, err := f.client.PostForm(f.srv.URL+path, form)
	if err != nil {
		f.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if m := csrfField.FindStringSubmatch(string(b)); m != nil {
		f.csrf = html.UnescapeString(m[1])
	}
	return res, string(b)
}

func (f *fixture) signIn(email string) {
	f.t.Helper()
	f.get("/console/login")
	res, body := f.post("/console/login", url.Values{"csrf": {f.csrf}, "email": {email}, "password": {password}})
	if res.StatusCode != 200 || !strings.Contains(body, "/console/logout") {
		f.t.Fatalf("sign in as %s: %d\n%s", email, res.StatusCode, body)
	}
}

func TestConsoleSpeaksTheStaffMembersLanguage(t *testing.T) {
	f := newFixture(t)
	if res, _ := f.get("/console/"); res.Request.URL.Path != "/console/login" {
		t.Fatalf("unsigned: ended at %s, want the sign-in form", res.Request.URL.Path)
	}
	f.signIn("kari@example.com")
	_, page := f.get("/console/")
	for _, want := range []string{`lang="nb"`, "Hendelser", "Ny hendelse", "Logg ut", "Ingenting er åpent."} {
		if !strings.Contains(page, want) {
			t.Errorf("Norwegian console lacks %q", want)
		}
	}
	g := newFixture(t)
	g.signIn("alex@example.com")
	_, page = g.get("/console/")
	for _, want := range []string{`lang="en"`, "Incidents", "New incident", "Sign out"} {
		if !strings.Contains(page, want) {
			t.Errorf("English console lacks %q", want)
		}
	}
}

func TestConsoleFormsNeedTheirToken(t *testing.T) {
	f := newFixture(t)
	f.signIn("alex@example.com")
	for _, path := range []string{"/console/incidents/preview", "/console/publish", "/console/logout", "/console/letters/preview"} {
		if res, _ := f.post(path, url.Values{"title_en": {"x"}}); res.StatusCode != http.StatusForbidden {
			t.Errorf("POST %s without a CSRF token: %d, want 403", path, res.StatusCode)
		}
	}
}

// TestExpiredSignInFormAsksAgainInTheReadersLanguage: a sign-in without
// the form's token (left open past its hour) shows the form again, in the
// browser's language, with the address kept; it signs no one in.
func TestExpiredSignInFormAsksAgainInTheReadersLanguage(t *testing.T) {
	f := newFixture(t)
	res, page := f.postWith("/console/login", url.Values{"email": {"kari@example.com"}, "password": {password}}, "Accept-Language", "nb-NO,nb;q=0.9")
	if res.StatusCode != http.StatusForbidden || !strings.Contains(page, "Innloggingsskjemaet var utløpt") || !strings.Contains(page, `value="kari@example.com"`) {
		t.Errorf("expired sign-in form: %d\n%s", res.StatusCode, page)
	}
	if r, _ := f.get("/console/"); r.Request.URL.Path != "/console/login" {
		t.Errorf("signed in without the form's token: at %s", r.Request.URL.Path)
	}
}

// publishedEvent reads the newest event on a subject and who published it.
func (f *fixture) publishedEvent(subject string) (*notifier.Event, string) {
	f.t.Helper()
	st, err := f.conn.JS.Stream(context.Background(), jetstream.EventsStream)
	if err != nil {
		f.t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(context.Background(), subject)
	if err != nil {
		f.t.Fatalf("nothing published on %s: %v", subject, err)
	}
	ev, err := notifier.DecodeEvent(m.Data)
	if err != nil {
		f.t.Fatal(err)
	}
	return ev, m.Header.Get(jetstream.PublishedByHeader)
}

func TestOpenAnIncidentInBothLanguages(t *testing.T) {
	f := newFixture(t)
	f.signIn("kari@example.com")
	_, form := f.get("/console/incidents/new")
	eventID := regexp.MustCompile(`name="event_id" value="([^"]+)"`).FindStringSubmatch(form)[1]
	fields := url.Values{"csrf": {f.csrf}, "kind": {"incident"}, "new": {"true"}, "event_id": {eventID}, "type": {"incident.opened"},
		"incident_id": {"login-2026"},
		"title_nb":    {"Problemer med innlogging"}, "title_en": {"Login problems"},
		"message_nb": {"Noen får ikke logget inn. Vi undersøker saken."}, "message_en": {"Some cannot log in. We are looking into it."},
		"status": {"investigating"}, "impact": {"major"}, "components": {"styreweb, gnist"},
		"started_at": {time.Now().In(time.FixedZone("", 3600)).Add(-time.Hour).Format("2006-01-02T15:04")},
		"next":       {"2h"}, "risk": {"unknown"}}
	res, preview := f.post("/console/incidents/preview", fields)
	if res.StatusCode != 200 {
		t.Fatalf("preview: %d\n%s", res.StatusCode, preview)
	}
	for _, want := range []string{"Dette får leserne", "Ny driftsmelding: Problemer med innlogging (feilsøking pågår)",
		"New incident: Login problems (investigating)", "Vi vet ennå ikke om dataene dine er berørt", "Publiser det som vises ovenfor"} {
		if !strings.Contains(html.UnescapeString(preview), want) {
			t.Errorf("preview lacks %q", want)
		}
	}
	// The promise two hours on: with the date when that is tomorrow in
	// Oslo (after 22:00).
	if next := regexp.MustCompile(`Neste status (\d{1,2}\.\d{1,2}\.(\d{4})? )?kl\. \d\d:\d\d\.`); !next.MatchString(html.UnescapeString(preview)) {
		t.Errorf("preview lacks the nb SMS promise (%s)", next)
	}
	event := html.UnescapeString(regexp.MustCompile(`name="event" value="([^"]+)"`).FindStringSubmatch(preview)[1])
	res, _ = f.post("/console/publish", url.Values{"csrf": {f.csrf}, "event": {event}})
	if res.StatusCode != 200 || res.Request.URL.Path != "/console/progress/"+eventID {
		t.Fatalf("publish: %d at %s", res.StatusCode, res.Request.URL.Path)
	}
	ev, by := f.publishedEvent("varsel.events.incident.opened")
	if ev.ID != eventID || ev.Incident.Title["nb"] != "Problemer med innlogging" || ev.Incident.NextUpdateAt == nil || !strings.HasPrefix(by, "Kari Nordmann <kari@example.com>") {
		t.Errorf("published %+v by %q", ev.Incident, by)
	}
	if d := time.Until(*ev.Incident.NextUpdateAt); d < 110*time.Minute || d > 121*time.Minute {
		t.Errorf("next update in %s, want two hours", d)
	}
	// The same preview published again sends nothing, and says so (it
	// went to the progress page as if it had gone out).
	res, page := f.post("/console/publish", url.Values{"csrf": {f.csrf}, "event": {event}})
	if res.StatusCode != http.StatusConflict || !strings.Contains(html.UnescapeString(page), "Dette er allerede publisert ("+eventID+"): ingenting ble sendt på nytt.") {
		t.Errorf("publishing the same event again: %d\n%s", res.StatusCode, page)
	}
}

// TestOldPreviewIsNotPublished: a preview fixes the update's time and its
// promise; one left open past its promise, or for long, is refused with
// the reason, not published with a time already passed.
func TestOldPreviewIsNotPublished(t *testing.T) {
	f := newFixture(t)
	f.signIn("kari@example.com")
	_, form := f.get("/console/incidents/new")
	eventID := regexp.MustCompile(`name="event_id" value="([^"]+)"`).FindStringSubmatch(form)[1]
	_, preview := f.post("/console/incidents/preview", url.Values{"csrf": {f.csrf}, "kind": {"incident"}, "new": {"true"}, "event_id": {eventID},
		"type": {"incident.opened"}, "incident_id": {"old-preview"}, "title_nb": {"Tregt"}, "title_en": {"Slow"}, "message_nb": {"Vi ser på det."}, "message_en": {"On it."},
		"status": {"investigating"}, "impact": {"minor"}, "components": {"web"}, "started_at": {time.Now().In(time.FixedZone("", 3600)).Add(-time.Hour).Format("2006-01-02T15:04")}, "next": {"1h"}})
	raw := html.UnescapeString(regexp.MustCompile(`name="event" value="([^"]+)"`).FindStringSubmatch(preview)[1])
	ev, err := notifier.DecodeEvent([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	aged := func(by time.Duration) string {
		old := *ev
		in := *old.Incident
		old.Time, in.StartedAt = old.Time.Add(-by), in.StartedAt.Add(-by)
		next := in.NextUpdateAt.Add(-by)
		in.NextUpdateAt, old.Incident = &next, &in
		b, _ := json.Marshal(&old)
		return string(b)
	}
	for _, c := range []struct {
		age  time.Duration
		want string
	}{
		{70 * time.Minute, "Tidspunktet for neste oppdatering ("},
		{20 * time.Minute, "Forhåndsvisningen er 20 minutter gammel"},
	} {
		res, page := f.post("/console/publish", url.Values{"csrf": {f.csrf}, "event": {aged(c.age)}})
		if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(html.UnescapeString(page), c.want) {
			t.Errorf("a preview %s old: %d, want 422 saying %q:\n%s", c.age, res.StatusCode, c.want, page)
		}
	}
	if res, _ := f.post("/console/publish", url.Values{"csrf": {f.csrf}, "event": {raw}}); res.StatusCode != 200 {
		t.Errorf("the fresh preview: %d", res.StatusCode)
	}
}

func TestOneLanguageNeedsAYes(t *testing.T) {
	f := newFixture(t)
	f.signIn("alex@example.com")
	_, form := f.get("/console/incidents/new")
	eventID := regexp.MustCompile(`name="event_id" value="([^"]+)"`).FindStringSubmatch(form)[1]
	_, preview := f.post("/console/incidents/preview", url.Values{"csrf": {f.csrf}, "kind": {"incident"}, "new": {"true"}, "event_id": {eventID},
		"type": {"incident.opened"}, "title_en": {"Login problems"}, "message_en": {"Some cannot log in."},
		"status": {"investigating"}, "impact": {"minor"}, "components": {"web"}, "started_at": {"2026-01-01T10:00"}, "next": {"none"}})
	if !strings.Contains(preview, "Only in one language: Title, Message") || !strings.Contains(preview, `name="confirm_one_language"`) {
		t.Fatalf("missing translation not shown:\n%s", preview)
	}
	event := html.UnescapeString(regexp.MustCompile(`name="event" value="([^"]+)"`).FindStringSubmatch(preview)[1])
	if res, _ := f.post("/console/publish", url.Values{"csrf": {f.csrf}, "event": {event}}); res.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("published in one language without a yes: %d", res.StatusCode)
	}
	if res, _ := f.post("/console/publish", url.Values{"csrf": {f.csrf}, "event": {event}, "confirm_one_language": {"yes"}}); res.StatusCode != 200 {
		t.Errorf("with the yes: %d", res.StatusCode)
	}
}

func TestHoldingUpdateInOneClick(t *testing.T) {
	f := newFixture(t)
	two := time.Now().Add(-2 * time.Hour).Truncate(time.Minute)
	ev := &notifier.Event{ID: "u1", Type: notifier.IncidentOpened, Time: two, Incident: &notifier.Incident{ID: "inc", Title: notifier.Localized{"en": "Slow", "nb": "Tregt"},
		Status: notifier.StatusIdentified, Impact: notifier.ImpactMinor, Components: []string{"web"}, StartedAt: two, Message: notifier.Localized{"en": "On it.", "nb": "Vi er på saken."}}}
	if _, err := f.conn.Incidents.Update(context.Background(), "inc", func(s *notifier.IncidentState) error { s.Apply(ev); return nil }); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, ok := f.status.Incident("inc"); !ok; _, ok = f.status.Incident("inc") {
		if time.Now().After(deadline) {
			t.Fatal("incident not seen")
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.signIn("kari@example.com")
	_, page := f.get("/console/")
	if !strings.Contains(page, "Statusen gjelder fortsatt") || !strings.Contains(page, "/console/incidents/inc/holding") {
		t.Fatalf("dashboard has no holding button:\n%s", page)
	}
	holdingID := regexp.MustCompile(`name="event_id" value="(inc-holding-[^"]+)"`).FindStringSubmatch(page)[1]
	res, _ := f.post("/console/incidents/inc/holding", url.Values{"csrf": {f.csrf}, "next": {"4h"}, "event_id": {holdingID}})
	if res.StatusCode != 200 || res.Request.URL.Path != "/console/progress/"+holdingID {
		t.Fatalf("holding: %d at %s", res.StatusCode, res.Request.URL.Path)
	}
	// A second click on the same button is the same event: sent once.
	if res, page := f.post("/console/incidents/inc/holding", url.Values{"csrf": {f.csrf}, "next": {"4h"}, "event_id": {holdingID}}); res.StatusCode != http.StatusConflict ||
		!strings.Contains(html.UnescapeString(page), "ingenting ble sendt på nytt") {
		t.Errorf("second click: %d\n%s", res.StatusCode, page)
	}
	got, by := f.publishedEvent("varsel.events.incident.updated")
	if got.ID != holdingID {
		t.Errorf("holding update %s, want the button's id %s", got.ID, holdingID)
	}
	// A button on a page older than two minutes (left open, or brought
	// back from the browser's cache) publishes a new update, not a 409.
	old := "inc-holding-" + strings.Replace(time.Now().Add(-3*time.Minute).UTC().Format("20060102T150405.000Z"), ".", "", 1)
	if res, _ := f.post("/console/incidents/inc/holding", url.Values{"csrf": {f.csrf}, "next": {"1h"}, "event_id": {old}}); res.StatusCode != 200 || res.Request.URL.Path == "/console/progress/"+old {
		t.Errorf("a click on a stale page: %d at %s", res.StatusCode, res.Request.URL.Path)
	}
	if got.Incident.HoldingSince == nil || !got.Incident.HoldingSince.Equal(two) || got.Incident.Message != nil || !strings.Contains(by, "kari@example.com") {
		t.Errorf("holding update %+v by %q", got.Incident, by)
	}
	if d := time.Until(*got.Incident.NextUpdateAt); d < 235*time.Minute || d > 241*time.Minute {
		t.Errorf("next update in %s, want 4 h", d)
	}

	// An update that raises nothing sends no SMS, and its preview shows
	// none (it showed one no one would get).
	_, form := f.get("/console/incidents/inc")
	eventID := regexp.MustCompile(`name="event_id" value="([^"]+)"`).FindStringSubmatch(form)[1]
	_, preview := f.post("/console/incidents/preview", url.Values{"csrf": {f.csrf}, "kind": {"incident"}, "event_id": {eventID}, "type": {"incident.updated"},
		"incident_id": {"inc"}, "title_nb": {"Tregt"}, "title_en": {"Slow"}, "message_nb": {"Fortsatt tregt."}, "message_en": {"Still slow."},
		"status": {"identified"}, "impact": {"minor"}, "components": {"web"}, "started_at": {two.In(time.FixedZone("", 3600)).Format("2006-01-02T15:04")}, "next": {"none"}})
	if seen := html.UnescapeString(preview); strings.Contains(seen, `class="message sms"`) || !strings.Contains(seen, "Denne oppdateringen sendes ikke på SMS") {
		t.Errorf("the preview of an update that sends no SMS shows one, or does not say so:\n%s", seen)
	}
}

func TestLetterPreviewTestAndConfirm(t *testing.T) {
	f := newFixture(t)
	f.signIn("alex@example.com")
	_, form := f.get("/console/letters/new")
	eventID := regexp.MustCompile(`name="event_id" value="([^"]+)"`).FindStringSubmatch(form)[1]
	fields := url.Values{"csrf": {f.csrf}, "event_id": {eventID}, "audience": {"all"},
		"subject_en": {"About the outage"}, "subject_nb": {"Om driftsavbruddet"},
		"what_happened_en": {"A disk failed."}, "what_happened_nb": {"En disk feilet."},
		"data_safety_en": {"No data was lost."}, "data_safety_nb": {"Ingen data gikk tapt."},
		"going_forward_en": {"We add a mirror."}, "going_forward_nb": {"Vi legger til en speiling."},
		"apology_en": {"We are sorry."}, "apology_nb": {"Vi beklager."},
		"sign_name": {"Alex Smith"}, "sign_title_en": {"Head of support"}, "sign_title_nb": {"Kundeservicesjef"}, "action": {"test"}}
	res, preview := f.post("/console/letters/preview", fields)
	if res.StatusCode != 200 || len(f.sent) != 1 || !strings.HasPrefix(f.sent[0], "alex@example.com [Test] About the outage") {
		t.Fatalf("test send: %d, sent %v", res.StatusCode, f.sent)
	}
	if !strings.Contains(preview, "A test was sent to alex@example.com.") || !strings.Contains(preview, `name="confirm_send"`) {
		t.Errorf("preview lacks the test notice or the confirmation step")
	}
	event := html.UnescapeString(regexp.MustCompile(`name="event" value="([^"]+)"`).FindStringSubmatch(preview)[1])
	if res, _ := f.post("/console/publish", url.Values{"csrf": {f.csrf}, "event": {event}}); res.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("letter sent without the confirmation: %d", res.StatusCode)
	}
	if res, _ := f.post("/console/publish", url.Values{"csrf": {f.csrf}, "event": {event}, "confirm_send": {"yes"}}); res.StatusCode != 200 {
		t.Errorf("letter with confirmation: %d", res.StatusCode)
	}
	ev, _ := f.publishedEvent("varsel.events.letter.broadcast")
	if ev.ID != eventID || ev.Letter.Sections.Apology["nb"] != "Vi beklager." {
		t.Errorf("letter = %+v", ev.Letter)
	}
}

// TestProblemsSpeakTheStaffMembersLanguage: the form's problems name the
// field by its label and say what is wrong in the staff member's language,
// once each (they were the validator's English with JSON paths and UTC
// times, one bad value twice), and nothing typed is lost.
func TestProblemsSpeakTheStaffMembersLanguage(t *testing.T) {
	f := newFixture(t)
	f.signIn("kari@example.com")
	_, form := f.get("/console/incidents/new")
	eventID := regexp.MustCompile(`name="event_id" value="([^"]+)"`).FindStringSubmatch(form)[1]
	local := func(d time.Duration) string {
		return time.Now().In(time.FixedZone("", 3600)).Add(d).Format("2006-01-02T15:04")
	}
	fields := url.Values{"csrf": {f.csrf}, "kind": {"incident"}, "new": {"true"}, "event_id": {eventID}, "type": {"incident.opened"},
		"incident_id": {"problems"}, "title_nb": {"Tregt i Oslo"}, "title_en": {"Slow in Oslo"}, "message_nb": {"Vi ser på det."}, "message_en": {"On it."},
		"status": {"investigating"}, "impact": {"minor"}, "components": {"web"}}
	for _, c := range []struct {
		name        string
		set         map[string]string
		want, never string
	}{
		{"a time that is not one", map[string]string{"started_at": local(-time.Hour), "next": "at", "next_at": "i morgen 14:00"},
			"Neste oppdatering: «i morgen 14:00» er ikke en dato og et klokkeslett.", "required when"},
		{"a promise already passed", map[string]string{"started_at": local(-time.Hour), "next": "at", "next_at": local(-30 * time.Minute)},
			"er allerede passert.", "is before the event time"},
		{"a time beside another choice", map[string]string{"started_at": local(-time.Hour), "next": "2h", "next_at": local(3 * time.Hour)},
			"Neste oppdatering: du har skrevet et tidspunkt, men valgt «om to timer». Velg «klokken»", "next_at:"},
		{"a start in the future", map[string]string{"started_at": local(365 * 24 * time.Hour), "next": "none"},
			"er fram i tid; en hendelse starter før den meldes.", "incident.started_at"},
		{"no start", map[string]string{"next": "none"}, "Startet (Europe/Oslo): må fylles ut.", "incident.started_at"},
		{"a component that is no id", map[string]string{"started_at": local(-time.Hour), "next": "none", "components": "gnist/app"},
			"Komponenter: «gnist/app» er ikke en id: bruk bare bokstaver, sifre, - og _", "must be 1–128"},
		{"a backup from after the update", map[string]string{"started_at": local(-time.Hour), "next": "none", "risk": "low", "restore_state": "planned", "restore_from": local(2 * time.Hour)},
			"er etter denne oppdateringen; en sikkerhetskopi er fra før den.", "is after the event time"},
		{"a promise a mistyped year ahead", map[string]string{"started_at": local(-time.Hour), "next": "at", "next_at": local(400 * 24 * time.Hour)},
			"er mer enn 31 dager fram i tid; sjekk datoen.", "more than 31 days"},
	} {
		form := url.Values{}
		for k, v := range fields {
			form[k] = v
		}
		for k, v := range c.set {
			form.Set(k, v)
		}
		res, page := f.post("/console/incidents/preview", form)
		seen := html.UnescapeString(page)
		if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(seen, c.want) || strings.Contains(seen, c.never) {
			t.Errorf("%s: %d, want %q and never %q:\n%s", c.name, res.StatusCode, c.want, c.never, problemsOf(seen))
		}
		if !strings.Contains(seen, "Tregt i Oslo") {
			t.Errorf("%s: the typed title is lost", c.name)
		}
	}
}

// problemsOf is the problem list of a console page, for a failure message.
func problemsOf(page string) string {
	if i := strings.Index(page, `class="error" role="alert"`); i >= 0 {
		return page[i:min(len(page), i+800)]
	}
	return page
}

// TestFormAfterTheSessionEndedSaysSo: a form sent after the session ended
// answers 401 with a page in the reader's language that says nothing was
// sent and how to keep the text (it was a bare English "sign in first").
func TestFormAfterTheSessionEndedSaysSo(t *testing.T) {
	f := newFixture(t)
	res, page := f.postWith("/console/incidents/preview", url.Values{"title_nb": {"Tregt"}}, "Accept-Language", "nb", "Referer", f.srv.URL+"/console/incidents/new")
	if res.StatusCode != http.StatusUnauthorized || !strings.Contains(page, "Økten din er avsluttet, så ingenting ble sendt.") || !strings.Contains(page, `href="/console/incidents/new"`) {
		t.Errorf("a form after the session ended: %d\n%s", res.StatusCode, page)
	}
}
