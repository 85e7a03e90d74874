package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/varsel/varsel/notifier"
)

// Runner drives the pipeline on JetStream: one intake consumer and one pull
// consumer per channel. Several processes running a Runner against the same
// NATS share the work through the same durable consumers.
type Runner struct {
	Conn       *Conn
	Intake     *notifier.Intake
	Dispatcher *notifier.Dispatcher
	// Concurrency is the number of workers per channel in this process;
	// 0 means 32 (SMS: 4). Jobs waiting for a retry take none of them.
	Concurrency map[notifier.ChannelName]int
	// AckWait is how long a job taken by a process that then died waits
	// before another process (or this one, restarted) gets it; 0 means
	// DefaultAckWait. A send that takes longer tells the broker it is still
	// at work every third of it, so no send is handed out twice.
	AckWait time.Duration
	// DrainTimeout bounds how long Run waits for in-flight sends after
	// its context is cancelled; 0 means the send timeout plus 5 s.
	DrainTimeout time.Duration
	Logger       *slog.Logger

	// beating holds the messages in work and when the broker last heard
	// of each.
	beatMu  sync.Mutex
	beating map[jetstream.Msg]time.Time
}

// Run consumes until ctx is cancelled, then stops taking work and waits for
// in-flight sends to finish (up to DrainTimeout) before returning.
func (r *Runner) Run(ctx context.Context) error {
	c := r.Conn
	// A settled outcome is published by the log, with the bytes it
	// encoded for itself; the others (waiting for a retry) here. On the
	// embedded server, only when someone listens: a fan-out would
	// otherwise hand it a message per delivery for nobody.
	var interest func(string) bool
	if c.Server != nil {
		interest = c.Server.GlobalAccount().SubscriptionInterest
	}
	c.Deliveries.interest = interest
	c.Deliveries.publishOutcomes.Store(true)
	r.Dispatcher.Published = func(rec *notifier.DeliveryRecord) {
		subj := OutcomePrefix + string(rec.Status)
		if rec.Status.Done() || (interest != nil && !interest(subj)) {
			return
		}
		if b, err := json.Marshal(rec); err == nil {
			_ = c.NC.Publish(subj, b)
		}
	}
	// Create every consumer before consuming, so a failure stops start-up
	// instead of leaving a process that looks ready and does nothing.
	intake, err := r.intakeConsumer(ctx)
	if err != nil {
		return err
	}
	consumers := map[notifier.ChannelName][]jetstream.Consumer{}
	for name := range r.Dispatcher.Channels {
		if consumers[name], err = r.dispatchConsumers(ctx, name); err != nil {
			return err
		}
	}
	beatsDone := make(chan struct{})
	defer close(beatsDone)
	go r.beatLoop(beatsDone)
	var wg sync.WaitGroup
	errs := make(chan error, 1+len(consumers))
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := r.runIntake(ctx, intake); err != nil {
			errs <- err
		}
	}()
	for name, cons := range consumers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.runDispatch(ctx, name, cons); err != nil {
				errs <- err
			}
		}()
	}
	wg.Add(1)
	go func() { defer wg.Done(); r.samplePending(ctx) }()
	wg.Wait()
	close(errs)
	return errors.Join(collect(errs)...)
}

func collect(ch <-chan error) []error {
	var out []error
	for err := range ch {
		out = append(out, err)
	}
	return out
}

