package console_test

import (
	"html"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/varsel/varsel/examples"
)

// TestUnknownComponentNoted: the incident form notes the components the
// site file does not name, in the staff member's language, and the preview
// still goes through: such an event is accepted. Known components get no
// note, and without a site file nothing is unknown.
func TestUnknownComponentNoted(t *testing.T) {
	site, err := examples.Site()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		who, components, want, not string
		withSite                   bool
	}{
		{"kari@example.com", "gnist, ghost", "Ukjent komponent: ghost (står ikke i nettstedsfilen)", "Ukjente", true},
		{"kari@example.com", "ghost, spook", "Ukjente komponenter: ghost, spook (står ikke i nettstedsfilen)", "", true},
		{"alex@example.com", "ghost", "Unknown component: ghost (not in the site file)", "", true},
		{"alex@example.com", "gnist, styreweb", "", "Unknown component", true},
		{"kari@example.com", "ghost", "", "Ukjent komponent", false},
	} {
		f := newFixture(t)
		if tc.withSite {
			f = newFixtureSite(t, site)
		}
		f.signIn(tc.who)
		_, form := f.get("/console/incidents/new")
		eventID := regexp.MustCompile(`name="event_id" value="([^"]+)"`).FindStringSubmatch(form)[1]
		fields := url.Values{"csrf": {f.csrf}, "kind": {"incident"}, "new": {"true"}, "event_id": {eventID}, "type": {"incident.opened"},
			"incident_id": {"login-2026"},
			"title_nb":    {"Problemer med innlogging"}, "title_en": {"Login problems"},
			"message_nb": {"Vi undersøker saken."}, "message_en": {"We are looking into it."},
			"status": {"investigating"}, "impact": {"major"}, "components": {tc.components},
			"started_at": {time.Now().In(time.FixedZone("", 3600)).Add(-time.Hour).Format("2006-01-02T15:04")},
			"next":       {"2h"}}
		res, preview := f.post("/console/incidents/preview", fields)
		page := html.UnescapeString(preview)
		if res.StatusCode != 200 || !strings.Contains(page, `name="event"`) {
			t.Errorf("%s %q: preview %d, want the event ready to publish", tc.who, tc.components, res.StatusCode)
		}
		if tc.want != "" && !strings.Contains(page, tc.want) {
			t.Errorf("%s %q: the form lacks %q", tc.who, tc.components, tc.want)
		}
		if tc.not != "" && strings.Contains(page, tc.not) {
			t.Errorf("%s %q: the form says %q", tc.who, tc.components, tc.not)
		}
	}
}

// TestLetterToAnUnknownComponentIsNoted: the letter form notes an audience
// component the site file does not name, as the incident form does (a
// typo there sent the letter to fewer people, unsaid).
func TestLetterToAnUnknownComponentIsNoted(t *testing.T) {
	site, err := examples.Site()
	if err != nil {
		t.Fatal(err)
	}
	f := newFixtureSite(t, site)
	f.signIn("kari@example.com")
	_, form := f.get("/console/letters/new")
	eventID := regexp.MustCompile(`name="event_id" value="([^"]+)"`).FindStringSubmatch(form)[1]
	_, page := f.post("/console/letters/preview", url.Values{"csrf": {f.csrf}, "event_id": {eventID}, "audience": {"components"}, "components": {"styreweeb"},
		"subject_en": {"Sorry"}, "subject_nb": {"Beklager"}, "what_happened_en": {"It broke."}, "what_happened_nb": {"Det røk."},
		"data_safety_en": {"Safe."}, "data_safety_nb": {"Trygt."}, "going_forward_en": {"Better."}, "going_forward_nb": {"Bedre."},
		"apology_en": {"Sorry."}, "apology_nb": {"Beklager."}, "sign_name": {"Kari Nordmann"}, "sign_title_en": {"Head"}, "sign_title_nb": {"Sjef"}, "action": {"preview"}})
	if seen := html.UnescapeString(page); !strings.Contains(seen, "Ukjent komponent: styreweeb (står ikke i nettstedsfilen)") {
		t.Errorf("the letter form does not note the unknown component:\n%s", seen)
	}
}
