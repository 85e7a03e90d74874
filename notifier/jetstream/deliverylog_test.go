package jetstream

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/varsel/varsel/notifier"
)

// TestDeliveryLogKeepsTheHotPathSmall: settled deliveries are not keys of
// the bucket (the server keeps an index entry per key in memory), every
// record is found by id and listed by event, and the records of a
// retried delivery leave the bucket soon after it settles.
func TestDeliveryLogKeepsTheHotPathSmall(t *testing.T) {
	s := startStack(t, t.TempDir(), notifier.DispatchConfig{BaseBackoff: 50 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	fails := 0
	s.chans[notifier.Email].fail = func(d *notifier.Delivery) (bool, error) {
		if d.Subscriber.ID == "sub-00003" && fails == 0 {
			fails++
			return true, &notifier.SendError{Reason: notifier.ReasonServer, Err: fmt.Errorf("451 try later")}
		}
		return false, nil
	}
	addSubscribers(t, s.conn, 20, fullSubscriber)
	publish(t, s.conn, eventJSON("hot", "incident.updated", "2019-09-17T10:00:00+02:00", "identified", "minor"))
	ctx := context.Background()
	waitFor(t, 15*time.Second, "every delivery settled", func() bool {
		p, err := s.conn.Counts.Progress(ctx, "hot")
		return err == nil && p.Total().Planned == 40 && p.Total().Sent == 40
	})
	keys, err := s.conn.Deliveries.kv.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range keys.Keys() {
		n++
	}
	if n > 1 {
		t.Errorf("%d keys in the bucket, want at most the one retried delivery's", n)
	}
	for i := range 20 {
		for _, ch := range []notifier.ChannelName{notifier.Email, notifier.Webhook} {
			id := notifier.DeliveryID("hot", fmt.Sprintf("sub-%05d", i), ch)
			r, err := s.conn.Deliveries.Get(ctx, id)
			if err != nil || r.Status != notifier.StatusSent {
				t.Fatalf("get %s: %+v %v", id, r, err)
			}
		}
	}
	retried, err := s.conn.Deliveries.Get(ctx, notifier.DeliveryID("hot", "sub-00003", notifier.Email))
	if err != nil || retried.Attempts != 2 {
		t.Errorf("the retried delivery: %+v %v, want 2 attempts", retried, err)
	}
	listed := 0
	if err := s.conn.Deliveries.List(ctx, DeliveryFilter{EventID: "hot"}, func(r *notifier.DeliveryRecord) error {
		listed++
		return nil
	}); err != nil || listed != 40 {
		t.Errorf("listed %d records (%v), want 40, each once", listed, err)
	}
}

// TestDeliveryRecordsExpireSummaryStays: after the retention the records
// are gone and the event's summary is still there.
func TestDeliveryRecordsExpireSummaryStays(t *testing.T) {
	s := &stack{chans: map[notifier.ChannelName]*recorder{}, retention: time.Second}
	channels := map[notifier.ChannelName]notifier.Channel{}
	for _, name := range notifier.ChannelNames {
		s.chans[name] = newRecorder(name)
		channels[name] = s.chans[name]
	}
	startStackWith(t, t.TempDir(), notifier.DispatchConfig{}, s, channels)
	addSubscribers(t, s.conn, 5, fullSubscriber)
	publish(t, s.conn, eventJSON("old", "incident.updated", "2019-09-17T10:00:00+02:00", "identified", "minor"))
	ctx := context.Background()
	waitFor(t, 15*time.Second, "every delivery settled", func() bool {
		p, err := s.conn.Counts.Progress(ctx, "old")
		return err == nil && p.Total().Sent == 10
	})
	waitFor(t, 15*time.Second, "the records to expire", func() bool {
		n := 0
		_ = s.conn.Deliveries.List(ctx, DeliveryFilter{EventID: "old"}, func(*notifier.DeliveryRecord) error { n++; return nil })
		return n == 0
	})
	p, err := s.conn.Counts.Progress(ctx, "old")
	if err != nil || p.Total().Sent != 10 || p.Total().Planned != 10 {
		t.Errorf("summary after the records expired: %+v %v", p, err)
	}
}

// TestUnstoredRecordsAreBounded: with unstoredMax records settled and not
// stored, a record waits for room (and so does the send after it); an
// Update waits no longer than its context; both go on once there is room.
func TestUnstoredRecordsAreBounded(t *testing.T) {
	c := startConn(t, t.TempDir())
	s := c.Deliveries
	// The process holds unstoredMax records no batch will store.
	s.mu.Lock()
	for i := range unstoredMax {
		s.unstored[fmt.Sprintf("held.%d", i)] = &notifier.DeliveryRecord{}
	}
	s.mu.Unlock()
	rec := func(id string) *notifier.DeliveryRecord {
		return &notifier.DeliveryRecord{ID: id, EventID: "bound", SubscriberID: "s", Channel: notifier.Email, Status: notifier.StatusSent}
	}
	settled := make(chan error, 1)
	go s.Settle(rec("bound.s1.email"), func(err error) { settled <- err })

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.Update(ctx, "bound.s2.email", func(r *notifier.DeliveryRecord) error {
		*r = *rec("bound.s2.email")
		return nil
	})
	if err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("Update with the log full: %v after %s, want its context's error at once", err, time.Since(start))
	}
	select {
	case err := <-settled:
		t.Fatalf("a record was settled (%v) while the log held %d unstored", err, unstoredMax)
	case <-time.After(200 * time.Millisecond):
	}
	// Room again: the waiting record is stored.
	s.mu.Lock()
	for i := range unstoredMax {
		delete(s.unstored, fmt.Sprintf("held.%d", i))
	}
	s.idle.Broadcast()
	s.mu.Unlock()
	select {
	case err := <-settled:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting record was not stored once there was room")
	}
	if _, err := s.Get(context.Background(), "bound.s1.email"); err != nil {
		t.Fatalf("the record stored after the wait is not found: %v", err)
	}
}