func (r *Runner) intakeConsumer(ctx context.Context) (jetstream.Consumer, error) {
	cons, err := r.Conn.JS.CreateOrUpdateConsumer(ctx, EventsStream, jetstream.ConsumerConfig{
		Durable: intakeConsumer, Description: "Varsel intake: validate, record, plan",
		// Short, with heartbeats while a plan runs: a plan cut short by a
		// crash resumes within seconds.
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: r.ackWait(),
		// One event at a time across all instances keeps incident updates
		// in order; planning only enqueues, so this is not the bottleneck.
		MaxAckPending: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("create intake consumer: %w", err)
	}
	return cons, nil
}

func (r *Runner) runIntake(ctx context.Context, cons jetstream.Consumer) error {
	it, err := cons.Messages(pullOpts(8)...)
	if err != nil {
		return fmt.Errorf("consume events: %w", err)
	}
	consume(ctx, it, r.Logger.With("reading", "events"), func(msg jetstream.Msg) {
		r.handleEvent(context.WithoutCancel(ctx), msg)
	})
	return nil
}

// consume calls fn for every message of it until ctx ends (which stops
// it) or it is closed; a failed read is logged and the next one tried.
func consume(ctx context.Context, it jetstream.MessagesContext, logger *slog.Logger, fn func(jetstream.Msg)) {
	go func() { <-ctx.Done(); it.Stop() }()
	for {
		msg, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
				return
			}
			logger.Warn("read a message", "error", err)
			continue
		}
		fn(msg)
	}
}

func (r *Runner) handleEvent(ctx context.Context, msg jetstream.Msg) {
	meta, _ := msg.Metadata()
	var seq uint64
	if meta != nil {
		seq = meta.Sequence.Stream
	}
	q := &enqueuer{c: r.Conn}
	in := *r.Intake
	in.Reject = func(ctx context.Context, rej notifier.Rejection) error {
		return r.Conn.reject(ctx, rej, "rejected-"+strconv.FormatUint(seq, 10))
	}
	in.Enqueue = q.add
	in.Flush = q.flush
	if h := msg.Headers(); h != nil {
		in.PublishedBy = h.Get(PublishedByHeader)
	}
	stop := r.heartbeat(msg)
	err := in.Handle(ctx, msg.Subject(), msg.Data(), nil)
	stop()
	if err != nil && !errors.Is(err, notifier.ErrRejected) && meta != nil && meta.NumDelivered >= maxEventAttempts {
		// An event that keeps failing must not hold up every event behind
		// it (intake takes one at a time): keep it with its reason instead.
		rej := notifier.Rejection{Subject: msg.Subject(), Data: msg.Data(), ReceivedAt: time.Now().UTC(), Field: "event",
			Reason: fmt.Sprintf("not processed after %d attempts: %v", meta.NumDelivered, err)}
		if rerr := in.Reject(ctx, rej); rerr == nil {
			r.Logger.Error("event set aside after repeated failures", "subject", msg.Subject(), "attempts", meta.NumDelivered, "error", err)
			err = notifier.ErrRejected
		}
	}
	switch {
	case err == nil:
		_ = msg.Ack()
	case errors.Is(err, notifier.ErrRejected):
		_ = msg.Term()
	default:
		r.Logger.Error("event not processed, will retry", "subject", msg.Subject(), "error", err)
		_ = msg.NakWithDelay(5 * time.Second)
	}
}

// pullOpts keeps a consumer's pull requests short-lived and watched:
// when the node leading the consumer goes away, the next request goes to
// the new leader within seconds instead of when a 30 s request expires.
func pullOpts(batch int) []jetstream.PullMessagesOpt {
	return []jetstream.PullMessagesOpt{jetstream.PullMaxMessages(batch), jetstream.PullExpiry(5 * time.Second), jetstream.PullHeartbeat(time.Second)}
}

// maxEventAttempts bounds how often intake retries an event that fails for
// a reason other than being invalid (a store unreachable, say): about a
// minute of retries, then it is set aside on VARSEL_REJECTED.
const maxEventAttempts = 12

func (r *Runner) concurrency(ch notifier.ChannelName) int {
	if n := r.Concurrency[ch]; n > 0 {
		return n
	}
	if ch == notifier.SMS {
		return 4
	}
	return 32
}

// DefaultAckWait is how long the broker waits for a process that took a
// job (or an event to plan) before handing it to another: long enough for
// a heartbeat to arrive on a busy machine, short enough that customers
// hear within seconds when a process dies.
const DefaultAckWait = 6 * time.Second

func (r *Runner) ackWait() time.Duration {
	if r.AckWait > 0 {
		return r.AckWait
	}
	return DefaultAckWait
}

