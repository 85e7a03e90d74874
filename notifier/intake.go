package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"time"
)

// EventRecord is an accepted event and how far its plan got.
type EventRecord struct {
	Event      *Event     `json:"event"`
	ReceivedAt time.Time  `json:"received_at"`
	PlannedAt  *time.Time `json:"planned_at,omitempty"`
	Jobs       int        `json:"jobs"`
	// Late is set when a newer event of the incident had already been
	// applied: the event joins the timeline but is not sent.
	Late bool `json:"late,omitempty"`
	// Incident is the incident as this event left it, so every delivery of
	// the event shows the same state even when newer events follow.
	Incident *IncidentState `json:"incident,omitempty"`
	// PublishedBy says who published the event, for staff ("Kari Nordmann
	// <kari@example.com> (console)"); never shown to customers.
	PublishedBy string `json:"published_by,omitempty"`
	// Resumed is set when a plan of the event was cut short and run
	// again: jobs of the first run may still be queued beside the second
	// run's, in any order, so every delivery of the event is looked up
	// before it is sent.
	Resumed bool `json:"resumed,omitempty"`
}

// UnplannedCacheFor is how long a dispatcher may keep an event record not
// yet planned; a plan run again waits this long after marking its record
// Resumed, so no job is worked on with an older copy once the second
// run's jobs are queued.
const UnplannedCacheFor = 200 * time.Millisecond

// EventStore keeps every accepted event.
type EventStore interface {
	// Get returns the record or an error wrapping ErrNotFound.
	Get(ctx context.Context, id string) (*EventRecord, error)
	// Put creates or replaces the record.
	Put(ctx context.Context, r *EventRecord) error
}

// IncidentStore keeps the state of every incident.
type IncidentStore interface {
	// Get returns the state or an error wrapping ErrNotFound.
	Get(ctx context.Context, id string) (*IncidentState, error)
	// Update reads, changes and writes one state atomically; a missing
	// state is passed to fn as an empty one.
	Update(ctx context.Context, id string, fn func(*IncidentState) error) (*IncidentState, error)
	// List returns every incident, newest first.
	List(ctx context.Context) ([]*IncidentState, error)
}

// Rejection is an event that failed validation, kept with its reason.
type Rejection struct {
	Subject    string
	Data       []byte
	Reason     string
	Field      string // the first field at fault, for metrics
	ReceivedAt time.Time
}

// Intake takes raw events off the stream: it validates, deduplicates,
// records incident state and plans the deliveries.
type Intake struct {
	Events    EventStore
	Incidents IncidentStore
	Planner   *Planner
	// Reject stores an invalid event with its reason; it must not lose it.
	Reject func(ctx context.Context, r Rejection) error
	// Enqueue publishes one job; publishing the same job id twice must
	// deliver it once. It may buffer.
	Enqueue func(ctx context.Context, j Job) error
	// Flush waits until every job Enqueue took is stored. The event is
	// marked planned only after it succeeds, so no job is ever lost.
	Flush   func(ctx context.Context) error
	Metrics *Metrics
	Logger  *slog.Logger
	Now     func() time.Time
	// Counter keeps the per-event summary: the jobs planned per channel.
	Counter ProgressCounter
	// PublishedBy is who published the event being handled, from the
	// message's Varsel-Published-By header; "" when unknown.
	PublishedBy string
	// Reminders schedules the staff's reminders of the promise each new
	// state makes; nil schedules none.
	Reminders Reminders
	// Site is the component catalogue (VARSEL_SITE_FILE). An event naming
	// a component it does not is accepted and reported, once: a warning
	// and varsel_events_unknown_components_total. nil reports nothing.
	Site *Site
}

// ErrRejected is returned by Handle for an event that was rejected and
// stored; the caller must not redeliver it.
var ErrRejected = errors.New("event rejected")

