package webhook

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/varsel/varsel/notifier"
)

// Payload is the JSON body of every webhook (docs/webhooks.md), in the
// Standard Webhooks envelope.
type Payload struct {
	// Type is the event type, e.g. "incident.updated".
	Type notifier.EventType `json:"type"`
	// Timestamp is when this attempt was made, RFC 3339 in UTC.
	Timestamp string `json:"timestamp"`
	Data      Data   `json:"data"`
}

// Data is the "data" object of a Payload.
type Data struct {
	EventID string `json:"event_id"`
	// Incident is the incident as it stands after the event, in every
	// language the producer wrote; nil for letter.broadcast.
	Incident *notifier.Incident `json:"incident,omitempty"`
	// Letter is set for letter.broadcast only.
	Letter *notifier.Letter `json:"letter,omitempty"`
	// Update is this event's entry in the incident's timeline.
	Update *notifier.Update `json:"update,omitempty"`
	// Sequence orders the updates of one incident: a receiver that has
	// seen a higher sequence for the incident can ignore a lower one. Zero
	// (omitted) for letters.
	Sequence int64 `json:"sequence,omitempty"`
	// PeakImpact is the worst impact of the incident while it was open;
	// Incident.Impact is "none" once it is closed.
	PeakImpact notifier.Impact `json:"peak_impact,omitempty"`
	// ComponentNames names the components of the incident (or the
	// letter's audience) in Locale, by id: the names of the site file
	// (VARSEL_SITE_FILE), the id itself where it names none. Absent when
	// the event names no components.
	ComponentNames map[string]string `json:"component_names,omitempty"`
	// Locale is the language of Text.
	Locale string `json:"locale,omitempty"`
	// Text is the message rendered for the subscriber's language.
	Text  string `json:"text"`
	Links Links  `json:"links"`
}

// Links point to the public status page.
type Links struct {
	Status   string `json:"status,omitempty"`
	Incident string `json:"incident,omitempty"`
}

// buildPayload assembles the body for d at time now.
func buildPayload(d *notifier.Delivery, now time.Time) *Payload {
	p := &Payload{
		Type:      d.Event.Type,
		Timestamp: now.UTC().Format(time.RFC3339),
		Data: Data{
			EventID: d.Event.ID,
			Locale:  d.Message.Locale,
			Text:    d.Message.WebhookText,
			// The message's names: the same language as Text.
			ComponentNames: d.Message.ComponentNames,
			Links:          Links{Status: d.Message.StatusURL, Incident: d.Message.IncidentURL},
		},
	}
	switch {
	case d.Event.Type == notifier.LetterBroadcast:
		p.Data.Letter = d.Event.Letter
	case d.Incident != nil:
		inc := d.Incident.Incident
		p.Data.Incident = &inc
		p.Data.PeakImpact = d.Incident.PeakImpact
		if u := d.Incident.UpdateFor(d.Event.ID); u != nil {
			p.Data.Update = u
			p.Data.Sequence = u.Sequence
		}
	default:
		// No state (should not happen for incident events): the event's
		// own view of the incident is better than nothing.
		p.Data.Incident = d.Event.Incident
	}
	return p
}

// A fan-out sends one payload to many endpoints: everything in it but the
// timestamp is the event's and the reader's language's. bodies keeps the
// encoded "data" object of the messages being sent, so each delivery
// encodes only its envelope; the body is byte for byte what encoding the
// whole Payload gives (TestBodyCacheMatchesMarshal).

// dataKey is what a payload's data object is made of. The event and the
// incident state are the dispatcher's cached, shared (never changed)
// values; the message's parts are the rendered strings.
type dataKey struct {
	event                                  *notifier.Event
	incident                               *notifier.IncidentState
	locale, text, status, incidentURL, cns string
}

// bodyCache holds the data objects of recent messages. It is small and
// cleared when full: a fan-out has a few (one per language and time zone).
type bodyCache struct {
	mu sync.Mutex
	m  map[dataKey]cachedData
}

const bodyCacheSize = 256

// body encodes the payload for d at now.
func (c *bodyCache) body(d *notifier.Delivery, now time.Time) ([]byte, error) {
	key := dataKey{event: d.Event, incident: d.Incident, locale: d.Message.Locale, text: d.Message.WebhookText,
		status: d.Message.StatusURL, incidentURL: d.Message.IncidentURL, cns: namesKey(d.Message.ComponentNames)}
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if !ok {
		// The payload is built only for a message not seen before: what
		// differs from one delivery to the next is the timestamp alone.
		p := buildPayload(d, now)
		data, err := json.Marshal(p.Data)
		if err != nil {
			return nil, err
		}
		typ, err := json.Marshal(p.Type)
		if err != nil {
			return nil, err
		}
		e = cachedData{typ: typ, data: data}
		c.mu.Lock()
		if c.m == nil || len(c.m) >= bodyCacheSize {
			c.m = make(map[dataKey]cachedData, bodyCacheSize)
		}
		c.m[key] = e
		c.mu.Unlock()
	}
	b := make([]byte, 0, len(e.data)+len(e.typ)+len(time.RFC3339)+34)
	b = append(append(b, `{"type":`...), e.typ...)
	// An RFC 3339 time in UTC is digits, '-', ':', 'T' and 'Z': nothing
	// JSON escapes, so it is quoted as it is.
	b = append(b, `,"timestamp":"`...)
	b = now.UTC().AppendFormat(b, time.RFC3339)
	b = append(append(b, `","data":`...), e.data...)
	return append(b, '}'), nil
}

// cachedData is a message's encoded type and data object.
type cachedData struct {
	typ, data []byte
}

// namesKey is a component-name map as a comparable string.
func namesKey(m map[string]string) string {
	if len(m) == 0 {
		return ""
	}
	keys := slices.Sorted(maps.Keys(m))
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(m[k])
		b.WriteByte(0)
	}
	return b.String()
}
