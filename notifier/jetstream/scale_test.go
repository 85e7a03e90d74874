package jetstream

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/varsel/varsel/notifier"
)

// TestTwoInstancesShareTheWork runs a second pipeline against the first
// one's NATS, as a second `varsel serve` with VARSEL_NATS_URL would: every
// delivery is made once, by one of them.
func TestTwoInstancesShareTheWork(t *testing.T) {
	a := startStack(t, t.TempDir(), notifier.DispatchConfig{})
	conn, err := Connect(context.Background(), Config{URL: a.conn.ClientURL(), Credentials: a.conn.Credentials()}, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	b := &stack{conn: conn, chans: map[notifier.ChannelName]*recorder{}, metrics: notifier.NewMetrics(prometheus.NewRegistry())}
	channels := map[notifier.ChannelName]notifier.Channel{}
	for _, name := range notifier.ChannelNames {
		b.chans[name] = newRecorder(name)
		channels[name] = b.chans[name]
	}
	b.runner = conn.NewRunner(Pipeline{Channels: channels, Renderer: plainRenderer{}, Metrics: b.metrics, Logger: quietLogger()})
	b.run()
	t.Cleanup(func() { b.cancel(); <-b.done; conn.Close() })

	const subscribers = 300
	addSubscribersFast(t, a.conn, subscribers, fullSubscriber)
	publish(t, a.conn, eventJSON("shared", "incident.opened", "2019-09-16T08:00:00+02:00", "investigating", "major"))
	total := func() (sends, byA, byB int, seen map[string]int) {
		seen = map[string]int{}
		for _, st := range []*stack{a, b} {
			for _, r := range st.chans {
				r.mu.Lock()
				for id, n := range r.sent {
					seen[id] += n
					sends += n
					if st == a {
						byA += n
					} else {
						byB += n
					}
				}
				r.mu.Unlock()
			}
		}
		return
	}
	want := subscribers * 3
	waitFor(t, 20*time.Second, "every delivery", func() bool { s, _, _, _ := total(); return s >= want })
	sends, byA, byB, seen := total()
	t.Logf("%d deliveries: %d by instance A, %d by instance B", sends, byA, byB)
	if sends != want || len(seen) != want {
		t.Errorf("%d sends of %d distinct deliveries, want %d once each", sends, len(seen), want)
	}
	if byA == 0 || byB == 0 {
		t.Errorf("the work was not shared: A %d, B %d", byA, byB)
	}
}

// gate is a channel whose sends wait until released.
type gate struct {
	*recorder
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (g *gate) Notify(ctx context.Context, d *notifier.Delivery) (notifier.Receipt, bool, error) {
	g.once.Do(func() { close(g.entered) })
	<-g.release
	return g.recorder.Notify(ctx, d)
}

// TestShutdownFinishesInFlightSends stops the service (as SIGTERM does)
// while a send is in progress: the send completes and is recorded.
func TestShutdownFinishesInFlightSends(t *testing.T) {
	g := &gate{recorder: newRecorder(notifier.Email), entered: make(chan struct{}), release: make(chan struct{})}
	s := startStackWith(t, t.TempDir(), notifier.DispatchConfig{}, nil, map[notifier.ChannelName]notifier.Channel{notifier.Email: g})
	addSubscribers(t, s.conn, 1, func(int) *notifier.Subscriber { return &notifier.Subscriber{ID: "kari", Email: "kari@example.com"} })
	publish(t, s.conn, eventJSON("graceful", "incident.updated", "2019-09-16T08:00:00+02:00", "identified", "minor"))
	<-g.entered
	s.cancel() // graceful stop: no new work, in-flight work finishes
	// Hold the send a little longer so Run is already shutting down when
	// it completes; Run must still wait for it.
	go func() { time.Sleep(50 * time.Millisecond); close(g.release) }()
	<-s.done
	s.cancel = nil
	rec, err := s.conn.Deliveries.Get(context.Background(), notifier.DeliveryID("graceful", "kari", notifier.Email))
	if err != nil || rec.Status != notifier.StatusSent {
		t.Fatalf("in-flight send after shutdown: %+v, %v", rec, err)
	}
	s.conn.Close()
}
