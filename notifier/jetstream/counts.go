package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/varsel/varsel/notifier"
)

// Counts is the per-event summary of the delivery log on the VARSEL_COUNTS
// stream: one NATS counter (a 2.12 counter stream, Nats-Incr) per event,
// channel and state on varsel.count.<event>.<channel>.<state>. A count is
// deduplicated by its key (Nats-Msg-Id), so a redelivered job never counts
// twice. Reading an event's progress is a fixed number of reads, whatever
// the number of its deliveries. It implements notifier.ProgressCounter.
type Counts struct {
	c *Conn
}

var _ notifier.ProgressCounter = (*Counts)(nil)

// CountsStream holds the counters; CountPrefix starts their subjects.
const (
	CountsStream = "VARSEL_COUNTS"
	CountPrefix  = "varsel.count."
)

func countSubject(eventID string, ch notifier.ChannelName, what notifier.Counted) string {
	return CountPrefix + eventID + "." + string(ch) + "." + string(what)
}

// Count implements notifier.ProgressCounter.
func (k *Counts) Count(ctx context.Context, eventID string, ch notifier.ChannelName, what notifier.Counted, delta int64, key string) error {
	msg := nats.NewMsg(countSubject(eventID, ch, what))
	msg.Header.Set("Nats-Incr", strconv.FormatInt(delta, 10))
	msg.Header.Set(jetstream.MsgIDHeader, key)
	// The key makes a repeat harmless, so an acknowledgement lost to a
	// leader change is answered by trying again soon, not by waiting.
	var err error
	for attempt := range 4 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("count %s %s %s: %w", eventID, ch, what, ctx.Err())
			case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
			}
		}
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err = k.c.JS.PublishMsg(actx, msg)
		cancel()
		if err == nil {
			return nil
		}
	}
	return fmt.Errorf("count %s %s %s: %w", eventID, ch, what, err)
}

// Progress implements notifier.ProgressCounter.
func (k *Counts) Progress(ctx context.Context, eventID string) (*notifier.Progress, error) {
	p := &notifier.Progress{EventID: eventID, Channels: map[notifier.ChannelName]*notifier.ChannelProgress{}}
	rec, err := k.c.Events.Get(ctx, eventID)
	if err != nil {
		return nil, err
	}
	p.Planned = rec.PlannedAt != nil
	st, err := k.c.JS.Stream(ctx, CountsStream)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", CountsStream, err)
	}
	for _, ch := range notifier.ChannelNames {
		for _, what := range notifier.Counteds {
			m, err := st.GetLastMsgForSubject(ctx, countSubject(eventID, ch, what))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("read progress of %s: %w", eventID, err)
			}
			var v struct {
				Val string `json:"val"`
			}
			if err := json.Unmarshal(m.Data, &v); err != nil {
				return nil, fmt.Errorf("read progress of %s: %w", eventID, err)
			}
			n, _ := strconv.ParseInt(v.Val, 10, 64)
			p.Set(ch, what, n)
		}
	}
	return p, nil
}
