package jetstream

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/varsel/varsel/channels/outbox"
	"github.com/varsel/varsel/notifier"
)

func outboxChannels(t testing.TB, dir string) map[notifier.ChannelName]notifier.Channel {
	t.Helper()
	chans := map[notifier.ChannelName]notifier.Channel{}
	for _, name := range notifier.ChannelNames {
		c, err := outbox.New(outbox.Config{Dir: filepath.Join(dir, "outbox"), From: "Status <status@localhost>"}, name, quietLogger())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		chans[name] = c
	}
	return chans
}

// countEmails counts .eml files per subscriber for one event.
func countEmails(t testing.TB, dir, eventID string) map[string]int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "outbox", "email", eventID))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, e := range entries {
		sub, _, _ := strings.Cut(strings.TrimSuffix(e.Name(), ".eml"), "~")
		counts[sub]++
	}
	return counts
}

// TestCrashMidFanOutSendsEveryMessageOnce kills the service hard in the
// middle of a 2,000-subscriber fan-out and starts it again on the same
// store: every subscriber must end with exactly one email, and no delivery
// whose success was recorded may have been sent twice.
func TestCrashMidFanOutSendsEveryMessageOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	const subscribers = 2000
	dir := t.TempDir()
	cfg := notifier.DispatchConfig{}
	s := startStackWith(t, dir, cfg, &stack{ackWait: 2 * time.Second}, outboxChannels(t, dir))
	addSubscribersFast(t, s.conn, subscribers, func(i int) *notifier.Subscriber {
		return &notifier.Subscriber{ID: fmt.Sprintf("sub-%05d", i), Email: fmt.Sprintf("u%d@example.com", i)}
	})
	publish(t, s.conn, eventJSON("crash-1", "incident.updated", "2019-09-17T10:00:00+02:00", "identified", "major"))
	waitFor(t, 30*time.Second, "a quarter of the fan-out", func() bool { return len(countEmails(t, dir, "crash-1")) >= subscribers/4 })
	s.kill()
	before := len(countEmails(t, dir, "crash-1"))

	// What the log says was sent at the moment of the crash.
	recorded := map[string]bool{}
	probe := startConn(t, dir)
	err := probe.Deliveries.List(context.Background(), DeliveryFilter{EventID: "crash-1", Status: notifier.StatusSent}, func(r *notifier.DeliveryRecord) error {
		recorded[r.SubscriberID] = true
		return nil
	})
	probe.Close()
	if err != nil {
		t.Fatal(err)
	}

	// The restarted process takes over the jobs the dead one held once
	// their ack wait runs out; keep that short so the test is quick.
	s2 := startStackWith(t, dir, cfg, &stack{ackWait: 2 * time.Second}, outboxChannels(t, dir))
	waitFor(t, 60*time.Second, "every subscriber's email", func() bool { return len(countEmails(t, dir, "crash-1")) == subscribers })
	// Let any stray redelivery land before counting duplicates.
	waitFor(t, 30*time.Second, "the queue to empty", func() bool {
		info, err := s2.conn.JS.Consumer(context.Background(), DeliveriesStream, dispatchConsumer+"email")
		if err != nil {
			return false
		}
		ci, err := info.Info(context.Background())
		return err == nil && ci.NumPending == 0 && ci.NumAckPending == 0
	})
	counts := countEmails(t, dir, "crash-1")
	duplicates, recordedDuplicates := 0, 0
	for sub, n := range counts {
		if n <= 1 {
			continue
		}
		duplicates += n - 1
		if recorded[sub] {
			recordedDuplicates++
		}
	}
	t.Logf("crash after %d of %d emails (%d recorded as sent); after restart: %d subscribers, %d duplicates (sends that raced the crash), %d duplicates of recorded successes",
		before, subscribers, len(recorded), len(counts), duplicates, recordedDuplicates)
	if recordedDuplicates != 0 {
		t.Errorf("%d deliveries recorded as sent were sent again", recordedDuplicates)
	}
	// What can race the crash: one send in flight per worker, and the
	// sends made whose records were not stored yet (at most unstoredMax:
	// a batch being stored and the next). A job of several deliveries
	// does not add to it: its deliveries share the channel's worker
	// slots, and those recorded are looked up and not sent again when the
	// job comes back.
	if limit := s2.runner.concurrency(notifier.Email) + unstoredMax; duplicates > limit {
		t.Errorf("%d duplicates: more than the %d sends that can be in flight or unrecorded", duplicates, limit)
	}
}

// TestPlanCutShortIsFinishedWithoutDuplicates dies in the middle of
// planning (the enqueue fails after some jobs), then lets the real
// pipeline take the redelivered event.
func TestPlanCutShortIsFinishedWithoutDuplicates(t *testing.T) {
	dir := t.TempDir()
	s := startStack(t, dir, notifier.DispatchConfig{})
	addSubscribers(t, s.conn, 50, fullSubscriber)
	raw := eventJSON("half", "incident.updated", "2019-09-17T10:00:00+02:00", "identified", "minor")

	// A first intake whose process "dies" after 30 jobs.
	in := *s.runner.Intake
	q := &enqueuer{c: s.conn}
	n := 0
	in.Enqueue = func(ctx context.Context, j notifier.Job) error {
		if n++; n > 30 {
			return errors.New("process died")
		}
		return q.add(ctx, j)
	}
	in.Reject = func(context.Context, notifier.Rejection) error { return nil }
	if err := in.Handle(context.Background(), "varsel.events.incident.updated", raw, nil); err == nil {
		t.Fatal("cut-short plan reported success")
	}
	if err := q.flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The event is then redelivered to a healthy intake.
	publish(t, s.conn, raw)
	waitFor(t, 10*time.Second, "100 deliveries", func() bool {
		a, _ := s.chans[notifier.Email].total()
		b, _ := s.chans[notifier.Webhook].total()
		return a+b == 100
	})
	for _, name := range []notifier.ChannelName{notifier.Email, notifier.Webhook} {
		if sends, distinct := s.chans[name].total(); sends != 50 || distinct != 50 {
			t.Errorf("%s: %d sends to %d subscribers, want 50 each", name, sends, distinct)
		}
	}
}

