package notifier

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// DispatchConfig tunes retries and suppression. Zero values take the
// defaults noted on each field.
type DispatchConfig struct {
	// MaxAttempts per channel; 0 means the channel's own schedule
	// (Backoffer), else 8. A job that fails this many
	// times is recorded as failed (the dead letter) and not retried.
	MaxAttempts map[ChannelName]int
	// BaseBackoff is the first retry delay, doubled per attempt up to
	// MaxBackoff, with ±20 % jitter; 0 means 5 s and 15 min. Channels that
	// implement Backoffer use their own schedule instead.
	BaseBackoff, MaxBackoff time.Duration
	// SendTimeout bounds one Notify call; 0 means 30 s.
	SendTimeout time.Duration
	// SuppressAfter is how many consecutive failed deliveries that are the
	// recipient's fault (hard bounces; for webhooks any failure) pause a
	// channel for a subscriber. A channel missing from the map takes
	// DefaultSuppressAfter; 0 means never.
	SuppressAfter map[ChannelName]int
	// EndpointConcurrency bounds the sends in flight to one endpoint of a
	// channel that has endpoints (Endpointer: webhooks), per process, so a
	// slow endpoint cannot take every worker; a job over the bound is put
	// back for a moment without counting an attempt. 0 means 4.
	EndpointConcurrency int
	// FastEndpointConcurrency is how far that bound grows, one send at a
	// time, for an endpoint that answers within 250 ms (see endpointGate);
	// 0 means 8, a quarter of the 32 webhook workers a process runs by
	// default.
	FastEndpointConcurrency int
}

func (c DispatchConfig) endpointConcurrency() int {
	if c.EndpointConcurrency > 0 {
		return c.EndpointConcurrency
	}
	return 4
}

func (c DispatchConfig) fastEndpointConcurrency() int {
	if c.FastEndpointConcurrency > 0 {
		return max(c.FastEndpointConcurrency, c.endpointConcurrency())
	}
	return max(8, c.endpointConcurrency())
}

func (c DispatchConfig) maxAttempts(ch ChannelName) int {
	if n := c.MaxAttempts[ch]; n > 0 {
		return n
	}
	return 8
}

// DefaultSuppressAfter is the SuppressAfter used when none is configured.
var DefaultSuppressAfter = map[ChannelName]int{Email: 3, Webhook: 5}

// Verdict tells the queue what to do with a job after Handle.
type Verdict struct {
	// Retry asks for the job again after RetryIn, as attempt Attempt (0:
	// whichever comes next); otherwise the job is done (sent, skipped or
	// failed for good) and is acknowledged. The queue must not hold a
	// worker or an in-flight slot while the job waits.
	Retry   bool
	RetryIn time.Duration
	Attempt int
	// Deferred marks a job put back without an attempt: its endpoint was
	// busy.
	Deferred bool
	// Recorded, when set, delivers the outcome of storing a settled
	// record (nil: stored); the job is acknowledged only after it, and
	// redelivered when it is an error.
	Recorded <-chan error
}

// outcomeCounter is the counter a final status adds to.
func outcomeCounter(s DeliveryStatus) Counted {
	switch s {
	case StatusFailed:
		return CountFailed
	case StatusSkipped:
		return CountSkipped
	}
	return CountSent // sent, delivered, undelivered: it went out
}

// count adds delta to the event's counter for r's channel, once per
// delivery, retry generation, counter and sign. A failure to count is
// logged: the delivery itself is recorded.
func (d *Dispatcher) count(ctx context.Context, r *DeliveryRecord, what Counted, delta int64) {
	if d.Counter == nil {
		return
	}
	if err := d.Counter.Count(ctx, r.EventID, r.Channel, what, delta, CountKey(r.ID, r.Retries, what, delta)); err != nil {
		d.Logger.Warn("delivery not counted in the event's summary", "delivery", r.ID, "counter", what, "error", err)
	}
}

// waitingForRetry reports whether a record is a failed attempt waiting
// for the next one.
func waitingForRetry(r *DeliveryRecord) bool {
	return r.Status == StatusQueued && r.NextAttemptAt != nil
}

// earlySlack is how early a scheduled retry may arrive and still be taken
// as due: the broker fires schedules on whole seconds.
const earlySlack = 2 * time.Second

