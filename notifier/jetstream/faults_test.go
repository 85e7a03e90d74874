package jetstream

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/varsel/varsel/notifier"
)

// stuck is an email channel whose sends never return until released: a
// process whose workers hang, or that is about to be killed.
type stuck struct {
	*recorder
	mu      sync.Mutex
	entered int
	release chan struct{}
}

func (s *stuck) Notify(ctx context.Context, d *notifier.Delivery) (notifier.Receipt, bool, error) {
	s.mu.Lock()
	s.entered++
	s.mu.Unlock()
	<-s.release
	return notifier.Receipt{}, true, fmt.Errorf("process gone")
}

func (s *stuck) taken() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.entered
}

// secondInstance runs another pipeline against url, as a second `varsel
// serve` with VARSEL_NATS_URL does, with its own recording channels.
func secondInstance(t *testing.T, first *Conn, channels map[notifier.ChannelName]notifier.Channel) (*Conn, func()) {
	t.Helper()
	conn, err := Connect(context.Background(), Config{URL: first.ClientURL(), Credentials: first.Credentials()}, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	r := conn.NewRunner(Pipeline{Channels: channels, Renderer: plainRenderer{}, Metrics: notifier.NewMetrics(prometheus.NewRegistry()), Logger: quietLogger()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	return conn, func() { cancel(); <-done }
}

// TestKilledInstancesJobsMoveOnInSeconds: instance A takes jobs and dies
// (its connection gone, its sends hung); instance B, on the same NATS,
// delivers A's jobs once the default ack wait runs out, well within 15 s.
func TestKilledInstancesJobsMoveOnInSeconds(t *testing.T) {
	hung := &stuck{recorder: newRecorder(notifier.Email), release: make(chan struct{})}
	a := startStackWith(t, t.TempDir(), notifier.DispatchConfig{}, nil, map[notifier.ChannelName]notifier.Channel{notifier.Email: hung})
	t.Cleanup(func() { close(hung.release) }) // before a stops
	addSubscribersFast(t, a.conn, 200, func(i int) *notifier.Subscriber {
		return &notifier.Subscriber{ID: fmt.Sprintf("s%03d", i), Email: fmt.Sprintf("u%d@example.com", i)}
	})
	publish(t, a.conn, eventJSON("takeover", "incident.updated", "2019-09-17T10:00:00+02:00", "identified", "minor"))
	waitFor(t, 10*time.Second, "instance A to take every worker's job", func() bool { return hung.taken() >= 32 })

	// A dies: its connection to NATS goes away under its hung workers.
	// The server (embedded in A's process in the test) stays up.
	a.runner.Conn.NC.Close()
	killed := time.Now()

	b := newRecorder(notifier.Email)
	_, stop := secondInstance(t, a.conn, map[notifier.ChannelName]notifier.Channel{notifier.Email: b})
	defer stop()
	waitFor(t, 15*time.Second, "instance B to deliver every job", func() bool { _, n := b.total(); return n == 200 })
	took := time.Since(killed)
	t.Logf("instance B delivered all 200 (A held %d) %s after A died", hung.taken(), took.Round(time.Millisecond))
	if took > 15*time.Second {
		t.Errorf("takeover took %s, want under 15 s", took)
	}
}

// TestRestartResumesWithinSeconds: the process is killed with jobs in
// flight and started again on the same store; sending resumes within 10 s
// of the restart, with the default ack wait.
func TestRestartResumesWithinSeconds(t *testing.T) {
	dir := t.TempDir()
	hung := &stuck{recorder: newRecorder(notifier.Email), release: make(chan struct{})}
	s := startStackWith(t, dir, notifier.DispatchConfig{}, nil, map[notifier.ChannelName]notifier.Channel{notifier.Email: hung})
	addSubscribersFast(t, s.conn, 100, func(i int) *notifier.Subscriber {
		return &notifier.Subscriber{ID: fmt.Sprintf("s%03d", i), Email: fmt.Sprintf("u%d@example.com", i)}
	})
	publish(t, s.conn, eventJSON("restart", "incident.updated", "2019-09-17T10:00:00+02:00", "identified", "minor"))
	waitFor(t, 10*time.Second, "jobs in flight", func() bool { return hung.taken() >= 32 })
	s.killWhile(func() { close(hung.release) })

	again := newRecorder(notifier.Email)
	restarted := time.Now()
	startStackWith(t, dir, notifier.DispatchConfig{}, nil, map[notifier.ChannelName]notifier.Channel{notifier.Email: again})
	waitFor(t, 10*time.Second, "every delivery after the restart", func() bool { _, n := again.total(); return n == 100 })
	t.Logf("all 100 delivered %s after the restart", time.Since(restarted).Round(time.Millisecond))
}

// TestPlanCutShortResumesWithinSeconds: the process dies while it plans a
// large event; the restarted one finishes the plan within seconds, not
// after minutes.
func TestPlanCutShortResumesWithinSeconds(t *testing.T) {
	dir := t.TempDir()
	gated := &planGate{release: make(chan struct{}), entered: make(chan struct{})}
	before := newRecorder(notifier.Email)
	s := startStackWith(t, dir, notifier.DispatchConfig{}, nil, map[notifier.ChannelName]notifier.Channel{notifier.Email: before})
	addSubscribersFast(t, s.conn, 2000, func(i int) *notifier.Subscriber {
		return &notifier.Subscriber{ID: fmt.Sprintf("s%04d", i), Email: fmt.Sprintf("u%d@example.com", i)}
	})
	// Planning stops partway (as if the process froze) until the kill.
	s.runner.Intake.Planner.Subscribers = gated.wrap(s.conn.Subscribers, 500)
	publish(t, s.conn, eventJSON("bigplan", "incident.updated", "2019-09-17T10:00:00+02:00", "identified", "minor"))
	<-gated.entered
	s.killWhile(func() { close(gated.release) })

	again := newRecorder(notifier.Email)
	restarted := time.Now()
	s2 := startStackWith(t, dir, notifier.DispatchConfig{}, nil, map[notifier.ChannelName]notifier.Channel{notifier.Email: again})
	waitFor(t, 15*time.Second, "the plan finished", func() bool {
		rec, err := s2.conn.Events.Get(context.Background(), "bigplan")
		return err == nil && rec.PlannedAt != nil
	})
	t.Logf("plan finished %s after the restart", time.Since(restarted).Round(time.Millisecond))
	if took := time.Since(restarted); took > 10*time.Second {
		t.Errorf("the plan resumed after %s, want under 10 s", took)
	}
	// The first process may have sent the jobs it had planned before it
	// froze: those count, once each.
	var delivered int
	defer func() {
		if t.Failed() {
			t.Logf("%d of 2000 delivered %s after the restart", delivered, time.Since(restarted).Round(time.Millisecond))
		}
	}()
	waitFor(t, 20*time.Second, "every email", func() bool {
		delivered = len(union(before, again))
		return delivered == 2000
	})
	if _, n := before.total(); n > 0 {
		t.Logf("%d sent by the process before it died", n)
	}
	if sends, distinct := again.total(); sends != distinct {
		t.Errorf("%d sends for %d deliveries", sends, distinct)
	}
}

// killWhile kills the process the hard way, as kill does, but lets its
// stuck goroutines go (unblock) once NATS is gone, so nothing they do
// afterwards reaches the store.
func (s *stack) killWhile(unblock func()) {
	s.conn.NC.Close()
	s.conn.Server.Shutdown()
	unblock()
	s.cancel()
	<-s.done
	s.cancel = nil
	s.conn.Server.WaitForShutdown()
}

// planGate wraps a subscriber store so that streaming subscribers stops
// after n until released.
type planGate struct {
	release, entered chan struct{}
	once             sync.Once
}

func (g *planGate) wrap(s notifier.SubscriberStore, n int) notifier.SubscriberStore {
	return gatedStore{SubscriberStore: s, g: g, n: n}
}

type gatedStore struct {
	notifier.SubscriberStore
	g *planGate
	n int
}

func (s gatedStore) Each(ctx context.Context, fn func(*notifier.Subscriber) error) error {
	i := 0
	return s.SubscriberStore.Each(ctx, func(sub *notifier.Subscriber) error {
		if i++; i == s.n {
			s.g.once.Do(func() { close(s.g.entered) })
			<-s.g.release
			return fmt.Errorf("process gone")
		}
		return fn(sub)
	})
}

// TestCopyOfAWaitingJobWaitsToo: a job whose retry is scheduled an hour
// ahead comes back early (the original, redelivered after a crash between
// recording the failure and acknowledging it). It is not sent; it waits,
// as the one schedule of its delivery, for its time.
func TestCopyOfAWaitingJobWaitsToo(t *testing.T) {
	s := startStack(t, t.TempDir(), notifier.DispatchConfig{BaseBackoff: time.Hour, MaxBackoff: time.Hour})
	s.chans[notifier.Email].fail = func(*notifier.Delivery) (bool, error) {
		return true, &notifier.SendError{Reason: notifier.ReasonServer, Err: fmt.Errorf("451 try later")}
	}
	addSubscribers(t, s.conn, 1, func(int) *notifier.Subscriber { return &notifier.Subscriber{ID: "kari", Email: "kari@example.com"} })
	publish(t, s.conn, eventJSON("early", "incident.updated", "2019-09-17T10:00:00+02:00", "identified", "minor"))
	id := notifier.DeliveryID("early", "kari", notifier.Email)
	ctx := context.Background()
	waitFor(t, 10*time.Second, "one retry scheduled", func() bool { n, err := s.conn.WaitingRetries(ctx); return err == nil && n == 1 })

	// The copy goes straight onto the channel's queue, marked as the
	// broker marks a job it hands out again.
	copyJob := notifier.NewJob("early", "kari", notifier.Email)
	copyJob.Seen = true
	b, _ := json.Marshal(copyJob)
	msg := nats.NewMsg(jobSubject(string(notifier.Email)))
	msg.Data = b
	msg.Header.Set(jetstream.MsgIDHeader, id+".copy")
	if _, err := s.conn.JS.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	cons, err := s.conn.JS.Consumer(ctx, DeliveriesStream, dispatchConsumer+string(notifier.Email))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the copy taken and put back", func() bool {
		info, err := cons.Info(ctx)
		w, _ := s.conn.WaitingRetries(ctx)
		return err == nil && info.Delivered.Consumer >= 2 && info.NumAckPending == 0 && info.NumPending == 0 && w == 1
	})
	rec, err := s.conn.Deliveries.Get(ctx, id)
	// An hour's backoff with ±20 % jitter: 48 minutes at the earliest.
	if err != nil || rec.Attempts != 1 || rec.NextAttemptAt == nil || time.Until(*rec.NextAttemptAt) < 45*time.Minute {
		t.Errorf("record after the copy: %+v, %v; want 1 attempt and the next in about an hour", rec, err)
	}
	if n := s.chans[notifier.Email].attempts(id); n != 1 {
		t.Errorf("%d attempts, want 1: the early copy must not be sent", n)
	}
}

// union is the delivery ids the recorders sent.
func union(rs ...*recorder) map[string]bool {
	ids := map[string]bool{}
	for _, r := range rs {
		r.mu.Lock()
		for id := range r.sent {
			ids[id] = true
		}
		r.mu.Unlock()
	}
	return ids
}
