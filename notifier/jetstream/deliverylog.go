package jetstream

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/varsel/varsel/notifier"
)

// The delivery log lives in two places, so that it does not grow the hot
// path with every delivery ever made:
//
//   - the bucket varsel_deliveries holds the deliveries that are not done:
//     those waiting for a retry, with their attempts and last error. A
//     delivery that has one and then settles keeps it for settledHotTTL
//     more, then the key expires (a NATS per-message TTL), so the bucket
//     and the server's index of its keys stay as small as the retries;
//   - the stream VARSEL_DELIVERY_LOG holds every settled record (sent,
//     failed, skipped, and later receipts), in batches: one message per
//     event and batch on varsel.log.<event>, kept for the retention
//     (VARSEL_DELIVERY_RETENTION). Its subjects are per event, so the
//     server's memory does not grow with the number of deliveries.
//
// A worker records a delivery's outcome with Settle, which batches records
// per event for a few milliseconds, stores the batch, counts it in the
// event's summary and only then lets the job be acknowledged: recorded
// before acknowledged, at one store write per batch instead of per
// delivery. A job that may have been done before (redelivered, replanned,
// retried) is looked up: in the bucket (O(1)), then in an index of the
// event's batches built on demand.
const (
	LogStream = "VARSEL_DELIVERY_LOG"
	LogPrefix = "varsel.log."
	// DefaultDeliveryRetention is how long settled records are kept.
	DefaultDeliveryRetention = 30 * 24 * time.Hour
	// settledHotTTL is how long a delivery's bucket entry outlives its
	// settling: receipts and stragglers within it find it in O(1).
	settledHotTTL = time.Minute
	// logBatchMax and logBatchWait bound a batch: a record waits at most
	// logBatchWait for others to join it.
	logBatchMax  = 256
	logBatchWait = 10 * time.Millisecond
	// unstoredMax bounds the records settled and not yet stored, in this
	// process: a batch being stored and the next filling. A record past
	// it waits (and so does the send after it), so a crash can lose the
	// records of at most this many sends made, however many jobs are in
	// work; the store keeping up, nothing waits.
	unstoredMax = 2 * logBatchMax
	// indexedEvents bounds the events whose index is kept in memory.
	indexedEvents = 4
)

// Deliveries is the delivery log. It implements notifier.DeliveryLog.
type Deliveries struct {
	kv     jetstream.KeyValue
	js     jetstream.JetStream
	counts *Counts
	logger *slog.Logger

	mu      sync.Mutex
	pending map[string]*logBatch // by event, not yet stored
	// unstored holds the records of pending batches by id, so a lookup in
	// this process sees a record the moment it is settled.
	unstored map[string]*notifier.DeliveryRecord
	wake     chan struct{}
	flusher  sync.Once
	idle     *sync.Cond // signalled when a batch is stored, when the batches to count are done, and when a flush round ends
	// counting holds the stored batches still to be counted (and their
	// bucket entries written), in order, by one goroutine of their own,
	// so a slow count never holds up storing the next batch; counters
	// says whether that goroutine runs (until the queue is empty).
	counting []storedBatch
	counters bool

	idxMu sync.Mutex
	idx   map[string]*eventIndex
	order []string // events in idx, least recently used first

	// publishOutcomes: a settled record is also published on
	// varsel.deliveries.<status>, as encoded for the log (the runner sets
	// it; see Runner.Run), when interest says someone listens (nil: always).
	publishOutcomes atomic.Bool
	interest        func(subject string) bool

	// failing is when writes of the log began to fail, nil while they
	// succeed (for readiness: a process that cannot record what it sends
	// is not ready for more).
	failing atomic.Pointer[logFailure]
}

type logFailure struct {
	since, last time.Time
	err         string
}

// Failing says since when writing the log has failed, and the last error,
// or ok false while it is written. A failure that has not come again for
// storeFor is over (nothing was written since, nor tried): a quiet process
// after a batch gave up is not failing now.
func (s *Deliveries) Failing() (since time.Time, lastErr string, ok bool) {
	f := s.failing.Load()
	if f == nil || time.Since(f.last) > storeFor {
		return time.Time{}, "", false
	}
	return f.since, f.err, true
}