// Dispatcher sends one job: it reads the delivery log, skips what is done
// or unwanted, renders, sends through the channel, and records the outcome
// before the job is acknowledged.
type Dispatcher struct {
	Channels    map[ChannelName]Channel
	Renderer    Renderer
	Subscribers SubscriberStore
	Log         DeliveryLog
	Events      EventStore
	Incidents   IncidentStore
	Config      DispatchConfig
	Metrics     *Metrics
	Logger      *slog.Logger
	// Published is told of every recorded outcome (varsel.deliveries.<status>).
	Published func(*DeliveryRecord)
	// OnSuppress is told when a channel is paused for a subscriber, so the
	// owner can be told; it may be nil.
	OnSuppress func(ctx context.Context, s *Subscriber, ch ChannelName, why Suppression)
	// Counter keeps the per-event summary; nil keeps none.
	Counter ProgressCounter
	Now     func() time.Time

	cache eventCache
	// endpoints counts the sends in flight per endpoint.
	endpointsMu    sync.Mutex
	endpoints      map[string]*endpointGate
	endpointsSwept time.Time
	// inFlight holds the delivery ids being worked on in this process (a
	// map under a mutex: a sync.Map boxes every id it is given).
	inFlightMu sync.Mutex
	inFlight   map[string]struct{}
	// batchOff is when (unix ns) to try reading a job's subscribers
	// together again after that failed.
	batchOff atomic.Int64
}

// batchReadPause is how long subscribers are read one by one after reading
// a job's together failed.
const batchReadPause = time.Minute

// Prefetch reads the subscribers of jobs (the deliveries of one job of
// several) in one round trip when the store can, so Handle does not read
// them one by one. When that read fails, the jobs are returned as they
// came and each reads its own.
func (d *Dispatcher) Prefetch(ctx context.Context, jobs []Job) []Job {
	b, ok := d.Subscribers.(SubscriberBatcher)
	if !ok || len(jobs) < 2 || d.now().UnixNano() < d.batchOff.Load() {
		return jobs
	}
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.SubscriberID
	}
	subs, err := b.GetMany(ctx, ids)
	if err != nil {
		// One line, then a minute of reading one by one: a server that
		// cannot (a NATS before 2.11) would fail every job the same way.
		d.batchOff.Store(d.now().Add(batchReadPause).UnixNano())
		d.Logger.Warn("a job's subscribers not read together; reading them one by one for a minute", "error", err)
		return jobs
	}
	at := d.now()
	for i := range jobs {
		sub, ok := subs[jobs[i].SubscriberID]
		if ok && sub == nil {
			continue // not readable with the others: it reads its own
		}
		jobs[i].fetched, jobs[i].fetchedAt, jobs[i].sub = true, at, sub
	}
	return jobs
}

// prefetchMaxAge is how long a subscriber read with its job stands for
// the subscriber. A send that starts later (a slow channel's job of 32
// waits for its turn) reads it again, so a removal, a pause or a new
// address in the meantime is seen, as it is by a job of one.
const prefetchMaxAge = time.Second

// subscriber is the job's subscriber: the one read with its job, if that
// is recent, or read now.
func (d *Dispatcher) subscriber(ctx context.Context, job Job) (*Subscriber, error) {
	if !job.fetched || d.now().Sub(job.fetchedAt) > prefetchMaxAge {
		return d.Subscribers.Get(ctx, job.SubscriberID)
	}
	if job.sub == nil {
		return nil, fmt.Errorf("subscriber %q: %w", job.SubscriberID, ErrNotFound)
	}
	return job.sub, nil
}

