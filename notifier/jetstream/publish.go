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

// PublishedByHeader carries who published an event, for the audit trail
// staff see in the console; it is never shown to customers.
const PublishedByHeader = "Varsel-Published-By"

// PublishEvent publishes a raw event on varsel.events.<type> with
// Nats-Msg-Id set to its id, and waits for the stream to store it. The event
// is validated first; an invalid one is not published.
func (c *Conn) PublishEvent(ctx context.Context, raw []byte) (*notifier.Event, error) {
	ev, _, err := c.PublishEventAs(ctx, raw, "")
	return ev, err
}

// PublishEventAs is PublishEvent recording who published the event (by;
// "" for nobody in particular). duplicate reports that the stream already
// had an event with this id, so nothing new will be sent.
func (c *Conn) PublishEventAs(ctx context.Context, raw []byte, by string) (ev *notifier.Event, duplicate bool, err error) {
	ev, err = notifier.DecodeEvent(raw)
	if err != nil {
		return nil, false, err
	}
	msg := nats.NewMsg("varsel.events." + string(ev.Type))
	msg.Data = raw
	msg.Header.Set(jetstream.MsgIDHeader, ev.ID)
	if by != "" {
		msg.Header.Set(PublishedByHeader, by)
	}
	ack, err := c.JS.PublishMsg(ctx, msg)
	if err != nil {
		return nil, false, fmt.Errorf("publish event %s: %w", ev.ID, err)
	}
	return ev, ack.Duplicate, nil
}

// RetryJob queues a delivery again: its record goes back to queued with the
// attempts reset, and a job is published under a fresh message id so the
// queue's deduplication lets it through.
func (c *Conn) RetryJob(ctx context.Context, id string) (*notifier.DeliveryRecord, error) {
	// Only a delivery that ended without going out may be sent again; a
	// queued one is still in the queue (a second job could send it twice).
	retryable := map[notifier.DeliveryStatus]notifier.Counted{notifier.StatusFailed: notifier.CountFailed,
		notifier.StatusUndelivered: notifier.CountSent, notifier.StatusSkipped: notifier.CountSkipped}
	var uncount notifier.Counted
	var generation int
	rec, err := c.Deliveries.Update(ctx, id, func(r *notifier.DeliveryRecord) error {
		if r.EventID == "" {
			return fmt.Errorf("delivery %s: %w", id, notifier.ErrNotFound)
		}
		what, ok := retryable[r.Status]
		if !ok {
			return fmt.Errorf("delivery %s is %s (since %s): only failed, undelivered or skipped deliveries can be retried", id, r.Status, r.UpdatedAt.Format(time.RFC3339))
		}
		uncount, generation = what, r.Retries
		r.Status, r.Attempts, r.Reason, r.UpdatedAt, r.NextAttemptAt = notifier.StatusQueued, 0, "", time.Now().UTC(), nil
		r.Retries++
		r.Note = "retry requested after: " + r.LastError
		return nil
	})
	if err != nil {
		return nil, err
	}
	// The delivery is waiting again: it leaves its outcome's count.
	if err := c.Counts.Count(ctx, rec.EventID, rec.Channel, uncount, -1, notifier.CountKey(rec.ID, generation, uncount, -1)); err != nil {
		c.logger.Warn("retried delivery not uncounted", "delivery", id, "error", err)
	}
	job := notifier.Job{ID: rec.ID, EventID: rec.EventID, SubscriberID: rec.SubscriberID, Channel: rec.Channel, Seen: true}
	b, _ := json.Marshal(job)
	msg := nats.NewMsg(jobSubject(string(job.Channel)))
	msg.Data = b
	msg.Header.Set(jetstream.MsgIDHeader, job.ID+".retry."+strconv.FormatInt(time.Now().UnixNano(), 36))
	if _, err := c.JS.PublishMsg(ctx, msg); err != nil {
		return nil, fmt.Errorf("queue retry of %s: %w", id, err)
	}
	return rec, nil
}

// scheduleJob stores job to be published on its channel's subject at at: a
// NATS message schedule on WaitPrefix + the delivery id. The broker keeps
// one schedule per subject, so scheduling a delivery again replaces the
// pending schedule instead of adding a second job. Nothing in this process
// waits for it.
func (c *Conn) scheduleJob(ctx context.Context, job notifier.Job, at time.Time) error {
	b, err := json.Marshal(job)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(WaitPrefix + job.ID)
	msg.Data = b
	// Schedules fire on whole seconds: round up, never early.
	at = at.UTC().Add(time.Second - 1).Truncate(time.Second)
	msg.Header.Set("Nats-Schedule", "@at "+at.Format(time.RFC3339))
	msg.Header.Set("Nats-Schedule-Target", jobSubject(string(job.Channel)))
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.JS.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("schedule %s: %w", job.ID, err)
	}
	return nil
}

