package render

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/varsel/varsel/notifier"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// goldenEvents are the events whose messages a person has read in both
// languages: of StyreWeb the opening, the update of 17 Sept 10:00, a holding
// update, the three updates that speak of the data (risk assessed as low,
// the restore planned, running, done) and the resolution; of the English
// outage the opening, the update with the restore under way, the
// resolution, the postmortem and the letter; and the StyreWeb maintenance's
// announcement, start and completion.
// The English StyreWeb reader lives in Oslo; the English LED reader in London.
var goldenEvents = map[string][]string{
	"styreweb": {"styreweb-2019-09-16-1100", "styreweb-2019-09-17-1000", "styreweb-2019-09-17-1600",
		"styreweb-2019-09-18-0740", "styreweb-2019-09-18-2200", "styreweb-2019-09-19-0400"},
	"led": {"led-2019-03-05-0805", "led-2019-03-06-0930", "led-2019-03-06-2045", "led-2019-03-06-2215-postmortem", "led-letter-2019-03-06"},
	"maintenance": {"styreweb-db-2019-10-01-1000-scheduled", "styreweb-db-2019-10-08-2300-started",
		"styreweb-db-2019-10-09-0120-completed"},
}

// goldenNewYork are the events also read by a reader of each language in
// New York, where every time Varsel writes must be in New York time, named.
var goldenNewYork = []string{"styreweb-2019-09-17-1000", "styreweb-2019-09-17-1600", "styreweb-2019-09-18-0740",
	"styreweb-db-2019-10-01-1000-scheduled"}

func TestGolden(t *testing.T) {
	// With the demo's site file, as `varsel demo` renders them: components
	// and the site by their names.
	r := newTestRenderer(t, Config{Site: exampleSite(t)})
	for scenario, ids := range goldenEvents {
		events, states := loadScenario(t, scenario)
		for _, id := range ids {
			ev := events[id]
			if ev == nil {
				t.Fatalf("scenario %s has no event %s", scenario, id)
			}
			enZone := ""
			if scenario == "led" {
				enZone = "Europe/London"
			}
			readers := map[string]*notifier.Subscriber{}
			for _, sub := range testSubscribers(enZone) {
				readers[ResolveLocale(sub.Locale, "en")] = sub
			}
			if slices.Contains(goldenNewYork, id) {
				for _, sub := range testSubscribers("America/New_York") {
					ny := *sub
					ny.Timezone = "America/New_York"
					readers[ResolveLocale(sub.Locale, "en")+".new_york"] = &ny
				}
			}
			for prefix, sub := range readers {
				for _, ch := range notifier.ChannelNames {
					if ch == notifier.SMS && ev.Type == notifier.LetterBroadcast {
						continue // letters never go out by SMS
					}
					m, err := r.Render(ev, states[id], sub, ch)
					if err != nil {
						t.Fatalf("render %s %s %s: %v", id, prefix, ch, err)
					}
					dir := filepath.Join("testdata", "golden", id)
					switch ch {
					case notifier.Email:
						checkGolden(t, filepath.Join(dir, prefix+".email.txt"), "Subject: "+m.Subject+"\n\n"+m.Text)
						checkGolden(t, filepath.Join(dir, prefix+".email.html"), m.HTML)
					case notifier.SMS:
						checkGolden(t, filepath.Join(dir, prefix+".sms.txt"), m.SMS+"\n")
					case notifier.Webhook:
						checkGolden(t, filepath.Join(dir, prefix+".webhook.txt"), m.WebhookText+"\n")
					}
				}
			}
		}
	}
}

func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test ./notifier/render -update to create it): %v", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the rendered message (run with -update after reading the diff):\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}
