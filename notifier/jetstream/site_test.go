package jetstream

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/varsel/varsel/notifier"
)

// lockedBuffer is a log sink safe for the pipeline's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestUnknownComponentAcceptedAndReported: an event naming a component the
// site file does not is delivered as any other, and reported once per
// event: one WARN line naming the event and the unknown ids, and
// varsel_events_unknown_components_total by component. A redelivered
// event is not reported again; a known component is never reported.
func TestUnknownComponentAcceptedAndReported(t *testing.T) {
	site := &notifier.Site{Components: []notifier.Component{
		{ID: "api", Name: notifier.Localized{"en": "Public API", "nb": "Offentlig API"}},
	}}
	conn := startConn(t, t.TempDir())
	defer conn.Close()
	addSubscribers(t, conn, 2, fullSubscriber)
	rec := newRecorder(notifier.Email)
	logs := &lockedBuffer{}
	metrics := notifier.NewMetrics(prometheus.NewRegistry())
	r := conn.NewRunner(Pipeline{Channels: map[notifier.ChannelName]notifier.Channel{notifier.Email: rec},
		Renderer: plainRenderer{}, Metrics: metrics, Site: site,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()

	first := eventJSON("ghost-1", "incident.opened", "2019-09-16T08:00:00+02:00", "investigating", "minor", "api", "ghost")
	publish(t, conn, first)
	waitFor(t, 10*time.Second, "the event with an unknown component to be delivered", func() bool { _, n := rec.total(); return n == 2 })
	count := func(id string) float64 { return testutil.ToFloat64(metrics.UnknownComponents.WithLabelValues(id)) }
	if got := count("ghost"); got != 1 {
		t.Errorf("varsel_events_unknown_components_total{component=ghost} = %v, want 1", got)
	}
	if got := count("api"); got != 0 {
		t.Errorf("the known component api counted as unknown: %v", got)
	}
	warns := func() []string {
		var out []string
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "level=WARN") && strings.Contains(l, "site file") {
				out = append(out, l)
			}
		}
		return out
	}
	if w := warns(); len(w) != 1 || !strings.Contains(w[0], "event=ghost-1") || !strings.Contains(w[0], "ghost]") ||
		strings.Contains(w[0], "api") {
		t.Errorf("want one WARN line naming event ghost-1 and the unknown id ghost only, got %q\nlog:\n%s", w, logs)
	}

	// The same event again (dropped by the stream or by intake as a
	// duplicate): not reported twice.
	publish(t, conn, first)
	// A second event of the incident: reported for itself.
	publish(t, conn, eventJSON("ghost-2", "incident.updated", "2019-09-16T09:00:00+02:00", "identified", "minor", "ghost"))
	waitFor(t, 10*time.Second, "the second event to be delivered", func() bool { _, n := rec.total(); return n == 4 })
	if got := count("ghost"); got != 2 {
		t.Errorf("after a duplicate and a second event, ghost counted %v times, want 2 (once per event)", got)
	}
	if w := warns(); len(w) != 2 || !strings.Contains(w[1], "event=ghost-2") {
		t.Errorf("want a second WARN line for ghost-2 only, got %q", w)
	}
}
