package notifier

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// oneEvent is an EventStore holding one record; reads counts its reads.
type oneEvent struct {
	rec   *EventRecord
	reads int
}

func (o *oneEvent) Get(context.Context, string) (*EventRecord, error) {
	o.reads++
	cp := *o.rec
	return &cp, nil
}
func (o *oneEvent) Put(context.Context, *EventRecord) error { return nil }

// doneLog is a DeliveryLog in which every delivery is already sent.
type doneLog struct {
	DeliveryLog
	gets int
}

func (l *doneLog) Get(_ context.Context, id string) (*DeliveryRecord, error) {
	l.gets++
	return &DeliveryRecord{ID: id, Status: StatusSent}, nil
}

// TestResumedEventLooksUpEveryJob: when a plan was cut short and run
// again, a job of its first run may come after the second run's copy was
// sent; such a job, though taken for the first time, is looked up and not
// sent again. A record still being planned is read again after
// UnplannedCacheFor, so a dispatcher learns of the second run.
func TestResumedEventLooksUpEveryJob(t *testing.T) {
	now := time.Date(2019, 9, 17, 10, 0, 0, 0, time.UTC)
	events := &oneEvent{rec: &EventRecord{Event: &Event{ID: "e", Type: IncidentUpdated}}}
	log := &doneLog{}
	d := &Dispatcher{Events: events, Log: log, Metrics: NewMetrics(prometheus.NewRegistry()),
		Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return now }}
	fresh := Job{ID: "e.s1.email", EventID: "e", SubscriberID: "s1", Channel: Email}

	// While the first run plans: the record is kept for a moment only.
	if _, _, err := d.event(context.Background(), "e"); err != nil {
		t.Fatal(err)
	}
	events.rec.Resumed = true // the second run marks it
	now = now.Add(UnplannedCacheFor + time.Millisecond)
	v, err := d.Handle(context.Background(), fresh)
	if err != nil {
		t.Fatal(err)
	}
	if log.gets != 1 {
		t.Fatalf("a first-run job of a resumed event was looked up %d times, want once", log.gets)
	}
	if v.Retry || v.Recorded != nil {
		t.Errorf("verdict %+v for a delivery already sent, want nothing more", v)
	}
	if events.reads != 2 {
		t.Errorf("the record being planned was read %d times, want it read again after %s", events.reads, UnplannedCacheFor)
	}
	// A planned record is kept: no more reads.
	planned := now
	events.rec.PlannedAt = &planned
	d.cache = eventCache{}
	for range 3 {
		now = now.Add(time.Second)
		if _, _, err := d.event(context.Background(), "e"); err != nil {
			t.Fatal(err)
		}
	}
	if events.reads != 3 {
		t.Errorf("a planned record was read %d times in all, want once more after the cache was cleared", events.reads)
	}
}