// Handle processes one job. An error means the job could not be processed
// for a reason outside the delivery (a store was unreachable): the caller
// should redeliver it soon without counting an attempt.
func (d *Dispatcher) Handle(ctx context.Context, job Job) (Verdict, error) {
	// Two copies of one job (a plan run again) are never worked on at
	// once here: the second waits and then finds the first's record.
	if !d.begin(job.ID) {
		return Verdict{Retry: true, RetryIn: endpointWait(), Deferred: true}, nil
	}
	defer d.end(job.ID)
	evr, inc, err := d.event(ctx, job.EventID)
	if err != nil {
		return Verdict{}, err
	}
	// A job planned once and taken for the first time has no record yet:
	// only one that may have been seen before is looked up, or any of an
	// event whose plan was run again (its first run's jobs may come after
	// the second's).
	rec := &DeliveryRecord{ID: job.ID}
	if job.Seen || job.Attempt > 0 || evr.Resumed {
		found, err := d.Log.Get(ctx, job.ID)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return Verdict{}, fmt.Errorf("read delivery log: %w", err)
		default:
			rec = found
		}
	}
	if rec.Status.Done() {
		// Redelivered after the outcome was recorded (a lost ack, a crash,
		// a re-plan): never send again. The outcome was counted when it
		// was stored.
		d.Metrics.Deliveries.WithLabelValues(string(job.Channel), "skipped", "already_done").Inc()
		return Verdict{}, nil
	}
	if next := rec.NextAttemptAt; rec.Status == StatusQueued && next != nil && d.now().Before(next.Add(-earlySlack)) {
		// A copy of a job whose next attempt is scheduled for later (the
		// original, redelivered after a crash between recording the
		// failure and acknowledging it): put it back for that time. The
		// queue keeps one schedule per delivery, so this never makes two.
		return Verdict{Retry: true, RetryIn: next.Sub(d.now()), Attempt: rec.Attempts + 1}, nil
	}
	sub, err := d.subscriber(ctx, job)
	if errors.Is(err, ErrNotFound) {
		return d.skip(ctx, job, rec, evr, skipRemoved)
	}
	if err != nil {
		return Verdict{}, fmt.Errorf("read subscriber: %w", err)
	}
	if s, ok := sub.Suppressed[job.Channel]; ok {
		return d.skip(ctx, job, rec, evr, "channel paused: "+string(s.Reason))
	}
	if sub.Contact(job.Channel) == "" {
		return d.skip(ctx, job, rec, evr, "no address on this channel")
	}
	ch, ok := d.Channels[job.Channel]
	if !ok {
		return d.skip(ctx, job, rec, evr, "channel not configured")
	}
	var sendTook time.Duration
	// The endpoint's place is given back as soon as the send ends, not
	// after the record (which may wait for the log).
	var release func()
	if ep, ok := ch.(Endpointer); ok {
		key := string(job.Channel) + " " + ep.Endpoint(sub)
		g, ticket, ok := d.acquireEndpoint(key)
		if !ok {
			d.Metrics.Deliveries.WithLabelValues(string(job.Channel), "deferred", "endpoint_busy").Inc()
			return Verdict{Retry: true, RetryIn: endpointWait(), Deferred: true}, nil
		}
		release = func() { d.releaseEndpoint(key, g, ticket, sendTook) }
		defer func() {
			if release != nil {
				release()
			}
		}()
	}

	now := d.now()
	del := &Delivery{
		ID: job.ID, Channel: job.Channel, Event: evr.Event, Incident: inc, Subscriber: sub,
		Attempt: rec.Attempts + 1, PreviousReason: rec.Reason,
	}
	if rec.FirstAttemptAt != nil {
		del.FirstAttemptAt = *rec.FirstAttemptAt
	}
	if rec.LastAttemptAt != nil {
		del.PreviousAttemptAt = *rec.LastAttemptAt
	}
	var receipt Receipt
	var retry bool
	del.Message, err = d.Renderer.Render(evr.Event, inc, sub, job.Channel)
	if err != nil {
		err = &SendError{Reason: ReasonTemplate, Err: err}
	} else {
		sendCtx, cancel := context.WithTimeout(ctx, d.sendTimeout())
		receipt, retry, err = ch.Notify(sendCtx, del)
		cancel()
		sendTook = d.now().Sub(now)
		d.Metrics.SendDuration.WithLabelValues(string(job.Channel)).Observe(sendTook.Seconds())
	}
	if release != nil {
		release()
		release = nil
	}
	return d.record(ctx, del, rec, evr, receipt, retry, err, now)
}

// begin marks delivery id as being worked on here; false if it already is.
func (d *Dispatcher) begin(id string) bool {
	d.inFlightMu.Lock()
	defer d.inFlightMu.Unlock()
	if _, busy := d.inFlight[id]; busy {
		return false
	}
	if d.inFlight == nil {
		d.inFlight = map[string]struct{}{}
	}
	d.inFlight[id] = struct{}{}
	return true
}

