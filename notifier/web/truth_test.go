package web

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/varsel/varsel/examples"
	"github.com/varsel/varsel/notifier"
)

// replay records a scenario's events as intake does: each one stored as
// planned, applied to its incident, and letters linked to theirs.
func (f *fixture) replay(t *testing.T, scenario string) {
	t.Helper()
	ctx := context.Background()
	events, err := examples.Scenario(scenario)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range events {
		now := time.Now()
		if err := f.conn.Events.Put(ctx, &notifier.EventRecord{Event: ev, ReceivedAt: now, PlannedAt: &now}); err != nil {
			t.Fatal(err)
		}
		id := ev.IncidentID()
		if id == "" {
			continue
		}
		f.update(t, id, func(s *notifier.IncidentState) error {
			if ev.Letter != nil {
				s.Letters = append(s.Letters, ev.ID)
				return nil
			}
			s.Apply(ev)
			return nil
		})
	}
}

// text strips the markup of a page, leaving what a reader sees.
func text(page string) string {
	page = regexp.MustCompile(`(?s)<style.*?</style>`).ReplaceAllString(page, "")
	page = regexp.MustCompile(`<[^>]+>`).ReplaceAllString(page, " ")
	return strings.Join(strings.Fields(page), " ")
}

func TestIncidentPageStatesDataWhereItChanged(t *testing.T) {
	f := newFixture(t)
	f.replay(t, "styreweb")
	_, page := f.do(t, http.MethodGet, "/incidents/styreweb-login-2019-09?lang=nb", "", nil)
	seen := text(page)
	// Stated once at the top and once where it was first said (07:40);
	// the restore at 07:40 (planned), 22:00 (running) and 04:00 (done).
	for want, n := range map[string]int{
		"Vi har vurdert risikoen for dataene dine som lav.":                                  2,
		"Vi planlegger å gjenopprette dataene fra sikkerhetskopien fra 15.09.2019 kl. 03:00": 1,
		"Vi gjenoppretter nå dataene fra sikkerhetskopien fra 15.09.2019 kl. 03:00":          1,
		"Dataene er gjenopprettet fra sikkerhetskopien fra 15.09.2019 kl. 03:00":             2,
	} {
		if got := strings.Count(seen, want); got != n {
			t.Errorf("%q appears %d times, want %d", want, got, n)
		}
	}
	for _, bad := range []string{"har ikke vært i fare", "Tjenesten er nede", "Tjenesten var nede · "} {
		if strings.Contains(seen, bad) {
			t.Errorf("page says %q", bad)
		}
	}
	for _, want := range []string{
		"Startet 16.09.2019 kl. 07:50, løst 19.09.2019 kl. 04:00",
		"Største omfang: Tjenesten var nede",
		// The contact of the 07:40 update, under it.
		"Trenger du hjelp? I det øyeblikket vi har tilgang til backup",
		// A holding update, written by Varsel.
		"Statusen fra 17.09.2019 kl. 14:00 gjelder fortsatt.",
	} {
		if !strings.Contains(seen, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(seen, "Neste status kl.") {
		t.Errorf("page repeats a promise in free text")
	}
}

func TestIncidentPageLabelsPostmortemAndLinksTheLetter(t *testing.T) {
	f := newFixture(t)
	f.replay(t, "led")
	for _, tc := range []struct{ lang, postmortem, letters, subject, resolved string }{
		{"en", "Postmortem", "Letters about this incident", "Life Events Diary availability", "resolved 6 Mar 2019, 21:45 CET"},
		{"nb", "Rapport etter hendelsen", "Brev om hendelsen", "Tilgjengeligheten til Life Events Diary", "løst 06.03.2019 kl. 21:45"},
	} {
		_, page := f.do(t, http.MethodGet, "/incidents/led-outage-2019-03?lang="+tc.lang, "", nil)
		seen := text(page)
		for _, want := range []string{tc.postmortem, tc.letters, tc.subject, tc.resolved} {
			if !strings.Contains(seen, want) {
				t.Errorf("%s page lacks %q:\n%s", tc.lang, want, seen)
			}
		}
		if !strings.Contains(page, `href="http://status.example.com/letters/led-letter-2019-03-06?lang=`+tc.lang+`"`) {
			t.Errorf("%s page does not link the letter", tc.lang)
		}
		res, letter := f.do(t, http.MethodGet, "/letters/led-letter-2019-03-06?lang="+tc.lang, "", nil)
		if res.StatusCode != 200 {
			t.Fatalf("letter page: %d", res.StatusCode)
		}
		seen = text(letter)
		for _, want := range map[string][]string{
			"en": {"Life Events Diary availability", "What happened", "We thank you for your patience", "Kyle Cottington", "Managing Director"},
			"nb": {"Tilgjengeligheten til Life Events Diary", "Hva skjedde", "Takk for tålmodigheten", "Kyle Cottington", "Daglig leder"},
		}[tc.lang] {
			if !strings.Contains(seen, want) {
				t.Errorf("%s letter page lacks %q", tc.lang, want)
			}
		}
	}
	for _, path := range []string{"/letters/nope", "/letters/led-2019-03-06-2045", "/letters/a*b"} {
		if res, _ := f.do(t, http.MethodGet, path, "", nil); res.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, res.StatusCode)
		}
	}
}

