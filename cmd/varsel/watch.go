package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/varsel/varsel/notifier"
)

// watcher follows one event's deliveries on its counters until every
// planned delivery is sent, failed or skipped, printing a progress line:
// counts, rate and time left. On a terminal the line is rewritten in
// place; elsewhere (a pipe, a log) a line is printed when it changes, at
// most every few seconds.
type watcher struct {
	op  progressSource
	out io.Writer
	// live rewrites one line in place (a terminal).
	live bool
	// every is the polling interval; print how often a changed line is
	// printed when not live.
	every, print time.Duration
	// stall is how long the counts may stand still before the watcher
	// checks them against the delivery log, and says what it waits for.
	stall time.Duration
	// lostAfter is how long reading the progress may fail (NATS
	// reconnecting) before the watch gives up, saying what to do.
	lostAfter time.Duration
	now       func() time.Time
}

// progressSource is what the watcher reads: the part of
// notifier.Operator about an event's deliveries.
type progressSource interface {
	Event(ctx context.Context, id string) (*notifier.EventRecord, error)
	Progress(ctx context.Context, eventID string) (*notifier.Progress, error)
	ListDeliveries(ctx context.Context, f notifier.DeliveryFilter, fn func(*notifier.DeliveryRecord) error) error
}

func newWatcher(op progressSource, out io.Writer) *watcher {
	return &watcher{op: op, out: out, live: isTerminal(out), every: 250 * time.Millisecond,
		print: 2 * time.Second, stall: 20 * time.Second, lostAfter: 10 * time.Second, now: time.Now}
}

// isTerminal reports whether w is a character device, such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// sample is how many deliveries had settled at a moment, for the rate.
type sample struct {
	at      time.Time
	settled int64
}

// watch follows eventID until it is done and ends with the line
// "done: N sent, N failed, N skipped". Interrupted (ctx), it says how far
// delivery got and that it goes on without the watcher.
func (w *watcher) watch(ctx context.Context, eventID string) error {
	start := w.now()
	var (
		samples    []sample
		last       string
		lastPrint  time.Time
		lastChange = start
		lastCheck  time.Time
		lastTotal  notifier.ChannelProgress
		notTakenIn bool
		p          *notifier.Progress
		failing    time.Time // since when reading fails; zero while it works
	)
	lost := func(err error) error {
		// A read that fails for a moment (NATS reconnecting) is tried
		// again; one that goes on failing ends the watch with what to do.
		if failing.IsZero() {
			failing = w.now()
		}
		if w.now().Sub(failing) < w.lostAfter {
			return nil
		}
		return fmt.Errorf("watch %s: cannot read its progress for %s: %w. Is `varsel serve` (or its NATS) still running? What was sent is recorded: `varsel deliveries list --event %s --summary` shows how far it got", eventID, roundDur(w.now().Sub(failing)), err, eventID)
	}
	tick := time.NewTicker(w.every)
	defer tick.Stop()
	for {
		now := w.now()
		rec, err := w.op.Event(ctx, eventID)
		switch {
		case errors.Is(err, notifier.ErrNotFound):
			// Published, not yet taken in by a running service.
			if !notTakenIn && now.Sub(start) > w.stall {
				notTakenIn = true
				w.line(fmt.Sprintf("no service has taken %s in for %s: is `varsel serve` running on this NATS?", eventID, roundDur(now.Sub(start))), true)
			}
		case err != nil && ctx.Err() == nil:
			if err := lost(err); err != nil {
				return err
			}
		case err == nil:
			// The last good count stays until a read gives a new one; the
			// failing clock stops only when both reads work.
			got, perr := w.op.Progress(ctx, eventID)
			switch {
			case perr == nil:
				p, failing = got, time.Time{}
			case ctx.Err() == nil:
				if err := lost(perr); err != nil {
					return err
				}
			}
		}
		if ctx.Err() != nil {
			return w.interrupted(eventID, p)
		}
		if p != nil && rec != nil {
			// A plan may be finished with nothing in it: nobody follows the
			// event's components.
			if rec.PlannedAt != nil {
				p.Planned = true
			}
			t := p.Total()
			if t != lastTotal {
				lastTotal, lastChange = t, now
			}
			settled := t.Sent + t.Failed + t.Skipped
			samples = append(samples, sample{now, settled})
			for len(samples) > 2 && now.Sub(samples[0].at) > 5*time.Second {
				samples = samples[1:]
			}
			if p.Done() {
				w.finish(eventID, p, now.Sub(start))
				return nil
			}
			if now.Sub(lastChange) >= w.stall && now.Sub(lastCheck) >= w.stall {
				lastCheck = now
				if w.reconcile(ctx, eventID, p) {
					w.finish(eventID, p, now.Sub(start))
					return nil
				}
			}
			line := progressLine(p, samples)
			if w.live || (line != last && now.Sub(lastPrint) >= w.print) {
				w.line(line, false)
				last, lastPrint = line, now
			}
		} else if w.live {
			w.line("waiting for the service to take "+eventID+" in…", false)
		}
		select {
		case <-ctx.Done():
			return w.interrupted(eventID, p)
		case <-tick.C:
		}
	}
}

// line prints a progress line; on a terminal it replaces the last one,
// unless keep asks for it to stay.
func (w *watcher) line(s string, keep bool) {
	if w.live {
		fmt.Fprintf(w.out, "\r\033[K%s", s)
		if keep {
			fmt.Fprintln(w.out)
		}
		return
	}
	fmt.Fprintln(w.out, s)
}

