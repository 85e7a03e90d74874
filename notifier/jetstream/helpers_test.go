package jetstream

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/varsel/varsel/notifier"
)

// startConn connects to a fresh embedded server storing in dir.
func startConn(t testing.TB, dir string) *Conn {
	t.Helper()
	return startConnWith(t, Config{DataDir: dir, Listen: "127.0.0.1:0"})
}

func startConnWith(t testing.TB, cfg Config) *Conn {
	t.Helper()
	c, err := Connect(context.Background(), cfg, quietLogger())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	return c
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// recorder is a Channel that records what it is asked to send and fails
// as its fail function says.
type recorder struct {
	name notifier.ChannelName
	mu   sync.Mutex
	sent map[string]int // delivery id → successful sends
	hits map[string]int // delivery id → attempts
	fail func(d *notifier.Delivery) (retry bool, err error)
}

func newRecorder(name notifier.ChannelName) *recorder {
	return &recorder{name: name, sent: map[string]int{}, hits: map[string]int{}}
}

func (r *recorder) Name() notifier.ChannelName { return r.name }

func (r *recorder) Notify(_ context.Context, d *notifier.Delivery) (notifier.Receipt, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hits[d.ID]++
	if r.fail != nil {
		if retry, err := r.fail(d); err != nil {
			return notifier.Receipt{}, retry, err
		}
	}
	r.sent[d.ID]++
	return notifier.Receipt{ProviderID: "p-" + d.ID}, false, nil
}

func (r *recorder) total() (sends, distinct int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.sent {
		sends += n
	}
	return sends, len(r.sent)
}

func (r *recorder) attempts(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits[id]
}

// plainRenderer renders the event id; the real templates are tested in
// notifier/render.
type plainRenderer struct{}

func (plainRenderer) Render(ev *notifier.Event, _ *notifier.IncidentState, sub *notifier.Subscriber, ch notifier.ChannelName) (*notifier.Message, error) {
	return &notifier.Message{Locale: "en", Subject: ev.ID, Text: ev.ID + " for " + sub.ID, SMS: ev.ID, Segments: 1, WebhookText: ev.ID,
		UnsubscribeURL: "http://localhost:8080/unsubscribe/" + sub.ID}, nil
}

// stack is a running pipeline on an embedded server.
type stack struct {
	conn     *Conn
	runner   *Runner
	chans    map[notifier.ChannelName]*recorder
	cancel   context.CancelFunc
	done     chan error
	metrics  *notifier.Metrics
	ackWait  time.Duration
	renderer notifier.Renderer // nil: plainRenderer
	// retention of the delivery records; 0: the default.
	retention time.Duration
}

func startStack(t testing.TB, dir string, cfg notifier.DispatchConfig) *stack {
	t.Helper()
	s := &stack{chans: map[notifier.ChannelName]*recorder{}}
	channels := map[notifier.ChannelName]notifier.Channel{}
	for _, name := range notifier.ChannelNames {
		s.chans[name] = newRecorder(name)
		channels[name] = s.chans[name]
	}
	return startStackWith(t, dir, cfg, s, channels)
}

// startStackWith runs the pipeline with the given channels.
func startStackWith(t testing.TB, dir string, cfg notifier.DispatchConfig, s *stack, channels map[notifier.ChannelName]notifier.Channel) *stack {
	t.Helper()
	if s == nil {
		s = &stack{}
	}
	s.conn = startConnWith(t, Config{DataDir: dir, Listen: "127.0.0.1:0", DeliveryRetention: s.retention})
	s.metrics = notifier.NewMetrics(prometheus.NewRegistry())
	var r notifier.Renderer = plainRenderer{}
	if s.renderer != nil {
		r = s.renderer
	}
	s.runner = s.conn.NewRunner(Pipeline{Channels: channels, Renderer: r, Dispatch: cfg,
		Metrics: s.metrics, Logger: quietLogger()})
	s.runner.AckWait = s.ackWait
	if n, err := strconv.Atoi(os.Getenv("VARSEL_BENCH_CONCURRENCY")); err == nil {
		s.runner.Concurrency = map[notifier.ChannelName]int{notifier.Email: n, notifier.Webhook: n}
	}
	s.run()
	t.Cleanup(s.stop)
	return s
}

func (s *stack) run() {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan error, 1)
	go func() { s.done <- s.runner.Run(ctx) }()
}

// kill stops the process the hard way: the connection and server go away
// under the workers, nothing is drained.
func (s *stack) kill() {
	s.conn.NC.Close()
	s.conn.Server.Shutdown()
	s.cancel()
	<-s.done
	s.cancel = nil
	s.conn.Server.WaitForShutdown()
}

func (s *stack) stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	<-s.done
	s.cancel = nil
	s.conn.Close()
}

func addSubscribers(t testing.TB, c *Conn, n int, mk func(i int) *notifier.Subscriber) {
	t.Helper()
	for i := range n {
		if err := c.Subscribers.Put(context.Background(), mk(i)); err != nil {
			t.Fatalf("put subscriber %d: %v", i, err)
		}
	}
}

func fullSubscriber(i int) *notifier.Subscriber {
	return &notifier.Subscriber{ID: fmt.Sprintf("sub-%05d", i), Email: fmt.Sprintf("user%d@example.com", i),
		Phone: fmt.Sprintf("+4790%06d", i), WebhookURL: "https://hooks.example.com/" + fmt.Sprint(i),
		WebhookSecret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", Locale: "nb"}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// eventJSON builds a valid incident event.
func eventJSON(id, typ, at, status, impact string, components ...string) []byte {
	if len(components) == 0 {
		components = []string{"api"}
	}
	comps := ""
	for i, c := range components {
		if i > 0 {
			comps += ","
		}
		comps += fmt.Sprintf("%q", c)
	}
	return []byte(fmt.Sprintf(`{"id":%q,"type":%q,"time":%q,"incident":{"id":"inc-1","title":{"en":"API down","nb":"API-et er nede"},
"status":%q,"impact":%q,"components":[%s],"started_at":"2019-09-16T07:50:00+02:00","message":{"en":"Working on it.","nb":"Vi jobber med saken."}}}`,
		id, typ, at, status, impact, comps))
}