func newDeliveries(kv jetstream.KeyValue, js jetstream.JetStream, counts *Counts, logger *slog.Logger) *Deliveries {
	d := &Deliveries{kv: kv, js: js, counts: counts, logger: logger, pending: map[string]*logBatch{},
		unstored: map[string]*notifier.DeliveryRecord{}, wake: make(chan struct{}, 1), idx: map[string]*eventIndex{}}
	d.idle = sync.NewCond(&d.mu)
	return d
}

var _ notifier.DeliveryLog = (*Deliveries)(nil)

// storedBatch is a batch stored under id, still to be counted.
type storedBatch struct {
	b  *logBatch
	id string
}

// logBatch is settled records of one event waiting to be stored together.
type logBatch struct {
	event  string
	lines  *bytes.Buffer // from linePool, given back once stored
	recs   []*notifier.DeliveryRecord
	counts map[countKey]int64
	// hot are the records that had a bucket entry to replace.
	hot   []*notifier.DeliveryRecord
	dones []func(error)
}

type countKey struct {
	ch   notifier.ChannelName
	what notifier.Counted
}

func logSubject(eventID string) string { return LogPrefix + eventID }

// eventOf returns the event of a delivery id "<event>.<subscriber>.<channel>".
func eventOf(id string) string {
	event, _, _ := strings.Cut(id, ".")
	return event
}

// Settle implements notifier.DeliveryLog: r is a delivery's final outcome
// (sent, failed or skipped). done is called once it is stored and counted.
func (s *Deliveries) Settle(r *notifier.DeliveryRecord, done func(error)) {
	s.append(nil, r, true, done)
}

// append adds r to its event's pending batch, waiting while the process
// holds unstoredMax records not stored yet, or until ctx (when not nil)
// ends; then done is called with ctx's error and r is not added.
func (s *Deliveries) append(ctx context.Context, r *notifier.DeliveryRecord, count bool, done func(error)) {
	r.LastError, r.ProviderError = notifier.ScrubContacts(r.LastError), notifier.ScrubContacts(r.ProviderError)
	b, err := encodeHot(r)
	if err != nil {
		done(fmt.Errorf("encode delivery %q: %w", r.ID, err))
		return
	}
	// An outcome is published when settled, not for the later versions a
	// provider's receipts make (count is false for those).
	if count && s.publishOutcomes.Load() {
		if subj := OutcomePrefix + string(r.Status); s.interest == nil || s.interest(subj) {
			_ = s.js.Conn().Publish(subj, b)
		}
	}
	s.flusher.Do(func() { go s.flushLoop() })
	s.mu.Lock()
	if err := s.waitRoom(ctx); err != nil {
		s.mu.Unlock()
		done(err)
		return
	}
	batch := s.pending[r.EventID]
	if batch == nil {
		batch = &logBatch{event: r.EventID, lines: linePool.Get().(*bytes.Buffer), counts: map[countKey]int64{}}
		s.pending[r.EventID] = batch
		// The first record of a batch waits at most logBatchWait.
		time.AfterFunc(logBatchWait, s.signal)
	}
	batch.lines.Write(b)
	batch.lines.WriteByte('\n')
	batch.recs = append(batch.recs, r)
	if count {
		batch.counts[countKey{r.Channel, outcomeCounted(r.Status)}]++
	}
	if r.Revision != 0 {
		batch.hot = append(batch.hot, r)
	}
	batch.dones = append(batch.dones, done)
	s.unstored[r.ID] = r
	full := len(batch.recs) >= logBatchMax
	s.mu.Unlock()
	if full {
		s.signal()
	}
}

// waitRoom waits until fewer than unstoredMax records are unstored, or ctx
// (when not nil) ends. s.mu is held.
func (s *Deliveries) waitRoom(ctx context.Context) error {
	if len(s.unstored) < unstoredMax {
		return nil
	}
	if ctx != nil {
		stop := context.AfterFunc(ctx, func() {
			s.mu.Lock()
			s.idle.Broadcast()
			s.mu.Unlock()
		})
		defer stop()
	}
	for len(s.unstored) >= unstoredMax {
		if ctx != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		s.signal()
		s.idle.Wait()
	}
	return nil
}

// signal wakes the flusher.
func (s *Deliveries) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// outcomeCounted is the summary counter a settled status adds to.
func outcomeCounted(st notifier.DeliveryStatus) notifier.Counted {
	switch st {
	case notifier.StatusFailed:
		return notifier.CountFailed
	case notifier.StatusSkipped:
		return notifier.CountSkipped
	}
	return notifier.CountSent
}

