package jetstream

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/varsel/varsel/notifier"
	"github.com/varsel/varsel/notifier/render"
)

// BenchmarkFanOut measures one event fanned out to n subscribers × 2
// channels (email and webhook) through the real renderer and the outbox: deliveries per second,
// seconds from publish to the last delivery, and the process's peak RSS
// (embedded NATS server included).
//
//	go test ./notifier/jetstream -run '^$' -bench FanOut -benchtime 1x
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			for range b.N {
				benchFanOut(b, n)
			}
		})
	}
}

func benchFanOut(b *testing.B, n int) {
	b.StopTimer()
	dir := b.TempDir()
	// The real renderer: templates, go-i18n, per-subscriber personalization.
	tokens, _ := notifier.NewTokens([]byte("bench-secret-bench-secret-bench!"))
	r, err := render.New(render.Config{}, tokens, quietLogger())
	if err != nil {
		b.Fatal(err)
	}
	s := startStackWith(b, dir, notifier.DispatchConfig{}, &stack{renderer: r}, outboxChannels(b, dir))
	addSubscribersFast(b, s.conn, n, func(i int) *notifier.Subscriber {
		return &notifier.Subscriber{ID: fmt.Sprintf("s%06d", i), Name: "Kari Nordmann", Email: fmt.Sprintf("kari%d@example.com", i),
			WebhookURL: "https://hooks.example.com/varsel", WebhookSecret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", Locale: "nb"}
	})
	runtime.GC()
	resetPeakRSS()
	sent := func() float64 {
		return testutil.ToFloat64(s.metrics.Deliveries.WithLabelValues("email", "sent", "")) +
			testutil.ToFloat64(s.metrics.Deliveries.WithLabelValues("webhook", "sent", ""))
	}
	start := time.Now()
	b.StartTimer()
	raw := eventJSON("bench", "incident.updated", "2019-09-17T10:00:00+02:00", "identified", "major")
	if _, err := s.conn.PublishEvent(b.Context(), raw); err != nil {
		b.Fatal(err)
	}
	want := float64(2 * n)
	deadline := time.Now().Add(10 * time.Minute)
	for sent() < want {
		if time.Now().After(deadline) {
			b.Fatalf("only %.0f of %.0f deliveries after 10 minutes", sent(), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.StopTimer()
	took := time.Since(start)
	b.ReportMetric(want/took.Seconds(), "deliveries/s")
	b.ReportMetric(took.Seconds(), "s-to-last")
	b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MB")
	if path := os.Getenv("VARSEL_BENCH_HEAPPROFILE"); path != "" {
		f, _ := os.Create(path)
		_ = pprof.WriteHeapProfile(f)
		f.Close()
	}
	s.stop()
}

// resetPeakRSS resets the kernel's high-water mark of resident memory
// (Linux: writing 5 to clear_refs), so the peak is of this run only.
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS reads VmHWM from /proc/self/status, in bytes; 0 if unknown.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkPipeline measures what the pipeline itself costs a delivery:
// one event to 20k subscribers × (email + webhook) through the real
// renderer, planner, queue and log, to channels that take each message at
// once. It reports process CPU and bytes allocated per delivery (the
// embedded NATS server's included, as in serve), the
// figures that move when the pipeline gets cheaper; a fan-out's rate moves
// with them only as far as the machine's noise lets it show.
//
//	go test ./notifier/jetstream -run '^$' -bench Pipeline -benchtime 3x
func BenchmarkPipeline(b *testing.B) {
	const n = 20_000
	tokens, _ := notifier.NewTokens([]byte("bench-secret-bench-secret-bench!"))
	r, err := render.New(render.Config{}, tokens, quietLogger())
	if err != nil {
		b.Fatal(err)
	}
	chans := map[notifier.ChannelName]notifier.Channel{notifier.Email: takeAll{notifier.Email}, notifier.Webhook: takeAllEndpoint{takeAll{notifier.Webhook}}}
	s := startStackWith(b, b.TempDir(), notifier.DispatchConfig{}, &stack{renderer: r}, chans)
	addSubscribersFast(b, s.conn, n, func(i int) *notifier.Subscriber {
		return &notifier.Subscriber{ID: fmt.Sprintf("s%06d", i), Name: "Kari Nordmann", Email: fmt.Sprintf("kari%d@example.com", i),
			WebhookURL: "https://hooks.example.com/varsel", WebhookSecret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", Locale: "nb"}
	})
	sent := func() float64 {
		return testutil.ToFloat64(s.metrics.Deliveries.WithLabelValues("email", "sent", "")) +
			testutil.ToFloat64(s.metrics.Deliveries.WithLabelValues("webhook", "sent", ""))
	}
	var cpu time.Duration
	var allocated uint64
	deliveries := 0
	b.ResetTimer()
	for i := range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start, base := processCPU(), sent()
		raw := eventJSON(fmt.Sprintf("bench-%d", i), "incident.updated", "2019-09-17T10:00:00+02:00", "identified", "major")
		if _, err := s.conn.PublishEvent(b.Context(), raw); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Minute)
		for sent()-base < 2*n {
			if time.Now().After(deadline) {
				b.Fatalf("only %.0f of %d deliveries after 2 minutes", sent()-base, 2*n)
			}
			time.Sleep(5 * time.Millisecond)
		}
		// Until the last records are stored and counted.
		s.conn.Deliveries.Flush()
		cpu += processCPU() - start
		runtime.ReadMemStats(&after)
		allocated += after.TotalAlloc - before.TotalAlloc
		deliveries += 2 * n
	}
	b.StopTimer()
	b.ReportMetric(float64(cpu.Microseconds())/float64(deliveries), "cpu-µs/delivery")
	b.ReportMetric(float64(allocated)/float64(deliveries), "B/delivery")
	s.stop()
}

// takeAll is a channel that takes every message at once.
type takeAll struct{ name notifier.ChannelName }

func (c takeAll) Name() notifier.ChannelName { return c.name }
func (c takeAll) Notify(context.Context, *notifier.Delivery) (notifier.Receipt, bool, error) {
	return notifier.Receipt{ProviderID: "taken"}, false, nil
}

// takeAllEndpoint is takeAll behind the dispatcher's endpoint gate, as
// webhooks are.
type takeAllEndpoint struct{ takeAll }

func (takeAllEndpoint) Endpoint(s *notifier.Subscriber) string { return s.WebhookURL }

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
