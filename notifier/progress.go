package notifier

import (
	"context"
	"strconv"
)

// Counted is what a progress counter counts.
type Counted string

// The counters of an event's deliveries on one channel.
const (
	CountPlanned  Counted = "planned"  // jobs planned
	CountSent     Counted = "sent"     // sent (receipts may follow)
	CountFailed   Counted = "failed"   // failed for good (dead letters)
	CountSkipped  Counted = "skipped"  // not sent on purpose
	CountRetrying Counted = "retrying" // waiting for their next attempt
)

// Counteds lists every counter.
var Counteds = []Counted{CountPlanned, CountSent, CountFailed, CountSkipped, CountRetrying}

// ProgressCounter keeps per-event summaries of the delivery log: counts by
// channel that stay O(1) to read however many deliveries an event has, and
// stay when the per-delivery records expire. notifier/jetstream implements
// it with NATS counters.
type ProgressCounter interface {
	// Count adds delta to a counter. key makes it idempotent: a second
	// count under the same key (a redelivered job) changes nothing.
	Count(ctx context.Context, eventID string, ch ChannelName, what Counted, delta int64, key string) error
	// Progress reads an event's counters.
	Progress(ctx context.Context, eventID string) (*Progress, error)
}

// Progress is how far one event's deliveries have got.
type Progress struct {
	EventID string `json:"event_id"`
	// Planned is true once the plan is finished, so the planned counts
	// are final.
	Planned  bool                             `json:"planned"`
	Channels map[ChannelName]*ChannelProgress `json:"channels"`
}

// ChannelProgress counts one channel's deliveries of an event.
type ChannelProgress struct {
	Planned  int64 `json:"planned"`
	Sent     int64 `json:"sent"`
	Failed   int64 `json:"failed"`
	Skipped  int64 `json:"skipped"`
	Retrying int64 `json:"retrying"`
	// Waiting is planned but neither sent, failed nor skipped: in the
	// queue, in flight, or waiting for a retry.
	Waiting int64 `json:"waiting"`
}

func (c *ChannelProgress) add(what Counted, n int64) {
	switch what {
	case CountPlanned:
		c.Planned += n
	case CountSent:
		c.Sent += n
	case CountFailed:
		c.Failed += n
	case CountSkipped:
		c.Skipped += n
	case CountRetrying:
		c.Retrying += n
	}
	c.Waiting = max(c.Planned-c.Sent-c.Failed-c.Skipped, 0)
}

// Set records a counter's value, as read from the store.
func (p *Progress) Set(ch ChannelName, what Counted, n int64) {
	if p.Channels == nil {
		p.Channels = map[ChannelName]*ChannelProgress{}
	}
	c := p.Channels[ch]
	if c == nil {
		c = &ChannelProgress{}
		p.Channels[ch] = c
	}
	c.add(what, n)
}

// Total sums the channels.
func (p *Progress) Total() ChannelProgress {
	var t ChannelProgress
	for _, c := range p.Channels {
		t.Planned += c.Planned
		t.Sent += c.Sent
		t.Failed += c.Failed
		t.Skipped += c.Skipped
		t.Retrying += c.Retrying
		t.Waiting += c.Waiting
	}
	return t
}

// Done reports whether the plan is finished and nothing is waiting.
func (p *Progress) Done() bool { return p.Planned && p.Total().Waiting == 0 }

// CountKey names one count of one delivery for deduplication:
// "<delivery>.<retry generation>.<counter><sign>".
func CountKey(deliveryID string, generation int, what Counted, delta int64) string {
	sign := "+"
	if delta < 0 {
		sign = "-"
	}
	return deliveryID + "." + strconv.Itoa(generation) + "." + string(what) + sign
}