// flushLoop stores the pending batches when woken: logBatchWait after a
// batch began, or at once when one is full.
func (s *Deliveries) flushLoop() {
	for range s.wake {
		s.flushPending()
	}
}

func (s *Deliveries) flushPending() {
	s.mu.Lock()
	// Take the pending batches only when there are some: the empty map
	// stays the one append writes to, and must not be read unlocked.
	var batches map[string]*logBatch
	if len(s.pending) > 0 {
		batches, s.pending = s.pending, map[string]*logBatch{}
	}
	s.mu.Unlock()
	for _, b := range batches {
		id, err := s.store(b)
		putLines(b)
		s.mu.Lock()
		for _, r := range b.recs {
			if s.unstored[r.ID] == r {
				delete(s.unstored, r.ID)
			}
		}
		s.idle.Broadcast() // room for records waiting in append
		s.mu.Unlock()
		for _, done := range b.dones {
			done(err)
		}
		if err == nil {
			// After the jobs are let go, and apart: a count is a
			// summary, and a slow one (a leader change) must hold up
			// neither the deliveries nor the next batch.
			s.count(b, id)
		}
	}
	s.mu.Lock()
	s.idle.Broadcast()
	s.mu.Unlock()
}

// count queues a stored batch for after, run in order on a goroutine of
// its own.
func (s *Deliveries) count(b *logBatch, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counting = append(s.counting, storedBatch{b, id})
	if s.counters {
		return
	}
	s.counters = true
	go func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for len(s.counting) > 0 {
			next := s.counting[0]
			s.counting = s.counting[1:]
			s.mu.Unlock()
			s.after(next.b, next.id)
			s.mu.Lock()
		}
		s.counters = false
		s.idle.Broadcast()
	}()
}

// Flush waits until every record settled so far is stored (or failed to
// be) and counted, for a clean shutdown and before the log is rewritten.
func (s *Deliveries) Flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.pending) > 0 || len(s.unstored) > 0 || s.counters {
		s.signal()
		s.idle.Wait()
	}
}

// linePool keeps the buffers batches are encoded in: a fan-out fills one
// of up to logBatchMax lines every few milliseconds, and growing a new one
// each time was a tenth of the bytes the pipeline allocated.
var linePool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// putLines gives b's buffer back to linePool once it is stored (the
// publish has copied it), unless an odd batch grew it past its kind.
func putLines(b *logBatch) {
	if b.lines.Cap() <= 1<<20 {
		b.lines.Reset()
		linePool.Put(b.lines)
	}
	b.lines = nil
}

// store writes one batch. A failed write is tried again for a while
// (storeFor): the sends are made, and only a stored record keeps them from
// being made again. It returns the batch's id.
//
// The first tries wait only a second for the acknowledgement: on a
// cluster, a publish to a stream whose leader has just died gets no answer
// at all until a new leader is elected (NATS's election timeout is 4–9 s),
// and waiting 5 s for each answer put up to 5 s more on top of the
// election. The batch's id makes a repeat of a write that was stored after
// all count once.
func (s *Deliveries) store(b *logBatch) (string, error) {
	id := newBatchID()
	msg := nats.NewMsg(logSubject(b.event))
	msg.Data = b.lines.Bytes()
	msg.Header.Set(jetstream.MsgIDHeader, id)
	var err error
	until := time.Now().Add(storeFor)
	for wait, patience := 100*time.Millisecond, time.Second; ; wait, patience = min(2*wait, time.Second), min(2*patience, 5*time.Second) {
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		var ack *jetstream.PubAck
		ack, err = s.js.PublishMsg(ctx, msg)
		cancel()
		if err == nil {
			s.failing.Store(nil)
			s.indexed(b.event, ack.Sequence, b.recs)
			return id, nil
		}
		now := time.Now()
		since := now
		if f := s.failing.Load(); f != nil && now.Sub(f.last) <= storeFor {
			since = f.since
		}
		s.failing.Store(&logFailure{since: since, last: now, err: err.Error()})
		if time.Now().Add(wait).After(until) || errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrMaxPayload) {
			break // out of time, or no try can succeed
		}
		s.logger.Warn("delivery log not stored yet, trying again", "event", b.event, "records", len(b.recs), "error", err)
		time.Sleep(wait)
	}
	return id, fmt.Errorf("store %d delivery records of %s: %w", len(b.recs), b.event, err)
}