// addSubscribersFast writes subscribers with asynchronous KV publishes.
func addSubscribersFast(t testing.TB, c *Conn, n int, mk func(i int) *notifier.Subscriber) {
	t.Helper()
	if err := c.Subscribers.PutMany(context.Background(), n, mk); err != nil {
		t.Fatal(err)
	}
}

// TestFailedFlushLeavesEventUnplanned: when the jobs of a plan cannot be
// stored, the event must not be marked planned, so its redelivery plans
// it again instead of dropping it as a duplicate.
func TestFailedFlushLeavesEventUnplanned(t *testing.T) {
	s := startStack(t, t.TempDir(), notifier.DispatchConfig{})
	addSubscribers(t, s.conn, 5, fullSubscriber)
	raw := eventJSON("flush", "incident.updated", "2019-09-17T10:00:00+02:00", "identified", "minor")
	in := *s.runner.Intake
	in.Enqueue = func(context.Context, notifier.Job) error { return nil }
	in.Flush = func(context.Context) error { return errors.New("stream unavailable") }
	in.Reject = func(context.Context, notifier.Rejection) error { return nil }
	if err := in.Handle(context.Background(), "varsel.events.incident.updated", raw, nil); err == nil {
		t.Fatal("a plan whose jobs were not stored reported success")
	}
	rec, err := s.conn.Events.Get(context.Background(), "flush")
	if err != nil || rec.PlannedAt != nil {
		t.Fatalf("event record after failed flush = %+v, %v; want stored but not planned", rec, err)
	}
	publish(t, s.conn, raw)
	waitFor(t, 10*time.Second, "10 deliveries", func() bool {
		a, _ := s.chans[notifier.Email].total()
		b, _ := s.chans[notifier.Webhook].total()
		return a+b == 10
	})
}

// TestFailedDeliveryIsNotSentAgainByARedeliveredJob: a job that comes back
// after its delivery failed for good (a lost ack, a re-plan after the
// dedupe window) is not sent; only an explicit retry sends it, and a
// queued delivery cannot be retried (it would be in the queue twice).
func TestFailedDeliveryIsNotSentAgainByARedeliveredJob(t *testing.T) {
	s := startStack(t, t.TempDir(), notifier.DispatchConfig{})
	addSubscribers(t, s.conn, 1, fullSubscriber)
	s.chans[notifier.Email].fail = func(*notifier.Delivery) (bool, error) {
		return false, &notifier.SendError{Reason: notifier.ReasonBounced, Err: errors.New("550 no such user")}
	}
	publish(t, s.conn, eventJSON("f", "incident.updated", "2019-09-17T10:00:00+02:00", "identified", "minor"))
	id := notifier.DeliveryID("f", "sub-00000", notifier.Email)
	ctx := context.Background()
	waitFor(t, 10*time.Second, "the bounce recorded", func() bool {
		r, err := s.conn.Deliveries.Get(ctx, id)
		return err == nil && r.Status == notifier.StatusFailed
	})
	// The same job again, as a plan run again queues it: marked as one
	// the log may know (a redelivery by the broker is marked the same way).
	q := &enqueuer{c: s.conn}
	job := notifier.NewJob("f", "sub-00000", notifier.Email)
	job.ID, job.Seen = id, true
	if err := q.add(ctx, job); err != nil {
		t.Fatal(err)
	}
	_ = q.flush(ctx)
	// A webhook delivery of the same event is a marker that the queue moved on.
	waitFor(t, 10*time.Second, "the webhook delivery", func() bool { n, _ := s.chans[notifier.Webhook].total(); return n == 1 })
	waitFor(t, 10*time.Second, "the redelivered job consumed", func() bool {
		cons, err := s.conn.JS.Consumer(ctx, DeliveriesStream, dispatchConsumer+"email")
		if err != nil {
			return false
		}
		ci, err := cons.Info(ctx)
		return err == nil && ci.NumPending == 0 && ci.NumAckPending == 0
	})
	if n := s.chans[notifier.Email].attempts(id); n != 1 {
		t.Errorf("failed delivery attempted %d times, want 1", n)
	}
	if _, err := s.conn.Deliveries.Update(ctx, "f.sub-00000.sms", func(r *notifier.DeliveryRecord) error {
		r.EventID, r.SubscriberID, r.Channel, r.Status = "f", "sub-00000", notifier.SMS, notifier.StatusQueued
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.conn.RetryJob(ctx, "f.sub-00000.sms"); err == nil || !strings.Contains(err.Error(), "queued") {
		t.Errorf("retry of a queued delivery: %v, want a refusal", err)
	}
}