// end undoes begin.
func (d *Dispatcher) end(id string) {
	d.inFlightMu.Lock()
	delete(d.inFlight, id)
	d.inFlightMu.Unlock()
}

// record writes the outcome of one attempt and decides the verdict.
func (d *Dispatcher) record(ctx context.Context, del *Delivery, read *DeliveryRecord, evr *EventRecord, receipt Receipt, retry bool, sendErr error, started time.Time) (Verdict, error) {
	chName := string(del.Channel)
	wasWaiting := waitingForRetry(read)
	maxAttempts := d.Config.maxAttempts(del.Channel)
	if b, ok := d.Channels[del.Channel].(Backoffer); ok && d.Config.MaxAttempts[del.Channel] == 0 {
		maxAttempts = b.MaxAttempts()
	}
	verdict := Verdict{}
	final := false
	apply := func(r *DeliveryRecord) error {
		fillRecord(r, del, evr)
		r.Attempts = del.Attempt
		if r.FirstAttemptAt == nil {
			r.FirstAttemptAt = &started
		}
		r.LastAttemptAt = &started
		r.UpdatedAt = d.now()
		if sendErr == nil {
			// A provider receipt (delivered, undelivered) may have
			// arrived before this write: never move it back to sent.
			if r.Status != StatusDelivered && r.Status != StatusUndelivered {
				r.Status = StatusSent
			}
			r.LastError, r.Reason, r.NextAttemptAt = "", "", nil
			r.ProviderID, r.Segments, r.Note = receipt.ProviderID, receipt.Segments, receipt.Note
			sent := r.UpdatedAt
			r.SentAt = &sent
			return nil
		}
		r.LastError, r.Reason = sendErr.Error(), ReasonOf(sendErr)
		if retry && del.Attempt < maxAttempts {
			r.Status = StatusQueued
			verdict = Verdict{Retry: true, RetryIn: d.backoff(del, sendErr), Attempt: del.Attempt + 1}
			next := d.now().Add(verdict.RetryIn)
			r.NextAttemptAt = &next
			return nil
		}
		r.NextAttemptAt = nil
		r.Status = StatusFailed
		final = true
		return nil
	}
	// Write on top of the record read before sending. A delivery waiting
	// for its next attempt is kept where it can be changed (compare and
	// set; read again only when something else changed it meanwhile); a
	// settled one goes to the log, and the job waits for it to be stored.
	rec := read
	_ = apply(rec)
	if verdict.Retry {
		err := d.Log.Save(ctx, rec)
		if errors.Is(err, ErrConflict) {
			rec, err = d.Log.Update(ctx, del.ID, apply)
		}
		if err != nil {
			return Verdict{}, fmt.Errorf("record delivery: %w", err)
		}
	} else {
		verdict.Recorded = d.settle(rec)
	}
	if d.Published != nil {
		d.Published(rec)
	}
	// Built only when a line is written: a fan-out's successes log nothing
	// at the default level, and this runs once per message.
	log := func() *slog.Logger {
		return d.Logger.With("delivery", del.ID, "to", MaskContact(del.Channel, del.Subscriber.Contact(del.Channel)), "attempt", del.Attempt)
	}
	if verdict.Retry && !wasWaiting {
		d.count(ctx, rec, CountRetrying, 1)
	}
	if wasWaiting && !verdict.Retry {
		d.count(ctx, rec, CountRetrying, -1)
	}
	switch {
	case sendErr == nil:
		d.Metrics.Deliveries.WithLabelValues(chName, "sent", "").Inc()
		d.Metrics.Latency.WithLabelValues(chName).Observe(d.now().Sub(evr.ReceivedAt).Seconds())
		if d.Logger.Enabled(ctx, slog.LevelDebug) {
			log().Debug("sent", "provider_id", receipt.ProviderID)
		}
		if del.Subscriber.Failures[del.Channel] > 0 {
			d.updateSubscriber(ctx, del.Subscriber.ID, func(s *Subscriber) { delete(s.Failures, del.Channel) })
		}
	case verdict.Retry:
		d.Metrics.Deliveries.WithLabelValues(chName, "retry", string(rec.Reason)).Inc()
		log().Warn("send failed, will retry", "reason", rec.Reason, "in", verdict.RetryIn.Round(time.Millisecond), "error", ScrubError(sendErr))
	default:
		d.Metrics.Deliveries.WithLabelValues(chName, "failed", string(rec.Reason)).Inc()
		log().Error("send failed for good", "reason", rec.Reason, "attempts", del.Attempt, "error", ScrubError(sendErr))
		d.afterFailure(ctx, del, sendErr, final)
	}
	return verdict, nil
}