// heartbeat tells the broker, every third of the ack wait, that msg is
// still being worked on, until the returned stop is called. One loop per
// runner beats for every message in work, so a job that takes a
// millisecond costs no goroutine or timer of its own.
func (r *Runner) heartbeat(msg jetstream.Msg) (stop func()) {
	r.beatMu.Lock()
	if r.beating == nil {
		r.beating = map[jetstream.Msg]time.Time{}
	}
	r.beating[msg] = time.Now()
	r.beatMu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			r.beatMu.Lock()
			delete(r.beating, msg)
			r.beatMu.Unlock()
		})
	}
}

// beatLoop runs until done is closed (when Run returns, after the drain).
func (r *Runner) beatLoop(done <-chan struct{}) {
	every := r.ackWait() / 3
	t := time.NewTicker(every / 2)
	defer t.Stop()
	var due []jetstream.Msg
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		now := time.Now()
		r.beatMu.Lock()
		for msg, last := range r.beating {
			if now.Sub(last) >= every {
				due = append(due, msg)
				r.beating[msg] = now
			}
		}
		r.beatMu.Unlock()
		for _, msg := range due {
			_ = msg.InProgress()
		}
		due = due[:0]
	}
}

// maxAckPendingPerWorker sizes a consumer's in-flight limit, which every
// process shares: room for several processes' workers and prefetched jobs,
// so the jobs a dead process held (until the ack wait passes) never stop
// the living.
const maxAckPendingPerWorker = 16

// dispatchConsumers are a channel's two consumers: jobs of one delivery
// and jobs of several (see manyJobSubject).
func (r *Runner) dispatchConsumers(ctx context.Context, ch notifier.ChannelName) ([]jetstream.Consumer, error) {
	names := dispatchConsumerNames(ch)
	var out []jetstream.Consumer
	for i, subject := range []string{jobSubject(string(ch)), manyJobSubject(string(ch))} {
		pending := r.concurrency(ch) * maxAckPendingPerWorker
		if i > 0 {
			// A job of several is held by its slowest send: room for
			// every worker of four processes to hold a different one
			// (sends hanging at endpoints that stopped answering), and
			// as many again to hand out.
			pending = max(pending/2, 4)
		}
		cons, err := r.Conn.JS.CreateOrUpdateConsumer(ctx, DeliveriesStream, jetstream.ConsumerConfig{
			Durable: names[i], Description: "Varsel " + string(ch) + " deliveries",
			FilterSubject: subject, AckPolicy: jetstream.AckExplicitPolicy,
			AckWait: r.ackWait(), MaxAckPending: pending, MaxDeliver: -1,
		})
		if err != nil {
			return nil, fmt.Errorf("create %s consumer: %w", ch, err)
		}
		out = append(out, cons)
	}
	return out, nil
}

func (r *Runner) runDispatch(ctx context.Context, ch notifier.ChannelName, conss []jetstream.Consumer) error {
	n := r.concurrency(ch)
	var its []jetstream.MessagesContext
	for i, cons := range conss {
		batch := n
		if i > 0 {
			batch = max(n/notifier.MaxJobDeliveries, 2)
		}
		it, err := cons.Messages(pullOpts(batch)...)
		if err != nil {
			return fmt.Errorf("consume %s jobs: %w", ch, err)
		}
		its = append(its, it)
	}

	work := make(chan jetstream.Msg)
	// senders are the channel's n sends in flight, however many
	// deliveries the jobs being worked on hold: long-lived goroutines, so
	// the stack a send grows to is kept, not grown again for every one.
	senders := make(chan func())
	var sending sync.WaitGroup
	for range n {
		sending.Add(1)
		go func() {
			defer sending.Done()
			for send := range senders {
				send()
			}
		}()
	}
	var wg sync.WaitGroup
	// acks are the jobs waiting for their records to be stored.
	var acks sync.WaitGroup
	// inFlight holds the stream sequences being worked on here, so a job
	// redelivered while a worker of this process still has it (a send
	// longer than the ack wait whose heartbeat came late) is not sent twice.
	var inFlight sync.Map
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for msg := range work {
				meta, err := msg.Metadata()
				if err != nil {
					r.handleJob(ctx, msg, true, senders, &acks)
					continue
				}
				if _, busy := inFlight.LoadOrStore(meta.Sequence.Stream, true); busy {
					continue // the worker that has it acknowledges it
				}
				r.handleJob(ctx, msg, meta.NumDelivered > 1, senders, &acks)
				inFlight.Delete(meta.Sequence.Stream)
			}
		}()
	}
	var readers sync.WaitGroup
	for _, it := range its {
		readers.Add(1)
		go func() {
			defer readers.Done()
			consume(ctx, it, r.Logger.With("reading", "jobs", "channel", ch), func(msg jetstream.Msg) { work <- msg })
		}()
	}
	readers.Wait()
	close(work)
	done := make(chan struct{})
	go func() {
		wg.Wait() // every job's sends have ended
		close(senders)
		sending.Wait()
		acks.Wait()
		close(done)
	}()
	drain := r.DrainTimeout
	if drain <= 0 {
		// Long enough for a send that started just before shutdown.
		drain = r.Dispatcher.Config.Timeout() + 5*time.Second
	}
	select {
	case <-done:
	case <-time.After(drain):
		r.Logger.Warn("shutdown: sends still in flight after the drain timeout", "channel", ch)
	}
	return nil
}