// reject stores an invalid event on VARSEL_REJECTED: the payload as it came,
// the reason and original subject in headers.
func (c *Conn) reject(ctx context.Context, r notifier.Rejection, msgID string) error {
	msg := nats.NewMsg(RejectedSubject)
	msg.Data = r.Data
	if len(r.Data) > notifier.MaxEventSize {
		// Keep the start of an oversized payload: enough to find its
		// producer, and small enough to always fit.
		msg.Data = r.Data[:notifier.MaxEventSize]
		msg.Header.Set("Varsel-Truncated", "true")
	}
	msg.Header.Set("Varsel-Original-Size", strconv.Itoa(len(r.Data)))
	msg.Header.Set("Varsel-Reason", r.Reason)
	msg.Header.Set("Varsel-Subject", r.Subject)
	msg.Header.Set("Varsel-Rejected-At", r.ReceivedAt.UTC().Format(time.RFC3339Nano))
	msg.Header.Set(jetstream.MsgIDHeader, msgID)
	_, err := c.JS.PublishMsg(ctx, msg)
	return err
}

// Rejected is one stored rejection.
type Rejected struct {
	Seq        uint64    `json:"seq"`
	Subject    string    `json:"subject"`
	Reason     string    `json:"reason"`
	RejectedAt time.Time `json:"rejected_at"`
	// Data is the payload as published, cut at MaxEventSize when it was
	// larger; OriginalSize is its full length.
	Data         []byte `json:"data"`
	OriginalSize int    `json:"original_size"`
}

// Rejections reads every stored rejection, oldest first.
func (c *Conn) Rejections(ctx context.Context) ([]Rejected, error) {
	st, err := c.JS.Stream(ctx, RejectedStream)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", RejectedStream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream info %s: %w", RejectedStream, err)
	}
	var out []Rejected
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return out, fmt.Errorf("read rejection %d: %w", seq, err)
		}
		at, _ := time.Parse(time.RFC3339Nano, m.Header.Get("Varsel-Rejected-At"))
		size, err := strconv.Atoi(m.Header.Get("Varsel-Original-Size"))
		if err != nil {
			size = len(m.Data)
		}
		out = append(out, Rejected{Seq: seq, Subject: m.Header.Get("Varsel-Subject"),
			Reason: m.Header.Get("Varsel-Reason"), RejectedAt: at, Data: m.Data, OriginalSize: size})
	}
	return out, nil
}

// enqueuer publishes a plan's jobs asynchronously, waiting for the stream's
// acknowledgements in windows so memory stays bounded and no failure is
// missed. A job gets its delivery log record when a worker first takes it;
// until then the event record's job count is what shows it as waiting
// (writing a "queued" record per job at plan time cost a sixth of a
// 100k-subscriber fan-out).
//
// A plan's deliveries of one event and channel are queued together, up to
// notifier.MaxJobDeliveries a message: storing, handing out and
// acknowledging one message per delivery cost the broker and the workers
// more than the delivery log did.
type enqueuer struct {
	c       *Conn
	futures []jetstream.PubAckFuture
	// open holds, per channel, the job of several deliveries being filled.
	open map[notifier.ChannelName]*notifier.Job
}

const enqueueWindow = 2048

func (q *enqueuer) add(ctx context.Context, j notifier.Job) error {
	if j.Attempt != 0 || len(j.Subscribers) > 0 || j.ID != notifier.DeliveryID(j.EventID, j.SubscriberID, j.Channel) {
		return q.publish(ctx, j) // not a plain planned delivery: as it is
	}
	b := q.open[j.Channel]
	if b != nil && (b.EventID != j.EventID || b.Seen != j.Seen) {
		if err := q.close(ctx, j.Channel); err != nil {
			return err
		}
		b = nil
	}
	if b == nil {
		if q.open == nil {
			q.open = map[notifier.ChannelName]*notifier.Job{}
		}
		b = &notifier.Job{EventID: j.EventID, Channel: j.Channel, Seen: j.Seen,
			Subscribers: make([]string, 0, notifier.MaxJobDeliveries)}
		q.open[j.Channel] = b
	}
	b.Subscribers = append(b.Subscribers, j.SubscriberID)
	if len(b.Subscribers) >= notifier.MaxJobDeliveries {
		return q.close(ctx, j.Channel)
	}
	return nil
}