// afterFailure pauses a channel for a subscriber when the failure says so
// at once (STOP, 410, invalid number) or when too many in a row were the
// recipient's fault.
func (d *Dispatcher) afterFailure(ctx context.Context, del *Delivery, sendErr error, final bool) {
	var se *SendError
	errors.As(sendErr, &se)
	reason := ReasonOf(sendErr)
	now := d.now()
	if se != nil && se.Suppress {
		why := Suppression{Reason: reason, Detail: se.Error(), At: now}
		d.suppress(ctx, del.Subscriber.ID, del.Channel, why)
		return
	}
	if !final || !recipientFault(del.Channel, reason) {
		return
	}
	limit, ok := d.Config.SuppressAfter[del.Channel]
	if !ok {
		limit = DefaultSuppressAfter[del.Channel]
	}
	var paused *Suppression
	d.updateSubscriber(ctx, del.Subscriber.ID, func(s *Subscriber) {
		if s.Failures == nil {
			s.Failures = map[ChannelName]int{}
		}
		s.Failures[del.Channel]++
		if limit > 0 && s.Failures[del.Channel] >= limit {
			why := Suppression{Reason: ReasonDisabled, At: now,
				Detail: fmt.Sprintf("%d failed deliveries in a row; last: %v", s.Failures[del.Channel], sendErr)}
			if s.Suppressed == nil {
				s.Suppressed = map[ChannelName]Suppression{}
			}
			if _, already := s.Suppressed[del.Channel]; !already {
				s.Suppressed[del.Channel] = why
				paused = &why
			}
		}
	})
	if paused != nil && d.OnSuppress != nil {
		if s, err := d.Subscribers.Get(ctx, del.Subscriber.ID); err == nil {
			d.OnSuppress(ctx, s, del.Channel, *paused)
		}
	}
}

// recipientFault reports whether a failure says something about the
// recipient rather than about our provider: only those count towards pausing.
func recipientFault(ch ChannelName, r Reason) bool {
	switch r {
	case ReasonBounced, ReasonInvalidAddress, ReasonGone, ReasonOptedOut:
		return true
	case ReasonTemplate:
		return false
	}
	// A webhook endpoint is the recipient's own server, so any failure is
	// theirs; an email or SMS rejection (a relay's policy refusal, say)
	// may be our provider's doing and must not pause anyone.
	return ch == Webhook
}

func (d *Dispatcher) suppress(ctx context.Context, id string, ch ChannelName, why Suppression) {
	var s *Subscriber
	d.updateSubscriber(ctx, id, func(sub *Subscriber) {
		if sub.Suppressed == nil {
			sub.Suppressed = map[ChannelName]Suppression{}
		}
		sub.Suppressed[ch] = why
		s = sub
	})
	d.Logger.Warn("channel paused for subscriber", "subscriber", id, "channel", ch, "reason", why.Reason)
	if s != nil && d.OnSuppress != nil {
		d.OnSuppress(ctx, s, ch, why)
	}
}

func (d *Dispatcher) updateSubscriber(ctx context.Context, id string, fn func(*Subscriber)) {
	_, err := d.Subscribers.Update(ctx, id, func(s *Subscriber) error { fn(s); return nil })
	if err != nil && !errors.Is(err, ErrNotFound) {
		d.Logger.Error("update subscriber after delivery", "subscriber", id, "error", err)
	}
}