// storeFor is how long store tries to write a batch: longer than a NATS
// cluster takes to elect a stream's new leader, with room.
const storeFor = 45 * time.Second

// after counts a stored batch in the event's summary (under the batch's
// id, so a repeat counts once) and updates the short-lived bucket entries
// of the records that had one.
func (s *Deliveries) after(b *logBatch, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if s.counts != nil {
		for k, n := range b.counts {
			if err := s.counts.Count(ctx, b.event, k.ch, k.what, n, id+"."+string(k.ch)+"."+string(k.what)); err != nil {
				s.logger.Warn("delivery counts not updated", "event", b.event, "channel", k.ch, "counter", k.what, "error", err)
			}
		}
	}
	for _, r := range b.hot {
		if err := s.putHot(ctx, r, settledHotTTL); err != nil {
			s.logger.Warn("settled delivery's bucket entry not updated", "delivery", r.ID, "error", err)
		}
	}
}

func newBatchID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "log-" + hex.EncodeToString(b)
}

// putHot writes r to the bucket unconditionally, to expire after ttl.
func (s *Deliveries) putHot(ctx context.Context, r *notifier.DeliveryRecord, ttl time.Duration) error {
	r.LastError, r.ProviderError = notifier.ScrubContacts(r.LastError), notifier.ScrubContacts(r.ProviderError)
	b, err := encodeHot(r)
	if err != nil {
		return err
	}
	msg := nats.NewMsg("$KV." + DeliveriesKV + "." + r.ID)
	msg.Data = b
	msg.Header.Set("Nats-TTL", ttl.String())
	_, err = s.js.PublishMsg(ctx, msg)
	return err
}

// casHot writes r to the bucket if its entry is still at revision rev, to
// expire after ttl.
func (s *Deliveries) casHot(ctx context.Context, r *notifier.DeliveryRecord, rev uint64, ttl time.Duration) error {
	r.LastError, r.ProviderError = notifier.ScrubContacts(r.LastError), notifier.ScrubContacts(r.ProviderError)
	b, err := encodeHot(r)
	if err != nil {
		return err
	}
	msg := nats.NewMsg("$KV." + DeliveriesKV + "." + r.ID)
	msg.Data = b
	msg.Header.Set("Nats-TTL", ttl.String())
	msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(rev, 10))
	_, err = s.js.PublishMsg(ctx, msg)
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return fmt.Errorf("save delivery %q: %w", r.ID, notifier.ErrConflict)
	}
	return err
}

// Get implements notifier.DeliveryLog: the bucket, then records settled
// in this process but not stored yet, then the event's stored batches.
func (s *Deliveries) Get(ctx context.Context, id string) (*notifier.DeliveryRecord, error) {
	r := new(notifier.DeliveryRecord)
	rev, err := getJSON(ctx, s.kv, id, r)
	if err == nil {
		r.Revision = rev
		return r, nil
	}
	if !errors.Is(err, notifier.ErrNotFound) {
		return nil, err
	}
	s.mu.Lock()
	u := s.unstored[id]
	s.mu.Unlock()
	if u != nil {
		c := *u
		c.Revision = 0
		return &c, nil
	}
	return s.archived(ctx, id)
}