// Handle processes one event published on subject. It returns nil when the
// event is done (planned now or earlier), an error wrapping ErrRejected when
// it was invalid and has been stored as rejected, and any other error when
// it should be redelivered later. progress is called now and then during a
// long plan so the broker knows the work is alive.
func (in *Intake) Handle(ctx context.Context, subject string, raw []byte, progress func()) error {
	now := in.now()
	ev, err := DecodeEvent(raw)
	if typ := typeOf(ev, raw); typ != "" && strings.HasPrefix(subject, "varsel.events.") && subject != "varsel.events."+typ {
		// Said beside the event's other problems, if it has any: the
		// reason names every one.
		mismatch := FieldError{Field: "type", Problem: fmt.Sprintf("%q does not match the subject %s", typ, subject)}
		var ve *ValidationError
		switch {
		case err == nil:
			err = &ValidationError{Problems: []FieldError{mismatch}}
		case errors.As(err, &ve):
			ve.Problems = append(ve.Problems, mismatch) // after them: the metric counts the first
		}
	}
	if err != nil {
		return in.reject(ctx, subject, raw, err, now)
	}

	rec, err := in.Events.Get(ctx, ev.ID)
	resumed := false
	switch {
	case err == nil && rec.PlannedAt != nil:
		in.Metrics.EventsDuplicate.Inc()
		in.Logger.Info("duplicate event ignored", "event", ev.ID)
		return nil
	case err == nil && (rec.Event == nil || rec.Event.ID != ev.ID):
		// A record that holds no event, or another one: not written by
		// intake. Take the event as new rather than trust it.
		in.Logger.Warn("stored record of an event is not one; planning the event afresh", "event", ev.ID)
		rec = &EventRecord{Event: ev, ReceivedAt: now, PublishedBy: in.PublishedBy}
		if err := in.Events.Put(ctx, rec); err != nil {
			return fmt.Errorf("store event %s: %w", ev.ID, err)
		}
		resumed = true // jobs may exist: the workers look them up
	case err == nil:
		// A plan was cut short: finish it with the event as first stored.
		// Its jobs may have been queued (and sent) before: they are marked
		// for the workers to look up.
		ev = rec.Event
		resumed = true
	case errors.Is(err, ErrNotFound):
		rec = &EventRecord{Event: ev, ReceivedAt: now, PublishedBy: in.PublishedBy}
		if err := in.Events.Put(ctx, rec); err != nil {
			return fmt.Errorf("store event %s: %w", ev.ID, err)
		}
		in.Metrics.EventsReceived.WithLabelValues(string(ev.Type)).Inc()
		in.reportUnknown(ev)
	default:
		return fmt.Errorf("read event %s: %w", ev.ID, err)
	}

	var state *IncidentState
	if id := ev.IncidentID(); id != "" {
		state, err = in.Incidents.Update(ctx, id, func(s *IncidentState) error {
			if ev.Letter != nil {
				if !slices.Contains(s.Letters, ev.ID) {
					s.Letters = append(s.Letters, ev.ID)
				}
				return nil
			}
			s.Apply(ev)
			return nil
		})
		if err != nil {
			return fmt.Errorf("record incident %s: %w", id, err)
		}
	}
	if resumed && !rec.Resumed {
		rec.Resumed = true
		if err := in.Events.Put(ctx, rec); err != nil {
			return fmt.Errorf("mark event %s resumed: %w", ev.ID, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(UnplannedCacheFor):
		}
	}
	if ev.Incident != nil && state != nil && !state.LastEventTime.After(ev.Time) && in.Reminders != nil {
		// Before planning: reminders are for staff, and a plan of many
		// jobs must not delay the timer of a promise due soon.
		if err := in.Reminders.Promised(ctx, state); err != nil {
			in.Logger.Error("staff reminders of the promise not scheduled", "incident", state.Incident.ID, "error", err)
		}
	}
	perChannel := map[ChannelName]int{}
	if ev.Incident != nil && state != nil && state.LastEventTime.After(ev.Time) {
		rec.Late = true
		in.Logger.Warn("late event recorded in the timeline but not sent: a newer update was already applied",
			"event", ev.ID, "incident", ev.Incident.ID, "event_time", ev.Time, "newest", state.LastEventTime)
	} else {
		count := 0
		n, err := in.Planner.Plan(ctx, ev, state, func(j Job) error {
			if count++; count%1000 == 0 && progress != nil {
				progress()
			}
			perChannel[j.Channel]++
			j.Seen = resumed
			return in.Enqueue(ctx, j)
		})
		if err != nil {
			return err
		}
		rec.Jobs = n
	}
	if in.Flush != nil {
		if err := in.Flush(ctx); err != nil {
			return fmt.Errorf("queue jobs of %s: %w", ev.ID, err)
		}
	}
	if in.Counter != nil {
		for _, ch := range ChannelNames {
			// Counted before the event is marked planned: a plan cut short
			// after this is run again, and its count, under the same key,
			// is not made twice.
			if n := perChannel[ch]; n > 0 {
				if err := in.Counter.Count(ctx, ev.ID, ch, CountPlanned, int64(n), ev.ID+".plan."+string(ch)); err != nil {
					return fmt.Errorf("count the plan of %s: %w", ev.ID, err)
				}
			}
		}
	}
	rec.Incident = state
	planned := in.now()
	rec.PlannedAt = &planned
	if err := in.Events.Put(ctx, rec); err != nil {
		return fmt.Errorf("mark event %s planned: %w", ev.ID, err)
	}
	in.Logger.Info("event planned", "event", ev.ID, "type", ev.Type, "jobs", rec.Jobs, "late", rec.Late,
		"took", planned.Sub(now).Round(time.Millisecond))
	return nil
}

// reportUnknown reports the components of a newly accepted event that the
// site file does not name: the event is sent all the same, to the
// subscribers of those ids, but the pages and messages can only show the
// ids, so the operator should add them to the file.
func (in *Intake) reportUnknown(ev *Event) {
	if in.Site == nil {
		return
	}
	unknown := in.Site.Unknown(slices.Compact(slices.Sorted(slices.Values(ev.Components()))))
	if len(unknown) == 0 {
		return
	}
	for _, id := range unknown {
		in.Metrics.CountUnknownComponent(id)
	}
	in.Logger.Warn("event names components the site file does not; accepted, shown by id", "event", ev.ID,
		"type", ev.Type, "unknown_components", unknown)
}

func (in *Intake) reject(ctx context.Context, subject string, raw []byte, cause error, now time.Time) error {
	field := "event"
	var ve *ValidationError
	if errors.As(cause, &ve) && len(ve.Problems) > 0 && ve.Problems[0].Field != "" {
		field = metricField(ve.Problems[0].Field)
	}
	r := Rejection{Subject: subject, Data: raw, Reason: cause.Error(), Field: field, ReceivedAt: now}
	if err := in.Reject(ctx, r); err != nil {
		return fmt.Errorf("store rejected event: %w", err)
	}
	in.Metrics.EventsRejected.WithLabelValues(field).Inc()
	in.Logger.Warn("event rejected", "subject", subject, "reason", r.Reason, "bytes", len(raw))
	return fmt.Errorf("%w: %s", ErrRejected, r.Reason)
}

func (in *Intake) now() time.Time {
	if in.Now != nil {
		return in.Now()
	}
	return time.Now()
}

// metricField turns a problem's field path into a metrics label from a
// fixed set: a known field of the contract ("incident.status"), or
// "unknown_field", so producers cannot mint label values.
func metricField(path string) string {
	parts := strings.SplitN(path, ".", 3)
	for i, p := range parts {
		parts[i], _, _ = strings.Cut(p, "[")
	}
	t := reflect.TypeOf(Event{})
	label := ""
	for i, p := range parts[:min(len(parts), 2)] {
		ft, ok := fieldByTag(t, p)
		if !ok {
			return "unknown_field"
		}
		if i > 0 {
			label += "."
		}
		label += p
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() != reflect.Struct {
			break
		}
		t = ft
	}
	return label
}

// typeOf is the type an event says it has: ev's, or for one that did not
// decode, its "type" field if that reads as a string ("" otherwise).
func typeOf(ev *Event, raw []byte) string {
	if ev != nil {
		return string(ev.Type)
	}
	if len(raw) > MaxEventSize {
		return "" // rejected for its size; not read again
	}
	var head struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(raw, &head) != nil {
		return ""
	}
	return head.Type
}