// handleJob runs one job: each of its deliveries, at once as far as the
// channel's free senders allow. Sends are not cancelled by shutdown: they
// finish within the dispatcher's send timeout, so what went out is
// recorded; but none of the job's sends starts after it (the job is
// handed out again). The job is acknowledged once every delivery in it is
// settled and its record stored, or has its own retry (or deferral)
// scheduled as a job of one (acks tracks the jobs still waiting); it is
// handed out again, after a while, when any of that failed, and then
// every delivery in it is looked up before sending. redelivered marks a job the broker
// handed out before. handleJob returns when every send has ended.
func (r *Runner) handleJob(ctx context.Context, msg jetstream.Msg, redelivered bool, senders chan<- func(), acks *sync.WaitGroup) {
	var job notifier.Job
	if err := decodeHot(msg.Data(), &job); err != nil || !job.Valid() {
		reason := "no job id"
		if err != nil {
			reason = err.Error()
		}
		r.Logger.Error("malformed job dropped", "subject", msg.Subject(), "error", reason)
		_ = msg.Term()
		return
	}
	job.Seen = job.Seen || redelivered
	several := len(job.Subscribers) > 0
	stop := r.heartbeat(msg)
	shutdown := ctx.Done()
	ctx = context.WithoutCancel(ctx)
	dels := r.Dispatcher.Prefetch(ctx, job.Deliveries())
	// What each delivery needs before the job can go: its record stored,
	// or the job handed out again after a delay.
	type outcome struct {
		recorded <-chan error
		again    time.Duration // > 0: hand the job out again after this
	}
	outs := make([]outcome, len(dels))
	var sends sync.WaitGroup
	for i, dj := range dels {
		sends.Add(1)
		send := func() {
			defer sends.Done()
			if r.Conn.NC.IsClosed() {
				// Closed under the job (the process going down): nothing
				// sent now could be recorded, so it would only be sent
				// again when the job is handed out again.
				outs[i].again = time.Second
				return
			}
			v, err := r.Dispatcher.Handle(ctx, dj)
			switch {
			case err != nil:
				r.Logger.Warn("job not processed, will retry", "delivery", dj.ID, "error", err)
				outs[i].again = 5 * time.Second
			case v.Recorded != nil:
				outs[i].recorded = v.Recorded
			case v.Retry:
				dj.Attempt = v.Attempt
				// A delivery of several that waits goes on its own; it
				// is looked up when it comes back, in case the job it
				// came from was handed out again and made it meanwhile.
				dj.Seen = dj.Seen || several
				if err := r.Conn.scheduleJob(ctx, dj, time.Now().Add(v.RetryIn)); err != nil {
					// The schedule could not be stored: keep the job
					// (and its slot) the old way rather than lose it.
					r.Logger.Warn("retry not scheduled, holding the job instead", "delivery", dj.ID, "error", err)
					outs[i].again = max(v.RetryIn, time.Second)
				}
			}
		}
		started := false
		select {
		case <-shutdown:
		default:
			select {
			case senders <- send:
				started = true
			case <-shutdown:
			}
		}
		if !started {
			// Shutting down: start no more of the job's sends. It is
			// handed out again (to another instance, or this one after a
			// restart), and then the ones made are found in the log.
			sends.Done()
			outs[i].again = time.Second
		}
	}
	sends.Wait()
	acks.Add(1)
	go func() {
		defer acks.Done()
		// Heartbeats go on until the records are stored: the job is the
		// only thing that says the deliveries happened until then.
		defer stop()
		var again time.Duration
		for i, o := range outs {
			if o.recorded != nil {
				if err := <-o.recorded; err != nil {
					r.Logger.Error("delivery made but not recorded; the job will be handed out again", "delivery", dels[i].ID, "error", err)
					o.again = 5 * time.Second
				}
			}
			if o.again > 0 && (again == 0 || o.again < again) {
				again = o.again
			}
		}
		if again > 0 {
			_ = msg.NakWithDelay(again)
			return
		}
		_ = msg.Ack()
	}()
}

