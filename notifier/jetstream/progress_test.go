package jetstream

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/varsel/varsel/notifier"
)

// TestProgressCountsMatchTheLog: an event's summary (planned, sent,
// failed, skipped, retrying, waiting by channel) agrees with its delivery
// log through retries, permanent failures, a skip and a retry by hand.
func TestProgressCountsMatchTheLog(t *testing.T) {
	s := startStack(t, t.TempDir(), notifier.DispatchConfig{BaseBackoff: 50 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		MaxAttempts: map[notifier.ChannelName]int{notifier.Email: 3, notifier.Webhook: 3}})
	ctx := context.Background()
	// Email: every 10th fails for good (bounce), every 7th once then works.
	seen := map[string]int{}
	s.chans[notifier.Email].fail = func(d *notifier.Delivery) (bool, error) {
		n := d.Subscriber.ID[len(d.Subscriber.ID)-2:]
		seen[d.ID]++
		switch {
		case strings.HasSuffix(n, "0"):
			return false, &notifier.SendError{Reason: notifier.ReasonBounced, Err: fmt.Errorf("550 no such user")}
		case strings.HasSuffix(n, "7") && seen[d.ID] == 1:
			return true, &notifier.SendError{Reason: notifier.ReasonServer, Err: fmt.Errorf("451 later")}
		}
		return false, nil
	}
	addSubscribers(t, s.conn, 40, func(i int) *notifier.Subscriber {
		sub := &notifier.Subscriber{ID: fmt.Sprintf("s%03d", i), Email: fmt.Sprintf("u%d@example.com", i)}
		if i == 5 {
			sub.Suppressed = map[notifier.ChannelName]notifier.Suppression{notifier.Email: {Reason: notifier.ReasonOptedOut}}
		}
		return sub
	})
	publish(t, s.conn, eventJSON("prog", "incident.updated", "2019-09-17T10:00:00+02:00", "identified", "minor"))
	var p *notifier.Progress
	waitFor(t, 15*time.Second, "the event done", func() bool {
		var err error
		p, err = s.conn.Counts.Progress(ctx, "prog")
		return err == nil && p.Done()
	})
	e := p.Channels[notifier.Email]
	// 39 planned (not the paused one); 4 bounced (s000, s010, s020, s030).
	if e.Planned != 39 || e.Failed != 4 || e.Skipped != 0 || e.Sent != 35 || e.Waiting != 0 || e.Retrying != 0 {
		t.Errorf("email progress = %+v, want 39 planned, 35 sent, 4 failed", *e)
	}
	// The log agrees.
	byStatus := map[notifier.DeliveryStatus]int64{}
	_ = s.conn.Deliveries.List(ctx, DeliveryFilter{EventID: "prog"}, func(r *notifier.DeliveryRecord) error {
		byStatus[r.Status]++
		return nil
	})
	if byStatus[notifier.StatusSent] != e.Sent || byStatus[notifier.StatusFailed] != e.Failed || byStatus[notifier.StatusSkipped] != e.Skipped {
		t.Errorf("log %v differs from the summary %+v", byStatus, *e)
	}

	// A retry by hand of a bounced one: it waits again, then fails again.
	if _, err := s.conn.RetryJob(ctx, notifier.DeliveryID("prog", "s010", notifier.Email)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the retried delivery counted again", func() bool {
		p, _ = s.conn.Counts.Progress(ctx, "prog")
		r, _ := s.conn.Deliveries.Get(ctx, notifier.DeliveryID("prog", "s010", notifier.Email))
		return r != nil && r.Status == notifier.StatusFailed && r.Retries == 1 && p.Done()
	})
	if e := p.Channels[notifier.Email]; e.Failed != 4 || e.Sent != 35 {
		t.Errorf("after a retry by hand: %+v, want the same counts", *e)
	}

	// A redelivered job of a sent delivery counts nothing twice.
	cons, err := s.conn.JS.Consumer(ctx, DeliveriesStream, dispatchConsumer+string(notifier.Email))
	if err != nil {
		t.Fatal(err)
	}
	before, _ := cons.Info(ctx)
	again := notifier.NewJob("prog", "s001", notifier.Email)
	again.Seen = true // as a redelivered or replanned job is
	b, _ := json.Marshal(again)
	msg := nats.NewMsg(jobSubject(string(notifier.Email)))
	msg.Data = b
	msg.Header.Set(jetstream.MsgIDHeader, "prog.s001.email.again")
	if _, err := s.conn.JS.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the copy handled", func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.Delivered.Consumer > before.Delivered.Consumer && info.NumAckPending == 0
	})
	if p, _ := s.conn.Counts.Progress(ctx, "prog"); p.Channels[notifier.Email].Sent != 35 {
		t.Errorf("a redelivered job changed the count: %+v", *p.Channels[notifier.Email])
	}
}