func TestStatusJSONResolutionTimeAndImpact(t *testing.T) {
	f := newFixture(t)
	f.replay(t, "led")
	f.replay(t, "styreweb")
	_, js := f.do(t, http.MethodGet, "/api/v1/status", "", nil)
	var st struct {
		Recent []struct {
			ID         string    `json:"id"`
			Impact     string    `json:"impact"`
			PeakImpact string    `json:"peak_impact"`
			ResolvedAt time.Time `json:"resolved_at"`
		} `json:"recent"`
	}
	if err := json.Unmarshal([]byte(js), &st); err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		at   string
		peak string
	}{
		"led-outage-2019-03":     {"2019-03-06T20:45:00Z", "major"},
		"styreweb-login-2019-09": {"2019-09-19T02:00:00Z", "critical"},
	}
	for _, it := range st.Recent {
		w, ok := want[it.ID]
		if !ok {
			continue
		}
		delete(want, it.ID)
		if got := it.ResolvedAt.UTC().Format(time.RFC3339); got != w.at {
			t.Errorf("%s: resolved_at %s, want %s (the resolution, not the postmortem)", it.ID, got, w.at)
		}
		if it.Impact != "none" || it.PeakImpact != w.peak {
			t.Errorf("%s: impact %q peak %q, want none and %s", it.ID, it.Impact, it.PeakImpact, w.peak)
		}
	}
	if len(want) > 0 {
		t.Errorf("not in recent: %v (%s)", want, js)
	}
}

func TestMaintenanceShowsItsWindowAndCompletion(t *testing.T) {
	f := newFixture(t)
	events, err := examples.Scenario("maintenance")
	if err != nil {
		t.Fatal(err)
	}
	apply := func(ev *notifier.Event) {
		f.update(t, ev.Incident.ID, func(s *notifier.IncidentState) error { s.Apply(ev); return nil })
	}
	apply(events[0]) // scheduled
	_, js := f.do(t, http.MethodGet, "/api/v1/status", "", nil)
	var st struct {
		Indicator string `json:"indicator"`
		Open      []struct {
			PeakImpact string `json:"peak_impact"`
		} `json:"open"`
	}
	if err := json.Unmarshal([]byte(js), &st); err != nil || st.Indicator != "none" || len(st.Open) != 1 || st.Open[0].PeakImpact != "" {
		t.Errorf("planned maintenance disrupts nothing yet, want indicator none and no peak impact: %s", js)
	}
	for _, tc := range []struct{ path, want string }{
		{"/?lang=nb", "Tidsrom: 08.10.2019 kl. 23:00 til 09.10.2019 kl. 02:00"},
		{"/?lang=nb&tz=America/New_York", "Tidsrom: 08.10.2019 kl. 17:00 EDT til 08.10.2019 kl. 20:00 EDT"},
		{"/?lang=en", "When: 8 Oct 2019, 23:00 CEST to 9 Oct 2019, 02:00 CEST"},
		{"/?lang=en", "Expected impact: Minor disruption"},
		{"/incidents/styreweb-db-upgrade-2019-10?lang=nb", "Tidsrom: 08.10.2019 kl. 23:00 til 09.10.2019 kl. 02:00"},
		{"/incidents/styreweb-db-upgrade-2019-10?lang=en&tz=Europe/London", "When: 8 Oct 2019, 22:00 BST to 9 Oct 2019, 01:00 BST"},
	} {
		_, page := f.do(t, http.MethodGet, tc.path, "", nil)
		if !strings.Contains(text(page), tc.want) {
			t.Errorf("%s lacks %q:\n%s", tc.path, tc.want, text(page))
		}
	}
	apply(events[1])
	apply(events[2]) // completed
	for _, lang := range []string{"en", "nb"} {
		_, page := f.do(t, http.MethodGet, "/?lang="+lang, "", nil)
		seen := text(page)
		done := map[string]string{"en": "Completed 9 Oct 2019, 01:20 CEST", "nb": "Fullført 09.10.2019 kl. 01:20"}[lang]
		if !strings.Contains(seen, done) {
			t.Errorf("%s front page lacks %q:\n%s", lang, done, seen)
		}
		if strings.Contains(seen, map[string]string{"en": "Resolved", "nb": "Løst"}[lang]) {
			t.Errorf("%s front page calls completed maintenance resolved:\n%s", lang, seen)
		}
	}
}
