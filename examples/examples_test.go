package examples

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/varsel/varsel/notifier"
)

// styrewebUpdates are the "Oppdatert HH:MM DD.MM.YYYY" stamps of the StyreWeb
// status page (seed 002), oldest first, with the next update each one
// promised ("" when it promised none).
var styrewebUpdates = []struct {
	at, next string
}{
	{"2019-09-16T11:00:00+02:00", ""},
	{"2019-09-16T11:27:00+02:00", ""},
	{"2019-09-16T15:28:00+02:00", ""},
	{"2019-09-17T00:00:00+02:00", ""},
	{"2019-09-17T08:00:00+02:00", "2019-09-17T10:00:00+02:00"},
	{"2019-09-17T10:00:00+02:00", "2019-09-17T12:00:00+02:00"},
	{"2019-09-17T12:00:00+02:00", "2019-09-17T14:00:00+02:00"},
	{"2019-09-17T14:00:00+02:00", "2019-09-17T16:00:00+02:00"},
	{"2019-09-17T16:00:00+02:00", "2019-09-17T18:00:00+02:00"},
	{"2019-09-17T18:00:00+02:00", "2019-09-17T20:00:00+02:00"},
	{"2019-09-17T20:00:00+02:00", "2019-09-18T08:00:00+02:00"},
	{"2019-09-18T07:40:00+02:00", ""},
	{"2019-09-18T22:00:00+02:00", ""},
	{"2019-09-19T04:00:00+02:00", ""},
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func TestEveryFileDecodes(t *testing.T) {
	names := Names()
	if want := []string{"led", "maintenance", "styreweb"}; !slices.Equal(names, want) {
		t.Fatalf("Names() = %v, want %v", names, want)
	}
	seen := map[string]string{}
	for _, name := range names {
		files, err := Files(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			t.Run(f, func(t *testing.T) {
				b, err := FS.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				ev, err := notifier.DecodeEvent(b)
				if err != nil {
					t.Fatalf("DecodeEvent: %v", err)
				}
				if prev, dup := seen[ev.ID]; dup {
					t.Errorf("event id %q is used by %s and %s", ev.ID, prev, f)
				}
				seen[ev.ID] = f
				// Example addresses only: the seed's real company domains must not leak in.
				if bytes.Contains(b, []byte("styreweb.com")) {
					t.Errorf("%s mentions styreweb.com; use styreweb.example", f)
				}
				checkBilingual(t, ev)
			})
		}
	}
}

// checkBilingual fails unless every localized text of ev is in English and
// Norwegian Bokmål.
func checkBilingual(t *testing.T, ev *notifier.Event) {
	t.Helper()
	texts := map[string]notifier.Localized{}
	if in := ev.Incident; in != nil {
		texts["title"] = in.Title
		// A holding update may say nothing but that an earlier one applies.
		if in.Message != nil || in.HoldingSince == nil {
			texts["message"] = in.Message
		}
		if in.Contact != nil {
			texts["contact"] = in.Contact
		}
	}
	if l := ev.Letter; l != nil {
		texts["subject"], texts["signature.title"] = l.Subject, l.Signature.Title
		if s := l.Sections; s != nil {
			texts["what_happened"], texts["data_safety"] = s.WhatHappened, s.DataSafety
			texts["going_forward"], texts["apology"] = s.GoingForward, s.Apology
		}
	}
	for field, l := range texts {
		if l["en"] == "" || l["nb"] == "" || len(l) != 2 {
			t.Errorf("%s: %s has languages %v, want exactly en and nb", ev.ID, field, slices.Sorted(maps.Keys(l)))
		}
	}
}

// checkTimeline checks what every scenario must hold: one incident, events
// in strictly increasing time, opened first and resolved last, and a status
// that never moves backwards.
func checkTimeline(t *testing.T, events []*notifier.Event, incidentID string) {
	t.Helper()
	if len(events) < 2 {
		t.Fatalf("got %d incident events, want at least 2", len(events))
	}
	if got := events[0].Type; got != notifier.IncidentOpened {
		t.Errorf("first event is %s, want %s", got, notifier.IncidentOpened)
	}
	if got := events[len(events)-1].Type; got != notifier.IncidentResolved {
		t.Errorf("last event is %s, want %s", got, notifier.IncidentResolved)
	}
	rank := -1
	for i, ev := range events {
		if ev.Incident == nil || ev.Incident.ID != incidentID {
			t.Fatalf("%s: not an event of incident %s", ev.ID, incidentID)
		}
		if i > 0 && !ev.Time.After(events[i-1].Time) {
			t.Errorf("%s at %s is not after %s at %s", ev.ID, ev.Time, events[i-1].ID, events[i-1].Time)
		}
		if i > 0 && i < len(events)-1 && ev.Type != notifier.IncidentUpdated {
			t.Errorf("%s is %s, want %s between opened and resolved", ev.ID, ev.Type, notifier.IncidentUpdated)
		}
		r := slices.Index(notifier.IncidentStatuses, ev.Incident.Status)
		if r < rank {
			t.Errorf("%s: status %s goes back from %s", ev.ID, ev.Incident.Status, notifier.IncidentStatuses[rank])
		}
		rank = r
		if ev.Incident.NextUpdateAt != nil && i+1 < len(events) && events[i+1].Time.After(*ev.Incident.NextUpdateAt) {
			t.Errorf("%s promised an update by %s, but the next one is at %s", ev.ID, ev.Incident.NextUpdateAt, events[i+1].Time)
		}
	}
}

func TestStyreWebHasEveryUpdateOfThePage(t *testing.T) {
	events, err := Scenario("styreweb")
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != len(styrewebUpdates) {
		t.Fatalf("got %d events, want one per update on the page: %d", len(events), len(styrewebUpdates))
	}
	checkTimeline(t, events, "styreweb-login-2019-09")
	for i, want := range styrewebUpdates {
		ev := events[i]
		at := mustTime(t, want.at)
		if !ev.Time.Equal(at) {
			t.Errorf("event %d (%s) at %s, want %s", i+1, ev.ID, ev.Time.Format(time.RFC3339), want.at)
		}
		if _, off := ev.Time.Zone(); off != 2*3600 {
			t.Errorf("%s: time zone offset %ds, want +02:00", ev.ID, off)
		}
		if wantID := "styreweb-" + at.Format("2006-01-02-1504"); ev.ID != wantID {
			t.Errorf("event %d has id %q, want %q", i+1, ev.ID, wantID)
		}
		switch next := ev.Incident.NextUpdateAt; {
		case want.next == "" && next != nil:
			t.Errorf("%s promises %s, but the page promised nothing", ev.ID, next)
		case want.next != "" && (next == nil || !next.Equal(mustTime(t, want.next))):
			t.Errorf("%s promises %v, want %s", ev.ID, next, want.next)
		}
		if got := ev.Incident.Components; !slices.Equal(got, []string{"styreweb", "gnist"}) {
			t.Errorf("%s: components %v, want [styreweb gnist]", ev.ID, got)
		}
		if ev.Incident.Title["nb"] != "Problemer med innlogging i StyreWeb" {
			t.Errorf("%s: title %q", ev.ID, ev.Incident.Title["nb"])
		}
	}
}

func TestStyreWebPromisesAndBackup(t *testing.T) {
	events, err := Scenario("styreweb")
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]*notifier.Event{}
	for _, ev := range events {
		byID[ev.ID] = ev
	}
	ten := byID["styreweb-2019-09-17-1000"]
	if ten == nil {
		t.Fatal("no event styreweb-2019-09-17-1000")
	}
	noon := mustTime(t, "2019-09-17T12:00:00+02:00")
	if next := ten.Incident.NextUpdateAt; next == nil || !next.Equal(noon) {
		t.Errorf("the 10:00 update promises %v, want 12:00", next)
	}

	// The page first speaks of the data at 07:40 on the 18th: the risk
	// assessed as low, the backup of 15.09.2019 kl. 03:00 not available yet;
	// at 22:00 it runs in production; at 04:00 on the 19th it has been used.
	backup := mustTime(t, "2019-09-15T03:00:00+02:00")
	wantData := map[string]notifier.RestoreState{
		"styreweb-2019-09-18-0740": notifier.RestorePlanned,
		"styreweb-2019-09-18-2200": notifier.RestoreInProgress,
		"styreweb-2019-09-19-0400": notifier.RestoreDone,
	}
	var withData []string
	for _, ev := range events {
		risk, restore := ev.Incident.Data.Current()
		if ev.Incident.Data == nil {
			continue
		}
		withData = append(withData, ev.ID)
		if risk != notifier.RiskLow {
			t.Errorf("%s: risk %q, want low (the page: the risk was assessed as low)", ev.ID, risk)
		}
		switch {
		case restore == nil:
			t.Errorf("%s: no restore", ev.ID)
		case !restore.FromBackupAt.Equal(backup) || restore.State != wantData[ev.ID]:
			t.Errorf("%s: restore %s from %s, want %s from %s", ev.ID, restore.State, restore.FromBackupAt.Format(time.RFC3339), wantData[ev.ID], backup.Format(time.RFC3339))
		}
	}
	if want := slices.Sorted(maps.Keys(wantData)); !slices.Equal(withData, want) {
		t.Errorf("events stating the data: %v, want %v", withData, want)
	}
	// The holding updates say the 14:00 update still applies, as the page did.
	two := mustTime(t, "2019-09-17T14:00:00+02:00")
	for _, id := range []string{"styreweb-2019-09-17-1600", "styreweb-2019-09-17-1800", "styreweb-2019-09-17-2000"} {
		if h := byID[id].Incident.HoldingSince; h == nil || !h.Equal(two) {
			t.Errorf("%s: holding_since %v, want 14:00", id, h)
		}
	}
	if c := byID["styreweb-2019-09-18-0740"].Incident.Contact; !strings.Contains(c["nb"], "drift@styreweb.example") || !strings.Contains(c["en"], "drift@styreweb.example") {
		t.Errorf("07:40 update contact %q does not give drift@styreweb.example", c)
	}
	if got := byID["styreweb-2019-09-18-0740"].Incident.Impact; got != notifier.ImpactCritical {
		t.Errorf("07:40 update, where the page calls the situation critical, has impact %s", got)
	}
}

