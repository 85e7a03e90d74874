package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/varsel/varsel/notifier"
)

// TestBenchReportsWhatItMeasured runs `varsel bench` small, on every
// channel and two events, and checks the report adds up: every delivery
// counted, raw blasts on both sides of each event, rates and CPU that are
// there. It checks no speed: that is what the command is for.
func TestBenchReportsWhatItMeasured(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a service and blasts its sinks")
	}
	var out, errOut bytes.Buffer
	args := []string{"bench", "--subscribers", "300", "--channels", "email,webhook,sms", "--events", "2", "--idle", "5", "--json"}
	if err := run(context.Background(), args, nil, &out, &errOut); err != nil {
		t.Fatalf("bench: %v\n%s", err, errOut.String())
	}
	var r benchReport
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, out.String())
	}
	if r.Subscribers != 300 || len(r.Channels) != 3 || len(r.Events) != 2 {
		t.Fatalf("report of %d subscribers, channels %v, %d events; want 300, three, 2", r.Subscribers, r.Channels, len(r.Events))
	}
	if r.Raw.Deliveries != 900 || r.Raw.PerSecond <= 0 || r.Raw.CPUMicros <= 0 || len(r.Raw.ByChannel) != 3 {
		t.Errorf("raw blast: %+v", r.Raw)
	}
	for i, e := range r.Events {
		// The opening goes out on every channel; the update (a second
		// event, no change of impact) on email and webhook only.
		want := int64(900)
		if i == 1 {
			want = 600
		}
		if e.Deliveries != want {
			t.Errorf("event %s: %d deliveries, want %d", e.ID, e.Deliveries, want)
		}
		if e.PerSecond <= 0 || e.RawBeforePerSecond <= 0 || e.RawAfterPerSecond <= 0 || e.CPUMicros <= 0 {
			t.Errorf("event %s: rate %.0f/s, raw before %.0f and after %.0f, CPU %.0f µs: all must be measured", e.ID, e.PerSecond, e.RawBeforePerSecond, e.RawAfterPerSecond, e.CPUMicros)
		}
		lo, hi := min(e.RawBeforePerSecond, e.RawAfterPerSecond), max(e.RawBeforePerSecond, e.RawAfterPerSecond)
		if e.RawPerSecond < lo || e.RawPerSecond > hi {
			t.Errorf("event %s: raw %.0f/s is not between the blasts before (%.0f) and after (%.0f)", e.ID, e.RawPerSecond, e.RawBeforePerSecond, e.RawAfterPerSecond)
		}
		if got := 100 * e.PerSecond / e.RawPerSecond; got-e.PercentOfRaw > 0.01 || e.PercentOfRaw-got > 0.01 {
			t.Errorf("event %s: %.2f %% of raw, but %.0f/%.0f is %.2f %%", e.ID, e.PercentOfRaw, e.PerSecond, e.RawPerSecond, got)
		}
		var byChannel int64
		var lastOfAll float64
		for ch, c := range e.ByChannel {
			if c.Deliveries <= 0 || c.Seconds <= 0 {
				t.Errorf("event %s: channel %s: %d deliveries by %.2f s", e.ID, ch, c.Deliveries, c.Seconds)
			}
			byChannel += c.Deliveries
			lastOfAll = max(lastOfAll, c.Seconds)
		}
		if channels := int(want / 300); len(e.ByChannel) != channels || byChannel != e.Deliveries || lastOfAll != e.Seconds {
			t.Errorf("event %s: by channel %+v: want %d channels adding up to %d deliveries, the last by %.3f s", e.ID, e.ByChannel, channels, e.Deliveries, e.Seconds)
		}
		if e.P50Ms <= 0 || e.P99Ms < e.P50Ms || e.PlanMs <= 0 {
			t.Errorf("event %s: p50 %.1f ms, p99 %.1f ms, plan %.1f ms", e.ID, e.P50Ms, e.P99Ms, e.PlanMs)
		}
	}
	if r.Idle.Events != 5 || r.Idle.P50Ms <= 0 || r.Idle.P99Ms < r.Idle.P50Ms || r.PeakRSSMB <= 0 {
		t.Errorf("idle %+v, peak RSS %.0f MB", r.Idle, r.PeakRSSMB)
	}
	a, b := r.Events[0].PercentOfRaw, r.Events[1].PercentOfRaw
	if want := (spread{Median: (a + b) / 2, Min: min(a, b), Max: max(a, b)}); r.PercentOfRaw != want {
		t.Errorf("percent of raw summed up as %+v, want %+v from %.2f and %.2f", r.PercentOfRaw, want, a, b)
	}
}

func TestSpreadOf(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want spread
	}{
		{nil, spread{}},
		{[]float64{70}, spread{70, 70, 70}},
		{[]float64{81, 69, 77}, spread{77, 69, 81}},
		{[]float64{80, 70, 76, 74}, spread{75, 70, 80}},
	} {
		if got := spreadOf(c.in); got != c.want {
			t.Errorf("spreadOf(%v) = %+v, want %+v", c.in, got, c.want)
		}
	}
}

// The bench's wait for an event's deliveries ends when its context does,
// while it is watching the sinks for a delivery that never comes (it
// looped without pause there once, until its minute without movement).
func TestBenchWaitEndsWithItsContext(t *testing.T) {
	svc, _ := testService(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	now := time.Now().UTC()
	ev := &notifier.Event{ID: "bench-wait-1", Type: notifier.IncidentOpened, Time: now}
	if err := svc.conn.Events.Put(ctx, &notifier.EventRecord{Event: ev, ReceivedAt: now, PlannedAt: &now, Jobs: 1}); err != nil {
		t.Fatal(err)
	}
	if err := svc.conn.Counts.Count(ctx, ev.ID, notifier.Email, notifier.CountPlanned, 1, "d1.0.planned+"); err != nil {
		t.Fatal(err)
	}
	looks := 0
	arrived := func() int64 {
		if looks++; looks == 10 {
			cancel()
		}
		return 0
	}
	done := make(chan error, 1)
	go func() {
		_, err := waitSettled(ctx, svc, ev.ID, arrived)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("wait ended with %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the wait went on after its context ended")
	}
}