// samplePending keeps the pending-jobs gauge current.
func (r *Runner) samplePending(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		for ch := range r.Dispatcher.Channels {
			var pending uint64
			for _, name := range dispatchConsumerNames(ch) {
				cons, err := r.Conn.JS.Consumer(ctx, DeliveriesStream, name)
				if err != nil {
					continue
				}
				if info, err := cons.Info(ctx); err == nil {
					pending += info.NumPending + uint64(info.NumAckPending)
				}
			}
			r.Dispatcher.Metrics.Pending.WithLabelValues(string(ch)).Set(float64(pending))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Pipeline is what a Runner needs beyond the connection.
type Pipeline struct {
	Channels    map[notifier.ChannelName]notifier.Channel
	Renderer    notifier.Renderer
	Policy      notifier.Policy // nil means notifier.DefaultPolicy
	Dispatch    notifier.DispatchConfig
	Concurrency map[notifier.ChannelName]int
	OnSuppress  func(ctx context.Context, s *notifier.Subscriber, ch notifier.ChannelName, why notifier.Suppression)
	Metrics     *notifier.Metrics
	Logger      *slog.Logger
	// Reminders schedules the staff's reminders of promises; nil: none.
	Reminders *Reminders
	// Site is the component catalogue; intake reports the components of
	// an event that it does not name. nil: none reported.
	Site *notifier.Site
}

// remindersOrNil keeps a nil *Reminders a nil interface.
func remindersOrNil(r *Reminders) notifier.Reminders {
	if r == nil {
		return nil
	}
	return r
}

// NewRunner wires intake, planner and dispatcher to the stores of c.
func (c *Conn) NewRunner(p Pipeline) *Runner {
	policy := p.Policy
	if policy == nil {
		policy = notifier.DefaultPolicy{}
	}
	planner := &notifier.Planner{Subscribers: c.Subscribers, Policy: policy, Metrics: p.Metrics, Logger: p.Logger}
	return &Runner{
		Conn: c,
		Intake: &notifier.Intake{Events: c.Events, Incidents: c.Incidents, Planner: planner, Counter: c.Counts,
			Metrics: p.Metrics, Logger: p.Logger.With("stage", "intake"), Reminders: remindersOrNil(p.Reminders), Site: p.Site},
		Dispatcher: &notifier.Dispatcher{Channels: p.Channels, Renderer: p.Renderer, Subscribers: c.Subscribers,
			Log: c.Deliveries, Events: c.Events, Incidents: c.Incidents, Config: p.Dispatch, Metrics: p.Metrics, Counter: c.Counts,
			OnSuppress: p.OnSuppress, Logger: p.Logger.With("stage", "dispatch")},
		Concurrency: p.Concurrency,
		Logger:      p.Logger,
	}
}