func (d *Dispatcher) skip(ctx context.Context, job Job, rec *DeliveryRecord, evr *EventRecord, why string) (Verdict, error) {
	wasWaiting := waitingForRetry(rec)
	rec.NextAttemptAt = nil
	rec.ID, rec.EventID, rec.EventType, rec.SubscriberID, rec.Channel = job.ID, job.EventID, evr.Event.Type, job.SubscriberID, job.Channel
	rec.EventTime = evr.Event.Time
	if rec.QueuedAt.IsZero() {
		rec.QueuedAt = evr.ReceivedAt
	}
	rec.Status, rec.Note, rec.UpdatedAt = StatusSkipped, why, d.now()
	if why == skipRemoved {
		// Removed, and their records rewritten under a pseudonym: a job
		// that comes after (a retry, a redelivery) must not bring their id
		// back into the log.
		pseudo := RemovedPseudonym(job.SubscriberID)
		rec.SubscriberID, rec.ID = pseudo, DeliveryID(job.EventID, pseudo, job.Channel)
		rec.LastError = ""
	}
	recorded := d.settle(rec)
	if wasWaiting {
		d.count(ctx, rec, CountRetrying, -1)
	}
	if d.Published != nil {
		d.Published(rec)
	}
	d.Metrics.Deliveries.WithLabelValues(string(job.Channel), "skipped", "").Inc()
	d.Logger.Info("delivery skipped", "delivery", job.ID, "why", why)
	return Verdict{Recorded: recorded}, nil
}

// settle hands a final record to the log and returns where its storing
// is reported.
func (d *Dispatcher) settle(rec *DeliveryRecord) <-chan error {
	done := make(chan error, 1)
	d.Log.Settle(rec, func(err error) { done <- err })
	return done
}

func fillRecord(r *DeliveryRecord, del *Delivery, evr *EventRecord) {
	r.ID, r.EventID, r.EventType = del.ID, del.Event.ID, del.Event.Type
	r.SubscriberID, r.Channel, r.EventTime = del.Subscriber.ID, del.Channel, del.Event.Time
	if r.QueuedAt.IsZero() {
		r.QueuedAt = evr.ReceivedAt
	}
}

// backoff returns the delay before the next attempt: the channel's own
// schedule, or exponential with jitter, or the provider's Retry-After when
// that is longer. Never shorter than the schedule: each attempt counts,
// and a receiver answering "503, retry in 7 s" had all nine of its
// attempts spent in a minute, where the schedule gives it a day.
func (d *Dispatcher) backoff(del *Delivery, err error) time.Duration {
	var se *SendError
	if errors.As(err, &se) && se.Paced && se.RetryAfter > 0 {
		return se.RetryAfter // our own slot, seconds away: no attempt was made
	}
	delay := d.scheduled(del)
	if se != nil && se.RetryAfter > delay {
		return se.RetryAfter
	}
	return delay
}

// scheduled is the delay the channel's schedule gives after del's attempt.
func (d *Dispatcher) scheduled(del *Delivery) time.Duration {
	if b, ok := d.Channels[del.Channel].(Backoffer); ok {
		return b.Backoff(del.Attempt)
	}
	base, maxDelay := d.Config.BaseBackoff, d.Config.MaxBackoff
	if base <= 0 {
		base = 5 * time.Second
	}
	if maxDelay <= 0 {
		maxDelay = 15 * time.Minute
	}
	delay := base << min(del.Attempt-1, 20)
	if delay > maxDelay || delay <= 0 {
		delay = maxDelay
	}
	jitter := 0.8 + 0.4*rand.Float64()
	return time.Duration(float64(delay) * jitter)
}

func (d *Dispatcher) sendTimeout() time.Duration { return d.Config.Timeout() }

// endpointGate bounds the sends in flight to one endpoint. The bound
// starts at EndpointConcurrency and grows by one with every send the
// endpoint answers within fastSend while all its places are taken, up to
// FastEndpointConcurrency: an endpoint that answers quickly may take more
// workers, since it gives them back at once. A slow answer, or a send in
// flight for longer than slowSend, puts the bound back where it started and
// makes a busy endpoint's jobs go back at once instead of waiting for a
// place, for as long as such a send hangs. A slow endpoint therefore never
// holds more than EndpointConcurrency workers with new sends; one that
// turns slow holds at most FastEndpointConcurrency until those sends time
// out, and the rest of the workers go on.
type endpointGate struct {
	refs int // workers holding or waiting for it; guarded by endpointsMu

	mu    sync.Mutex
	limit int
	// started holds when each send in flight began, by ticket.
	started map[uint64]time.Time
	ticket  uint64
	// slow is set while the endpoint's last send took longer than slowSend.
	slow bool
	// lastDone is when a send to it last ended (or the gate was made).
	lastDone time.Time
	// waiters wait for a place, first come first served; a send that ends
	// hands the places then free to the first ones, a new ticket each.
	waiters []*gateWaiter
}