// close publishes the channel's open job; one of a single delivery goes
// as a plain job.
func (q *enqueuer) close(ctx context.Context, ch notifier.ChannelName) error {
	b := q.open[ch]
	delete(q.open, ch)
	if b == nil || len(b.Subscribers) == 0 {
		return nil
	}
	if len(b.Subscribers) == 1 {
		j := notifier.NewJob(b.EventID, b.Subscribers[0], ch)
		j.Seen = b.Seen
		return q.publish(ctx, j)
	}
	return q.publish(ctx, *b)
}

func (q *enqueuer) publish(ctx context.Context, j notifier.Job) error {
	b, err := encodeHot(j)
	if err != nil {
		return err
	}
	// No message id: deduplicating every job would keep an id per
	// delivery in the server's memory for the whole dedupe window. A job
	// queued twice (a plan run again) carries Seen, and the worker looks
	// its deliveries up before sending.
	subject := jobSubject(string(j.Channel))
	if len(j.Subscribers) > 0 {
		subject = manyJobSubject(string(j.Channel))
	}
	msg := nats.NewMsg(subject)
	msg.Data = b
	f, err := q.c.JS.PublishMsgAsync(msg)
	if err != nil {
		return fmt.Errorf("publish job %s: %w", jobName(j), err)
	}
	q.futures = append(q.futures, f)
	if len(q.futures) >= enqueueWindow {
		return q.await(ctx)
	}
	return nil
}

// jobName names a job in logs and errors.
func jobName(j notifier.Job) string {
	if len(j.Subscribers) > 0 {
		return fmt.Sprintf("%s.%s (%d deliveries from %s)", j.EventID, j.Channel, len(j.Subscribers), j.Subscribers[0])
	}
	return j.ID
}

// flush publishes the open jobs, waits for every outstanding publish and
// reports the first failure.
func (q *enqueuer) flush(ctx context.Context) error {
	for _, ch := range notifier.ChannelNames {
		if err := q.close(ctx, ch); err != nil {
			return err
		}
	}
	for ch := range q.open {
		if err := q.close(ctx, ch); err != nil {
			return err
		}
	}
	return q.await(ctx)
}

func (q *enqueuer) await(ctx context.Context) error {
	defer func() { q.futures = q.futures[:0] }()
	if err := awaitAcks(ctx, q.futures); err != nil {
		return fmt.Errorf("publish job: %w", err)
	}
	return nil
}

// awaitAcks waits for every future and returns the first error.
func awaitAcks(ctx context.Context, futures []jetstream.PubAckFuture) error {
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

var _ notifier.Operator = (*Conn)(nil)

// Progress implements notifier.Operator from the event's counters.
func (c *Conn) Progress(ctx context.Context, eventID string) (*notifier.Progress, error) {
	return c.Counts.Progress(ctx, eventID)
}

// Event implements notifier.Operator.
func (c *Conn) Event(ctx context.Context, id string) (*notifier.EventRecord, error) {
	return c.Events.Get(ctx, id)
}

// ListDeliveries implements notifier.Operator on the delivery log.
func (c *Conn) ListDeliveries(ctx context.Context, f notifier.DeliveryFilter, fn func(*notifier.DeliveryRecord) error) error {
	return c.Deliveries.List(ctx, f, fn)
}

// InFlight returns how many jobs of a channel are taken by a worker (of any
// process) and not yet acknowledged. Jobs waiting for a retry are not among
// them: they wait as schedules (see WaitingRetries).
func (c *Conn) InFlight(ctx context.Context, ch notifier.ChannelName) (uint64, error) {
	var n uint64
	for i, name := range dispatchConsumerNames(ch) {
		cons, err := c.JS.Consumer(ctx, DeliveriesStream, name)
		if i > 0 && errors.Is(err, jetstream.ErrConsumerNotFound) {
			continue // made by a newer instance when it first starts
		}
		if err != nil {
			return 0, fmt.Errorf("read %s consumer: %w", ch, err)
		}
		info, err := cons.Info(ctx)
		if err != nil {
			return 0, fmt.Errorf("read %s consumer: %w", ch, err)
		}
		n += uint64(info.NumAckPending)
	}
	return n, nil
}

// WaitingRetries returns how many deliveries wait for their next attempt.
// It lists the schedules' subjects, so it is for tests and tools, not for
// a hot path.
func (c *Conn) WaitingRetries(ctx context.Context) (int, error) {
	st, err := c.JS.Stream(ctx, DeliveriesStream)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", DeliveriesStream, err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(WaitPrefix+">"))
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", DeliveriesStream, err)
	}
	return len(info.State.Subjects), nil
}