func TestLEDScenarioEndsWithThePostmortemAndTheLetter(t *testing.T) {
	events, err := Scenario("led")
	if err != nil {
		t.Fatal(err)
	}
	if len(events) < 5 {
		t.Fatalf("got %d events, want opened, updated, resolved, the postmortem and the letter", len(events))
	}
	letterEv := events[len(events)-1]
	post := events[len(events)-2]
	incidentEvents := events[:len(events)-2]
	checkTimeline(t, incidentEvents, "led-outage-2019-03")
	if letterEv.Type != notifier.LetterBroadcast || letterEv.Letter == nil {
		t.Fatalf("last event is %s, want %s", letterEv.Type, notifier.LetterBroadcast)
	}
	l := letterEv.Letter
	if l.IncidentID != "led-outage-2019-03" {
		t.Errorf("letter.incident_id = %q", l.IncidentID)
	}
	if l.Sections == nil || l.Body != nil {
		t.Errorf("letter has sections %v and body %v, want sections only", l.Sections != nil, l.Body != nil)
	}
	if l.Signature.Name != "Kyle Cottington" || l.Signature.Title["en"] != "Managing Director" || l.Signature.Title["nb"] != "Daglig leder" {
		t.Errorf("signature = %+v", l.Signature)
	}

	// The postmortem closes the incident's timeline: after the resolution,
	// before the letter, which stays the last event of the scenario.
	if post.Type != notifier.IncidentPostmortem || post.Incident == nil {
		t.Fatalf("next to last event is %s, want %s", post.Type, notifier.IncidentPostmortem)
	}
	resolved := incidentEvents[len(incidentEvents)-1]
	if post.Incident.ID != "led-outage-2019-03" || post.Incident.Status != notifier.StatusResolved {
		t.Errorf("postmortem is of incident %q with status %s, want led-outage-2019-03 resolved", post.Incident.ID, post.Incident.Status)
	}
	if !post.Time.After(resolved.Time) {
		t.Errorf("the postmortem (%s) is not after the resolution (%s)", post.Time, resolved.Time)
	}
	if !letterEv.Time.After(post.Time) {
		t.Errorf("the letter (%s) is not sent after the postmortem (%s)", letterEv.Time, post.Time)
	}
	if post.Incident.Impact != resolved.Incident.Impact || !post.Incident.StartedAt.Equal(resolved.Incident.StartedAt) ||
		!slices.Equal(post.Incident.Components, resolved.Incident.Components) {
		t.Errorf("postmortem impact/started_at/components %s %s %v differ from the resolution's %s %s %v",
			post.Incident.Impact, post.Incident.StartedAt, post.Incident.Components,
			resolved.Incident.Impact, resolved.Incident.StartedAt, resolved.Incident.Components)
	}
	// What the seed letter says happened, in both languages.
	for lang, words := range map[string][]string{
		"en": {"dirty shutdown", "corrupt", "file system", "Microsoft", "backup from the previous day", "new drives", "not a data issue", "mirror"},
		"nb": {"dirty shutdown", "filsystemet", "Microsoft", "sikkerhetskopien fra dagen før", "nye disker", "ikke et dataproblem", "speiling"},
	} {
		for _, w := range words {
			if !strings.Contains(post.Incident.Message[lang], w) {
				t.Errorf("postmortem message (%s) does not mention %q", lang, w)
			}
		}
	}
	// The letter: "at no time was any of your data at risk"; the update of
	// the 6th restores the backup from the previous day, which is done by
	// the resolution.
	wantRestore := map[string]notifier.RestoreState{
		"led-2019-03-06-0930": notifier.RestoreInProgress,
		"led-2019-03-06-2045": notifier.RestoreDone,
		post.ID:               notifier.RestoreDone,
	}
	_, final := resolved.Incident.Data.Current()
	for _, ev := range events[:len(events)-1] {
		risk, restore := ev.Incident.Data.Current()
		want, stated := wantRestore[ev.ID]
		switch {
		case !stated && ev.Incident.Data != nil:
			t.Errorf("%s states the data (%+v), want nothing before the restore", ev.ID, ev.Incident.Data)
		case !stated:
		case risk != notifier.RiskNone || restore == nil || restore.State != want:
			t.Errorf("%s: risk %q, restore %+v; want risk none and a restore %s", ev.ID, risk, restore, want)
		case final == nil || !restore.FromBackupAt.Equal(final.FromBackupAt) || restore.FromBackupAt.After(ev.Incident.StartedAt):
			t.Errorf("%s: backup point %s is not the resolution's, before the outage", ev.ID, restore.FromBackupAt)
		}
	}
}