// gateWaiter is a worker waiting for a place; the ticket arrives on ch.
type gateWaiter struct {
	ch chan uint64
}

const (
	// endpointPatience is how long a worker waits for a place at a busy
	// endpoint that answers quickly: a fast endpoint's places free up in
	// far less, so one healthy endpoint still gets its full share.
	endpointPatience = 100 * time.Millisecond
	// slowSend marks an endpoint as slow.
	slowSend = time.Second
	// fastSend is the answer time that lets an endpoint's bound grow.
	fastSend = 250 * time.Millisecond
)

// acquireEndpoint takes one of an endpoint's in-flight places, waiting
// briefly for one when the endpoint is fast, or reports that all are taken.
// The ticket goes back with releaseEndpoint.
func (d *Dispatcher) acquireEndpoint(key string) (*endpointGate, uint64, bool) {
	d.endpointsMu.Lock()
	if d.endpoints == nil {
		d.endpoints = map[string]*endpointGate{}
	}
	d.sweepGates(d.now())
	g := d.endpoints[key]
	if g == nil {
		g = &endpointGate{limit: d.Config.endpointConcurrency(), lastDone: d.now(), started: map[uint64]time.Time{}}
		d.endpoints[key] = g
	}
	g.refs++
	d.endpointsMu.Unlock()
	ticket, w := g.take(d.now(), d.Config.endpointConcurrency())
	if ticket != 0 {
		return g, ticket, true
	}
	if w != nil {
		t := time.NewTimer(endpointPatience)
		defer t.Stop()
		select {
		case ticket := <-w.ch:
			return g, ticket, true
		case <-t.C:
			if !g.giveUp(w) {
				// Handed a place just as the wait ended.
				return g, <-w.ch, true
			}
		}
	}
	d.dropGate(key, g)
	return nil, 0, false
}

// stalled reports whether a send in flight began more than slowSend ago.
// g.mu is held.
func (g *endpointGate) stalled(now time.Time) bool {
	for _, t := range g.started {
		if now.Sub(t) > slowSend {
			return true
		}
	}
	return false
}

// take gives a place (a ticket, never 0) if one is free. Otherwise it
// returns a waiter to wait on for a place (the endpoint is answering), or
// nil (it is slow or has a send hanging: the job goes back at once).
func (g *endpointGate) take(now time.Time, base int) (uint64, *gateWaiter) {
	g.mu.Lock()
	defer g.mu.Unlock()
	slow := g.slow || g.stalled(now)
	if slow {
		g.limit = base
	}
	if len(g.started) < g.limit {
		return g.start(now), nil
	}
	if slow {
		return 0, nil
	}
	w := &gateWaiter{ch: make(chan uint64, 1)}
	g.waiters = append(g.waiters, w)
	return 0, w
}

// start records a send beginning now and returns its ticket. g.mu is held.
func (g *endpointGate) start(now time.Time) uint64 {
	g.ticket++
	g.started[g.ticket] = now
	return g.ticket
}

// giveUp takes w off the waiters; false when a place was handed to it
// meanwhile.
func (g *endpointGate) giveUp(w *gateWaiter) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, x := range g.waiters {
		if x == w {
			g.waiters = append(g.waiters[:i], g.waiters[i+1:]...)
			return true
		}
	}
	return false
}

// releaseEndpoint gives back a place, noting how long the send took (0:
// nothing was sent).
func (d *Dispatcher) releaseEndpoint(key string, g *endpointGate, ticket uint64, took time.Duration) {
	g.release(d.now(), ticket, took, d.Config.endpointConcurrency(), d.Config.fastEndpointConcurrency())
	d.dropGate(key, g)
}

func (g *endpointGate) release(now time.Time, ticket uint64, took time.Duration, base, most int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	saturated := len(g.started) >= g.limit
	delete(g.started, ticket)
	if took > 0 {
		g.lastDone = now
		g.slow = took > slowSend
		switch {
		case g.slow || g.stalled(now):
			g.limit = base
		case took <= fastSend && saturated && g.limit < most:
			// Only an endpoint that used every place it had earns one
			// more.
			g.limit++
		}
	}
	// The places free now go to the waiters, first come first served.
	for len(g.waiters) > 0 && len(g.started) < g.limit {
		w := g.waiters[0]
		g.waiters = g.waiters[1:]
		w.ch <- g.start(now)
	}
}

