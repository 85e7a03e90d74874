package webhook

import (
	"bytes"
	"encoding/json"
	"flag"
	"log/slog"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/varsel/varsel/examples"
	"github.com/varsel/varsel/notifier"
	"github.com/varsel/varsel/notifier/render"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite the examples in docs/webhooks.md from what Notify sends")

// docEvents are the example events whose deliveries docs/webhooks.md
// shows, one per event type.
var docEvents = map[notifier.EventType]struct{ scenario, id string }{
	notifier.IncidentOpened:       {"styreweb", "styreweb-2019-09-16-1100"},
	notifier.IncidentUpdated:      {"styreweb", "styreweb-2019-09-17-1000"},
	notifier.IncidentResolved:     {"styreweb", "styreweb-2019-09-19-0400"},
	notifier.IncidentPostmortem:   {"led", "led-2019-03-06-2215-postmortem"},
	notifier.MaintenanceScheduled: {"maintenance", "styreweb-db-2019-10-01-1000-scheduled"},
	notifier.MaintenanceStarted:   {"maintenance", "styreweb-db-2019-10-08-2300-started"},
	notifier.MaintenanceCompleted: {"maintenance", "styreweb-db-2019-10-09-0120-completed"},
	notifier.LetterBroadcast:      {"led", "led-letter-2019-03-06"},
}

// docDelivery builds the delivery of an example event to an English
// subscriber in Oslo, as the pipeline would: the incident state after the
// event, the message from the real renderer.
func docDelivery(t *testing.T, r *render.Renderer, scenario, id string) *notifier.Delivery {
	t.Helper()
	events, err := examples.Scenario(scenario)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]*notifier.IncidentState{}
	sub := &notifier.Subscriber{ID: "acme", Locale: "en", WebhookURL: "https://hooks.example.com/varsel"}
	for _, ev := range events {
		var st *notifier.IncidentState
		if iid := ev.IncidentID(); iid != "" {
			if states[iid] == nil {
				states[iid] = &notifier.IncidentState{}
			}
			st = states[iid]
			if ev.Incident != nil {
				st.Apply(ev)
			}
		}
		if ev.ID != id {
			continue
		}
		if ev.Letter != nil {
			st = nil // letters carry no incident state
		}
		m, err := r.Render(ev, st, sub, notifier.Webhook)
		if err != nil {
			t.Fatal(err)
		}
		return &notifier.Delivery{ID: notifier.DeliveryID(ev.ID, sub.ID, notifier.Webhook), Channel: notifier.Webhook,
			Event: ev, Incident: st, Subscriber: sub, Message: m, Attempt: 1}
	}
	t.Fatalf("scenario %s has no event %s", scenario, id)
	return nil
}

// TestDocExamplesAreWhatIsSent keeps docs/webhooks.md true: each example
// is the exact body Notify sends for an example event (signed three seconds
// after the event), and the webhook-id beside it is that delivery's.
// go test ./channels/webhook -run DocExamples -update-docs rewrites them.
func TestDocExamplesAreWhatIsSent(t *testing.T) {
	tokens, err := notifier.NewTokens([]byte("docs-secret-docs-secret-docs-secret"))
	if err != nil {
		t.Fatal(err)
	}
	// With the demo's site file: the examples show the components' names.
	site, err := examples.Site()
	if err != nil {
		t.Fatal(err)
	}
	r, err := render.New(render.Config{PublicURL: "https://status.example.com", DefaultLocale: "en", DefaultTimezone: "Europe/Oslo",
		Site: site}, tokens, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../../docs/webhooks.md")
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)(webhook-id: (msg_[a-z0-9]+)</code>\\)</summary>\n\n)?```json\n(.*?)\n```")
	seen := map[notifier.EventType]bool{}
	out := block.ReplaceAllFunc(doc, func(b []byte) []byte {
		m := block.FindSubmatch(b)
		var p Payload
		if err := json.Unmarshal(m[3], &p); err != nil {
			t.Errorf("example does not decode: %v\n%s", err, m[3])
			return b
		}
		which, ok := docEvents[p.Type]
		if !ok {
			t.Errorf("example of unknown type %q", p.Type)
			return b
		}
		seen[p.Type] = true
		d := docDelivery(t, r, which.scenario, which.id)
		want, err := json.MarshalIndent(buildPayload(d, d.Event.Time.Add(3*time.Second)), "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		id := MessageID(d.ID)
		if !*updateDocs {
			if !bytes.Equal(m[3], want) {
				t.Errorf("the %s example is not what Notify sends for %s (go test ./channels/webhook -run DocExamples -update-docs):\n%s\nwant\n%s", p.Type, which.id, m[3], want)
			}
			if len(m[1]) > 0 && string(m[2]) != id {
				t.Errorf("the %s example's webhook-id is %s, want %s", p.Type, m[2], id)
			}
			return b
		}
		var head []byte
		if len(m[1]) > 0 {
			head = []byte("webhook-id: " + id + "</code>)</summary>\n\n")
		}
		return append(append(append(head, "```json\n"...), want...), "\n```"...)
	})
	for _, typ := range notifier.EventTypes {
		if !seen[typ] {
			t.Errorf("docs/webhooks.md has no example of %s", typ)
		}
	}
	if *updateDocs && !bytes.Equal(out, doc) {
		if err := os.WriteFile("../../docs/webhooks.md", out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