// progressLine reads: "1200 of 4000 settled: 1190 sent, 3 failed, 7
// skipped, 2800 waiting (5 for a retry) · 410/s · about 7s left".
func progressLine(p *notifier.Progress, samples []sample) string {
	t := p.Total()
	settled := t.Sent + t.Failed + t.Skipped
	var b strings.Builder
	if p.Planned {
		fmt.Fprintf(&b, "%d of %d: %d sent, %d failed, %d skipped, %d waiting", settled, t.Planned, t.Sent, t.Failed, t.Skipped, t.Waiting)
	} else {
		// The plan is counted in batches: sends may run ahead of it.
		fmt.Fprintf(&b, "planning (%d so far): %d sent, %d failed, %d skipped", max(t.Planned, settled), t.Sent, t.Failed, t.Skipped)
	}
	if t.Retrying > 0 {
		fmt.Fprintf(&b, " (%d for a retry)", t.Retrying)
	}
	if len(samples) >= 2 {
		first, last := samples[0], samples[len(samples)-1]
		if dt := last.at.Sub(first.at).Seconds(); dt > 0 {
			rate := float64(last.settled-first.settled) / dt
			fmt.Fprintf(&b, " · %.0f/s", rate)
			if rate >= 0.5 && p.Planned {
				fmt.Fprintf(&b, " · about %s left", roundDur(time.Duration(float64(t.Waiting)/rate*float64(time.Second))))
			}
		}
	}
	return b.String()
}

// reconcile checks counts that stand still against the delivery log: a
// process that died between recording a delivery and counting it leaves
// the count behind until its job is redelivered. It takes the log's
// outcomes where they are ahead and reports whether that settles the
// event. It also says what the event still waits for.
func (w *watcher) reconcile(ctx context.Context, eventID string, p *notifier.Progress) bool {
	logged := map[notifier.ChannelName]*notifier.ChannelProgress{}
	var retries int
	var next time.Time
	err := w.op.ListDeliveries(ctx, notifier.DeliveryFilter{EventID: eventID}, func(r *notifier.DeliveryRecord) error {
		c := logged[r.Channel]
		if c == nil {
			c = &notifier.ChannelProgress{}
			logged[r.Channel] = c
		}
		switch r.Status {
		case notifier.StatusFailed:
			c.Failed++
		case notifier.StatusSkipped:
			c.Skipped++
		case notifier.StatusSent, notifier.StatusDelivered, notifier.StatusUndelivered:
			c.Sent++
		case notifier.StatusQueued:
			if r.NextAttemptAt != nil {
				retries++
				if next.IsZero() || r.NextAttemptAt.Before(next) {
					next = *r.NextAttemptAt
				}
			}
		}
		return nil
	})
	if err != nil {
		return false
	}
	for ch, l := range logged {
		c := p.Channels[ch]
		if c == nil {
			continue
		}
		c.Sent, c.Failed, c.Skipped = max(c.Sent, l.Sent), max(c.Failed, l.Failed), max(c.Skipped, l.Skipped)
		c.Waiting = max(c.Planned-c.Sent-c.Failed-c.Skipped, 0)
	}
	if p.Done() {
		return true
	}
	if retries > 0 {
		w.line(fmt.Sprintf("%d deliveries wait for a retry, the next at %s; they go on if you stop watching (Ctrl-C)",
			retries, next.Local().Format("15:04:05 MST")), true)
	}
	return false
}

// finish prints the summary: per channel, then the last line.
func (w *watcher) finish(eventID string, p *notifier.Progress, took time.Duration) {
	if w.live {
		fmt.Fprint(w.out, "\r\033[K")
	}
	t := p.Total()
	var parts []string
	for _, ch := range notifier.ChannelNames {
		if c := p.Channels[ch]; c != nil && c.Planned > 0 {
			parts = append(parts, fmt.Sprintf("%s %d sent, %d failed, %d skipped", ch, c.Sent, c.Failed, c.Skipped))
		}
	}
	if len(parts) == 0 {
		fmt.Fprintf(w.out, "%s reached nobody: no subscriber follows its components on a channel it uses\n", eventID)
	} else {
		fmt.Fprintf(w.out, "all %d deliveries of %s settled in %s (%s)\n", t.Planned, eventID, roundDur(took), strings.Join(parts, "; "))
	}
	if t.Failed > 0 {
		fmt.Fprintf(w.out, "see the failures and retry them: varsel deliveries list --event %s --status failed\n", eventID)
	}
	fmt.Fprintf(w.out, "done: %d sent, %d failed, %d skipped\n", t.Sent, t.Failed, t.Skipped)
}

// interrupted says how far delivery got when the watcher was stopped.
func (w *watcher) interrupted(eventID string, p *notifier.Progress) error {
	if w.live {
		fmt.Fprintln(w.out)
	}
	if p == nil {
		fmt.Fprintf(w.out, "stopped watching before %s was taken in; it is published and goes on without you\n", eventID)
		return nil
	}
	t := p.Total()
	fmt.Fprintf(w.out, "stopped watching: %d sent, %d failed, %d skipped, %d waiting; delivery goes on without you (varsel deliveries list --event %s --summary)\n",
		t.Sent, t.Failed, t.Skipped, t.Waiting, eventID)
	return nil
}

// roundDur rounds a duration for reading: 0.4s, 12s, 3m20s.
func roundDur(d time.Duration) string {
	if d < time.Minute {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