// Save implements notifier.DeliveryLog on the bucket: the record of a
// delivery that is not done.
func (s *Deliveries) Save(ctx context.Context, r *notifier.DeliveryRecord) error {
	r.LastError, r.ProviderError = notifier.ScrubContacts(r.LastError), notifier.ScrubContacts(r.ProviderError)
	b, err := encodeHot(r)
	if err != nil {
		return fmt.Errorf("encode delivery %q: %w", r.ID, err)
	}
	var rev uint64
	if r.Revision == 0 {
		rev, err = s.kv.Create(ctx, r.ID, b)
	} else {
		rev, err = s.kv.Update(ctx, r.ID, b, r.Revision)
	}
	if casLost(err) {
		return fmt.Errorf("save delivery %q: %w", r.ID, notifier.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("save delivery %q: %w", r.ID, err)
	}
	r.Revision = rev
	return nil
}

// Update implements notifier.DeliveryLog. A record in the bucket is
// changed there (compare and set); a stored one gets a new version in the
// log, or in the bucket when the change makes it not done (a retry by
// hand). A missing one is created where its new state belongs.
func (s *Deliveries) Update(ctx context.Context, id string, fn func(*notifier.DeliveryRecord) error) (*notifier.DeliveryRecord, error) {
	for range maxCASRetries {
		r, err := s.Get(ctx, id)
		switch {
		case errors.Is(err, notifier.ErrNotFound):
			r = &notifier.DeliveryRecord{}
		case err != nil:
			return nil, err
		}
		hot := r.Revision
		r.ID = id
		if err := fn(r); err != nil {
			return nil, err
		}
		if !r.Status.Done() {
			r.Revision = hot
			err := s.Save(ctx, r)
			if errors.Is(err, notifier.ErrConflict) {
				continue
			}
			return r, err
		}
		if hot != 0 {
			// Settled a moment ago: change the short-lived entry (so the
			// next reader sees this version), then store the version.
			err := s.casHot(ctx, r, hot, settledHotTTL)
			if errors.Is(err, notifier.ErrConflict) {
				continue
			}
			if err != nil {
				return nil, err
			}
			r.Revision = 0
		}
		if r.EventID == "" {
			r.EventID = eventOf(id)
		}
		errc := make(chan error, 1)
		s.append(ctx, r, false, func(err error) { errc <- err })
		select {
		case err := <-errc:
			return r, err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return nil, fmt.Errorf("update delivery %q: %w", id, notifier.ErrConflict)
}

// eventIndex maps an event's delivery ids to the log message holding each
// one's newest version.
type eventIndex struct {
	mu   sync.Mutex
	last uint64 // the last log sequence read
	at   map[string]indexEntry
}

type indexEntry struct {
	seq    uint64
	status notifier.DeliveryStatus
}

// put records that seq holds a version of r; a version that only says
// "sent" never hides a provider's receipt that came first.
func (x *eventIndex) put(seq uint64, r *notifier.DeliveryRecord) {
	if old, ok := x.at[r.ID]; ok && old.seq > seq {
		return
	} else if ok && (old.status == notifier.StatusDelivered || old.status == notifier.StatusUndelivered) && r.Status == notifier.StatusSent {
		return
	}
	x.at[r.ID] = indexEntry{seq: seq, status: r.Status}
}

// indexed adds a stored batch to the event's index, if there is one.
func (s *Deliveries) indexed(event string, seq uint64, recs []*notifier.DeliveryRecord) {
	s.idxMu.Lock()
	x := s.idx[event]
	s.idxMu.Unlock()
	if x == nil {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, r := range recs {
		x.put(seq, r)
	}
}

// index returns the event's index, brought up to date with the log.
func (s *Deliveries) index(ctx context.Context, event string) (*eventIndex, error) {
	s.idxMu.Lock()
	x := s.idx[event]
	if x == nil {
		x = &eventIndex{at: map[string]indexEntry{}}
		s.idx[event] = x
		s.order = append(s.order, event)
		if len(s.order) > indexedEvents {
			delete(s.idx, s.order[0])
			s.order = s.order[1:]
		}
	} else if i := indexOf(s.order, event); i >= 0 {
		s.order = append(append(s.order[:i:i], s.order[i+1:]...), event)
	}
	s.idxMu.Unlock()
	x.mu.Lock()
	defer x.mu.Unlock()
	err := s.eachLogMsg(ctx, event, x.last+1, func(seq uint64, data []byte) error {
		x.last = seq
		return eachLine(data, func(r *notifier.DeliveryRecord) error { x.put(seq, r); return nil })
	})
	return x, err
}

func indexOf(s []string, v string) int {
	for i, e := range s {
		if e == v {
			return i
		}
	}
	return -1
}

// eachLogMsg calls fn for every log message of event from sequence from.
func (s *Deliveries) eachLogMsg(ctx context.Context, event string, from uint64, fn func(seq uint64, data []byte) error) error {
	st, err := s.js.Stream(ctx, LogStream)
	if err != nil {
		return fmt.Errorf("read the delivery log: %w", err)
	}
	for seq := max(from, 1); ; {
		m, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(logSubject(event)))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read the delivery log of %s: %w", event, err)
		}
		if err := fn(m.Sequence, m.Data); err != nil {
			return err
		}
		seq = m.Sequence + 1
	}
}

// eachLine decodes the JSON lines of a log message.
func eachLine(data []byte, fn func(*notifier.DeliveryRecord) error) error {
	for len(data) > 0 {
		line, rest, _ := bytes.Cut(data, []byte{'\n'})
		data = rest
		if len(line) == 0 {
			continue
		}
		r := new(notifier.DeliveryRecord)
		if err := json.Unmarshal(line, r); err != nil {
			return fmt.Errorf("decode delivery record: %w", err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// archived finds a delivery's newest stored version.
func (s *Deliveries) archived(ctx context.Context, id string) (*notifier.DeliveryRecord, error) {
	event := eventOf(id)
	x, err := s.index(ctx, event)
	if err != nil {
		return nil, err
	}
	x.mu.Lock()
	e, ok := x.at[id]
	x.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("delivery %q: %w", id, notifier.ErrNotFound)
	}
	st, err := s.js.Stream(ctx, LogStream)
	if err != nil {
		return nil, fmt.Errorf("read the delivery log: %w", err)
	}
	m, err := st.GetMsg(ctx, e.seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		// Past the retention.
		return nil, fmt.Errorf("delivery %q (expired): %w", id, notifier.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read delivery %q: %w", id, err)
	}
	var found *notifier.DeliveryRecord
	err = eachLine(m.Data, func(r *notifier.DeliveryRecord) error {
		if r.ID == id {
			found = r
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if found == nil {
		return nil, fmt.Errorf("delivery %q: %w", id, notifier.ErrNotFound)
	}
	return found, nil
}

// DeliveryFilter narrows a listing of the delivery log.
type DeliveryFilter = notifier.DeliveryFilter

// List calls fn for the newest version of every record matching f: the
// stored ones of each event, and those in the bucket (not done, or
// settled a moment ago), each once.
func (s *Deliveries) List(ctx context.Context, f DeliveryFilter, fn func(*notifier.DeliveryRecord) error) error {
	events := []string{f.EventID}
	if f.EventID == "" {
		var err error
		if events, err = s.loggedEvents(ctx); err != nil {
			return err
		}
	}
	match := func(r *notifier.DeliveryRecord) bool { return f.Status == "" || r.Status == f.Status }
	// The bucket's records are newer than any stored version.
	hot := map[string]bool{}
	filter := ">"
	if f.EventID != "" {
		filter = f.EventID + ".>"
	}
	err := eachJSON(ctx, s.js, s.kv, filter, json.Unmarshal, func(r *notifier.DeliveryRecord) error {
		hot[r.ID] = true
		if !match(r) {
			return nil
		}
		return fn(r)
	})
	if err != nil {
		return err
	}
	for _, event := range events {
		if event == "" {
			continue
		}
		x, err := s.index(ctx, event)
		if err != nil {
			return err
		}
		x.mu.Lock()
		at := make(map[string]indexEntry, len(x.at))
		for id, e := range x.at {
			at[id] = e
		}
		last := x.last
		x.mu.Unlock()
		err = s.eachLogMsg(ctx, event, 1, func(seq uint64, data []byte) error {
			if seq > last {
				return errStopListing
			}
			return eachLine(data, func(r *notifier.DeliveryRecord) error {
				e, ok := at[r.ID]
				if !ok || e.seq != seq || hot[r.ID] || !match(r) || e.status != r.Status {
					return nil // another version, in the bucket, or filtered out
				}
				delete(at, r.ID)
				return fn(r)
			})
		})
		if err != nil && !errors.Is(err, errStopListing) {
			return err
		}
	}
	return nil
}

var errStopListing = errors.New("listed")

// loggedEvents lists the events with stored delivery records.
func (s *Deliveries) loggedEvents(ctx context.Context) ([]string, error) {
	st, err := s.js.Stream(ctx, LogStream)
	if err != nil {
		return nil, fmt.Errorf("read the delivery log: %w", err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(LogPrefix+">"))
	if err != nil {
		return nil, fmt.Errorf("read the delivery log: %w", err)
	}
	events := make([]string, 0, len(info.State.Subjects))
	for subj := range info.State.Subjects {
		events = append(events, strings.TrimPrefix(subj, LogPrefix))
	}
	return events, nil
}