func TestMaintenanceScenario(t *testing.T) {
	events, err := Scenario("maintenance")
	if err != nil {
		t.Fatal(err)
	}
	wantTypes := []notifier.EventType{notifier.MaintenanceScheduled, notifier.MaintenanceStarted, notifier.MaintenanceCompleted}
	if len(events) != len(wantTypes) {
		t.Fatalf("got %d events, want %d: %v", len(events), len(wantTypes), wantTypes)
	}
	oslo, err := time.LoadLocation("Europe/Oslo")
	if err != nil {
		t.Fatal(err)
	}
	first := events[0].Incident
	start, end := first.ScheduledStart, first.ScheduledEnd
	if start == nil || end == nil {
		t.Fatalf("%s: scheduled_start %v, scheduled_end %v; want both", events[0].ID, start, end)
	}
	// A night window, announced at least a week ahead.
	if h := start.In(oslo).Hour(); h < 22 && h >= 6 {
		t.Errorf("window starts at %s Oslo time, want a night window (22:00–06:00)", start.In(oslo).Format("15:04"))
	}
	if h := end.In(oslo).Hour(); end.Sub(*start) > 8*time.Hour || (h > 6 && h < 22) {
		t.Errorf("window ends at %s Oslo time, want it to end by 06:00", end.In(oslo).Format("2006-01-02 15:04"))
	}
	if ahead := start.Sub(events[0].Time); ahead < 7*24*time.Hour {
		t.Errorf("maintenance announced %s ahead, want at least a week", ahead)
	}
	for i, ev := range events {
		if ev.Type != wantTypes[i] {
			t.Errorf("event %d (%s) is %s, want %s", i+1, ev.ID, ev.Type, wantTypes[i])
		}
		in := ev.Incident
		if in.ID != "styreweb-db-upgrade-2019-10" {
			t.Errorf("%s: incident id %q, want every event of the window to share styreweb-db-upgrade-2019-10", ev.ID, in.ID)
		}
		if in.ScheduledStart == nil || !in.ScheduledStart.Equal(*start) || in.ScheduledEnd == nil || !in.ScheduledEnd.Equal(*end) {
			t.Errorf("%s: window %v–%v, want %s–%s on every event", ev.ID, in.ScheduledStart, in.ScheduledEnd, start, end)
		}
		if !in.StartedAt.Equal(*start) {
			t.Errorf("%s: started_at %s, want the window start %s", ev.ID, in.StartedAt, start)
		}
		if !slices.Equal(in.Components, []string{"styreweb"}) || in.Title["nb"] != first.Title["nb"] {
			t.Errorf("%s: components %v and title %q, want the first event's", ev.ID, in.Components, in.Title["nb"])
		}
		if i > 0 && !ev.Time.After(events[i-1].Time) {
			t.Errorf("%s at %s is not after %s", ev.ID, ev.Time, events[i-1].Time)
		}
		// Times are written with the offset Oslo had on the day.
		for field, tm := range map[string]time.Time{"time": ev.Time, "started_at": in.StartedAt, "scheduled_start": *in.ScheduledStart, "scheduled_end": *in.ScheduledEnd} {
			_, got := tm.Zone()
			if _, want := tm.In(oslo).Zone(); got != want {
				t.Errorf("%s: %s has offset %ds, Europe/Oslo had %ds", ev.ID, field, got, want)
			}
		}
	}
	if started := events[1].Time; started.Before(*start) || !started.Before(*end) {
		t.Errorf("started at %s, outside the window %s–%s", started, start, end)
	}
	if done := events[2].Time; !done.Before(end.Add(time.Hour)) {
		t.Errorf("completed at %s, long after the window ended at %s", done, end)
	}
}