// dropGate lets go of a worker's hold on g. A gate nobody holds is
// forgotten at once unless it has grown (a fast endpoint between two
// jobs keeps what it earned); grown ones idle for gateIdle go in the next
// sweep.
func (d *Dispatcher) dropGate(key string, g *endpointGate) {
	d.endpointsMu.Lock()
	defer d.endpointsMu.Unlock()
	if g.refs--; g.refs > 0 || d.endpoints[key] != g {
		return
	}
	g.mu.Lock()
	grown := g.limit > d.Config.endpointConcurrency()
	g.mu.Unlock()
	if !grown {
		delete(d.endpoints, key)
	}
}

// gateIdle is how long a grown gate nobody uses is kept.
const gateIdle = 30 * time.Second

// sweepGates forgets the grown gates idle for gateIdle, at most once per
// gateIdle. d.endpointsMu is held.
func (d *Dispatcher) sweepGates(now time.Time) {
	if now.Sub(d.endpointsSwept) < gateIdle {
		return
	}
	d.endpointsSwept = now
	for key, g := range d.endpoints {
		g.mu.Lock()
		idle := now.Sub(g.lastDone) > gateIdle
		g.mu.Unlock()
		if g.refs <= 0 && idle {
			delete(d.endpoints, key)
		}
	}
}

// endpointWait is how long a job for a busy endpoint waits before it is
// tried again: about a second, spread so the waiting jobs do not return
// together.
func endpointWait() time.Duration {
	return time.Second + time.Duration(rand.Int64N(int64(time.Second)))
}

// Timeout is the bound on one Notify call: SendTimeout, or 30 s.
func (c DispatchConfig) Timeout() time.Duration {
	if c.SendTimeout > 0 {
		return c.SendTimeout
	}
	return 30 * time.Second
}

func (d *Dispatcher) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// event returns the event and the incident as the event left it, cached:
// a fan-out reads them once, not once per subscriber. Planned event
// records do not change, so the cache needs no expiry.
func (d *Dispatcher) event(ctx context.Context, id string) (*EventRecord, *IncidentState, error) {
	if e, ok := d.cache.get(id, d.now()); ok {
		return e.rec, e.inc, nil
	}
	rec, err := d.Events.Get(ctx, id)
	if err != nil {
		return nil, nil, fmt.Errorf("read event %s: %w", id, err)
	}
	inc := rec.Incident
	if iid := rec.Event.IncidentID(); inc == nil && iid != "" {
		// Records written before snapshots were kept: use the current state.
		inc, err = d.Incidents.Get(ctx, iid)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, nil, fmt.Errorf("read incident %s: %w", iid, err)
		}
	}
	e := cachedEvent{rec: rec, inc: inc}
	if rec.PlannedAt == nil {
		// Still being planned: it may yet be marked Resumed.
		e.until = d.now().Add(UnplannedCacheFor)
	}
	d.cache.put(id, e)
	return rec, inc, nil
}

type cachedEvent struct {
	rec *EventRecord
	inc *IncidentState
	// until is when a record not yet planned must be read again; zero for
	// a planned one, which does not change.
	until time.Time
}

// eventCache holds the few events being fanned out at once. It is small
// and cleared when full, which costs one read per event at worst.
type eventCache struct {
	mu sync.Mutex
	m  map[string]cachedEvent
}

const eventCacheSize = 256

func (c *eventCache) get(id string, now time.Time) (cachedEvent, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if ok && !e.until.IsZero() && now.After(e.until) {
		return cachedEvent{}, false
	}
	return e, ok
}

func (c *eventCache) put(id string, e cachedEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= eventCacheSize {
		c.m = make(map[string]cachedEvent, eventCacheSize)
	}
	c.m[id] = e
}

// skipRemoved is the note of a delivery whose subscriber was removed.
const skipRemoved = "subscriber removed"

// RemovedPseudonym stands for a removed subscriber in a delivery record
// written after the removal: a hash, not the id.
func RemovedPseudonym(id string) string {
	sum := sha256.Sum256([]byte("removed subscriber " + id))
	return "removed-" + hex.EncodeToString(sum[:6])
}
