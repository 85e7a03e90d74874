package render

import (
	"log/slog"
	"testing"

	"github.com/varsel/varsel/examples"
	"github.com/varsel/varsel/notifier"
)

// Unsubscribe tokens in golden files depend on this secret.
const testSecret = "varsel-test-secret-0123456789"

func newTestRenderer(t testing.TB, cfg Config) *Renderer {
	t.Helper()
	tokens, err := notifier.NewTokens([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(cfg, tokens, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// testSubscribers are a Norwegian reader in Oslo and an English one in
// enZone ("" for the default, Europe/Oslo).
func testSubscribers(enZone string) []*notifier.Subscriber {
	return []*notifier.Subscriber{
		{ID: "kari", Name: "Kari Nordmann", Email: "kari@example.com", Phone: "+4791234567", Locale: "nb-NO", Timezone: "Europe/Oslo"},
		{ID: "alex", Name: "Alex Smith", Email: "alex@example.com", Phone: "+447700900123", Locale: "en-GB", Timezone: enZone},
	}
}

// loadScenario returns a scenario's events by id and, for each, the incident
// state right after it was applied, as the pipeline would pass it.
func loadScenario(t testing.TB, name string) (map[string]*notifier.Event, map[string]*notifier.IncidentState) {
	t.Helper()
	list, err := examples.Scenario(name)
	if err != nil {
		t.Fatal(err)
	}
	events := map[string]*notifier.Event{}
	states := map[string]*notifier.IncidentState{}
	live := map[string]*notifier.IncidentState{}
	for _, ev := range list {
		events[ev.ID] = ev
		if ev.Incident == nil {
			continue
		}
		st := live[ev.Incident.ID]
		if st == nil {
			st = &notifier.IncidentState{}
			live[ev.Incident.ID] = st
		}
		st.Apply(ev)
		snapshot := *st
		snapshot.Updates = append([]notifier.Update(nil), st.Updates...)
		states[ev.ID] = &snapshot
	}
	return events, states
}

// exampleSite is the demo's site file, examples/site.toml.
func exampleSite(t testing.TB) *notifier.Site {
	t.Helper()
	site, err := examples.Site()
	if err != nil {
		t.Fatal(err)
	}
	return site
}