// TestEveryEventTypeHasAnExample keeps `varsel templates check` honest: it
// renders the examples, so they must hold every event type.
func TestEveryEventTypeHasAnExample(t *testing.T) {
	where := map[notifier.EventType][]string{}
	for _, name := range Names() {
		events, err := Scenario(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range events {
			where[ev.Type] = append(where[ev.Type], ev.ID)
		}
	}
	for _, typ := range notifier.EventTypes {
		if len(where[typ]) == 0 {
			t.Errorf("no example event of type %s", typ)
		}
	}
}

func TestUnknownScenario(t *testing.T) {
	if _, err := Scenario("nope"); !errors.Is(err, ErrUnknownScenario) {
		t.Errorf("Scenario(nope) error = %v, want ErrUnknownScenario", err)
	}
	if _, err := Files("../examples"); !errors.Is(err, ErrUnknownScenario) {
		t.Errorf("Files(../examples) error = %v, want ErrUnknownScenario", err)
	}
}

func TestSubscribersCSV(t *testing.T) {
	b, err := fs.ReadFile(FS, SubscribersFile)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	header := rows[0]
	wantHeader := []string{"id", "name", "email", "phone", "webhook_url", "webhook_secret", "locale", "timezone", "components"}
	if !slices.Equal(header, wantHeader) {
		t.Fatalf("header %v, want %v", header, wantHeader)
	}
	locales, zones := map[string]bool{}, map[string]bool{}
	var all, webhooks, phones int
	for i, row := range rows[1:] {
		col := func(name string) string { return row[slices.Index(header, name)] }
		s := notifier.Subscriber{
			ID: col("id"), Name: col("name"), Email: col("email"), Phone: col("phone"),
			WebhookURL: col("webhook_url"), WebhookSecret: col("webhook_secret"),
			Locale: col("locale"), Timezone: col("timezone"),
		}
		if c := col("components"); c != "" {
			s.Components = strings.Split(c, ";")
		} else {
			all++
		}
		if err := s.Validate(); err != nil {
			t.Errorf("line %d (%s): %v", i+2, s.ID, err)
		}
		if s.Email != "" && !strings.HasSuffix(s.Email, "@example.com") && !strings.HasSuffix(s.Email, "@example.org") {
			t.Errorf("line %d: %s is not an example address", i+2, s.Email)
		}
		if s.Phone != "" {
			phones++
			if !strings.HasPrefix(s.Phone, "+4799999") && !strings.HasPrefix(s.Phone, "+4479460000") {
				t.Errorf("line %d: %s is not in a fake number range", i+2, s.Phone)
			}
		}
		if s.WebhookURL != "" {
			webhooks++
		}
		locales[s.Locale], zones[s.Timezone] = true, true
	}
	for _, l := range []string{"en", "en-GB", "nb", "nb-NO", "no", "nn"} {
		if !locales[l] {
			t.Errorf("no subscriber with locale %s", l)
		}
	}
	for _, z := range []string{"Europe/Oslo", "Europe/London", "America/New_York"} {
		if !zones[z] {
			t.Errorf("no subscriber in time zone %s", z)
		}
	}
	if all == 0 || webhooks < 2 || phones == 0 {
		t.Errorf("got %d subscribers to all components, %d webhooks, %d phones; want at least 1, 2, 1", all, webhooks, phones)
	}
}

var updateDocs = flag.Bool("update-docs", false, "copy the example files into the JSON blocks of docs/events.md that link them")

// docExampleLink is a link from docs/events.md to an example file.
var docExampleLink = regexp.MustCompile(`\]\(\.\./examples/([a-z]+/[^)/]+\.json)\)`)

// TestEventsDocExamples keeps docs/events.md honest: every JSON block in it
// is a valid event, every event type has a full example, and a block whose
// introduction links an example file is that file, so the docs cannot drift
// from the examples (go test ./examples -run EventsDoc -update-docs copies
// them in).
func TestEventsDocExamples(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "events.md"))
	if err != nil {
		t.Fatal(err)
	}
	types := map[notifier.EventType]bool{}
	fromFile := map[notifier.EventType]bool{}
	parts := strings.Split(string(doc), "```json\n")
	intro := parts[0]
	for i, b := range parts[1:] {
		body, rest, ok := strings.Cut(b, "\n```")
		if !ok {
			t.Fatalf("JSON block %d is not closed", i+1)
		}
		link := docExampleLink.FindStringSubmatch(intro)
		intro = rest
		if *updateDocs && link != nil {
			raw, err := FS.ReadFile(link[1])
			if err != nil {
				t.Fatal(err)
			}
			body = strings.TrimRight(string(raw), "\n")
			parts[i+1] = body + "\n```" + rest
		}
		ev, err := notifier.DecodeEvent([]byte(body))
		if err != nil {
			t.Errorf("JSON block %d: %v", i+1, err)
			continue
		}
		types[ev.Type] = true
		if link == nil {
			continue
		}
		raw, err := FS.ReadFile(link[1])
		if err != nil {
			t.Errorf("JSON block %d (%s) links to %s: %v", i+1, ev.ID, link[1], err)
			continue
		}
		fileEv, err := notifier.DecodeEvent(raw)
		if err != nil {
			t.Errorf("%s: %v", link[1], err)
			continue
		}
		got, _ := json.Marshal(ev)
		want, _ := json.Marshal(fileEv)
		if !bytes.Equal(got, want) {
			t.Errorf("JSON block %d (%s) differs from the file it links, %s; copy the file into the docs", i+1, ev.ID, link[1])
			continue
		}
		fromFile[ev.Type] = true
	}
	if *updateDocs {
		if err := os.WriteFile(filepath.Join("..", "docs", "events.md"), []byte(strings.Join(parts, "```json\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, typ := range notifier.EventTypes {
		if !types[typ] {
			t.Errorf("docs/events.md has no example of %s", typ)
		} else if !fromFile[typ] {
			t.Errorf("docs/events.md has no example of %s taken from a file in examples/", typ)
		}
	}
}

// clockTime finds a time of day in free text: "12:00", "kl. 14", "kl.08".
var clockTime = regexp.MustCompile(`\b\d{1,2}:\d{2}\b|\bkl\. ?\d{1,2}\b`)

// promise finds a free text repeating the next-update promise, which Varsel
// states itself from next_update_at in each reader's zone.
var promise = regexp.MustCompile(`(?i)next (status|update) (at|by|on)|neste (status|oppdatering|statusoppdatering) (kl|kommer|\d)`)

// TestFreeTextHasOneClock: no example repeats the promise of the next
// update in its free text, and a text that mentions a time of day names
// the zone it is in, so a reader in New York never meets an Oslo time
// beside the times Varsel writes in hers.
func TestFreeTextHasOneClock(t *testing.T) {
	for _, name := range Names() {
		events, err := Scenario(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range events {
			var texts []notifier.Localized
			if in := ev.Incident; in != nil {
				texts = append(texts, in.Message, in.Contact)
			}
			for _, l := range texts {
				for lang, s := range l {
					if m := promise.FindString(s); m != "" {
						t.Errorf("%s (%s): free text repeats the promise %q", ev.ID, lang, m)
					}
					if m := clockTime.FindString(s); m != "" && !strings.Contains(s, "Norwegian time") && !strings.Contains(s, "norsk tid") {
						t.Errorf("%s (%s): free text gives the time %q without naming its zone", ev.ID, lang, m)
					}
				}
			}
		}
	}
}
