package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// An erasable bucket is a KeyValue bucket whose old revisions are erased
// from the store's files, not only marked deleted. NATS removes a
// revision replaced under a history limit, or purged, without overwriting
// its bytes; they stay in the block file until the block is compacted.
// So the stream behind an erasable bucket keeps two revisions per key and
// allows deletes, and every write securely deletes the revision it
// replaced (the server overwrites it in place). The subscribers bucket is
// one: removing a person, or changing their address, leaves no copy.
type erasingKV struct {
	jetstream.KeyValue
	st jetstream.Stream
}

// erasableStream is the stream config of an erasable bucket: what nats.go
// makes for a bucket, with deletes allowed and room for the revision
// being replaced.
func erasableStream(bucket string, replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name: "KV_" + bucket, Subjects: []string{"$KV." + bucket + ".>"},
		MaxMsgsPerSubject: 2, MaxBytes: -1, MaxMsgSize: -1, MaxMsgs: -1, MaxConsumers: -1,
		Storage: jetstream.FileStorage, Replicas: replicas, AllowRollup: true, DenyDelete: false,
		Duplicates: 2 * time.Minute, AllowDirect: true, Discard: jetstream.DiscardNew,
	}
}

// Put writes value and erases the revision it replaced.
func (e erasingKV) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	var old uint64
	if cur, err := e.KeyValue.Get(ctx, key); err == nil {
		old = cur.Revision()
	}
	rev, err := e.KeyValue.Put(ctx, key, value)
	if err == nil && old != 0 {
		e.erase(ctx, old)
	}
	return rev, err
}

// Update writes value if key is at revision last, and erases that one.
func (e erasingKV) Update(ctx context.Context, key string, value []byte, last uint64) (uint64, error) {
	rev, err := e.KeyValue.Update(ctx, key, value, last)
	if err == nil && last != 0 {
		e.erase(ctx, last)
	}
	return rev, err
}

// Delete erases every revision of key and purges it.
func (e erasingKV) Delete(ctx context.Context, key string, _ ...jetstream.KVDeleteOpt) error {
	return e.Purge(ctx, key)
}

// Purge erases every revision of key, then purges it.
func (e erasingKV) Purge(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	hist, err := e.KeyValue.History(ctx, key)
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return err
	}
	for _, h := range hist {
		if h.Operation() == jetstream.KeyValuePut {
			if err := e.st.SecureDeleteMsg(ctx, h.Revision()); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
				return fmt.Errorf("erase %s revision %d: %w", key, h.Revision(), err)
			}
		}
	}
	return e.KeyValue.Purge(ctx, key, opts...)
}

// erase overwrites one replaced revision. A failure leaves it to the next
// write or the removal, which erase every revision still there.
func (e erasingKV) erase(ctx context.Context, rev uint64) {
	_ = e.st.SecureDeleteMsg(ctx, rev)
}

// erasableBucket opens bucket as an erasable one, creating its stream, or
// moving an existing ordinary bucket's entries into a new erasable stream
// (an ordinary bucket's stream cannot be changed to allow deletes). The
// move goes through a backup stream, so a crash in the middle loses
// nothing: the next start finishes it. Instances started together on a
// store to move leave it to one of them (bucketMove).
func (c *Conn) erasableBucket(ctx context.Context, bucket string, replicas int) (jetstream.KeyValue, error) {
	m := newBucketMove(c, bucket, replicas)
	var (
		waiting bool
		seen    uint64    // the backup's last sequence when last looked at
		since   time.Time // when it was last seen to change, on this clock
	)
	for {
		st, backup, err := m.look(ctx)
		if err != nil {
			return nil, err
		}
		if backup == nil && (st == nil || !st.CachedInfo().Config.DenyDelete) {
			// Nothing to move, or moved.
			if st, err = c.createOrUpdateStream(ctx, m.cfg); err != nil {
				return nil, fmt.Errorf("create bucket %s: %w", bucket, err)
			}
			// A whole move of a small bucket may have begun between the
			// two looks: its restore would overwrite what is written now.
			if backup, err = m.stream(ctx, m.name); err != nil {
				return nil, fmt.Errorf("open bucket %s: %w", bucket, err)
			} else if backup != nil {
				continue
			}
			return m.open(ctx, st)
		}
		if backup == nil {
			// An ordinary bucket to move: make the backup (every instance
			// makes the same one), then claim the move.
			if _, err := c.JS.CreateStream(ctx, m.backupConfig()); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				return nil, fmt.Errorf("move bucket %s: %w", bucket, err)
			}
			continue
		}
		owner, claimSeq, err := m.claimant(ctx, backup)
		if err != nil {
			return nil, fmt.Errorf("move bucket %s: %w", bucket, err)
		}
		if owner == m.me {
			st, err := m.run(ctx, backup)
			if errors.Is(err, errMoveLost) {
				// Look again after a beat: the claim may be another's now.
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(moveBeat()):
				}
				continue
			}
			if err != nil {
				return nil, err
			}
			return m.open(ctx, st)
		}
		if last := backup.CachedInfo().State.LastSeq; owner != "" && (last != seen || since.IsZero()) {
			seen, since = last, time.Now()
		}
		if owner != "" && time.Since(since) < moveStale {
			// Its claimant writes to it (copies, or a beat a second).
			if !waiting {
				c.logger.Info("another instance is moving the bucket to an erasable stream; waiting for it", "bucket", bucket)
				waiting = true
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(moveBeat()):
			}
			continue
		}
		// Not claimed yet, or its claimant stopped writing for moveStale:
		// claim it. Of instances claiming at once one wins (the claim is
		// a compare-and-set on its subject); the rest look again.
		if owner != "" {
			c.logger.Warn("taking over a bucket move whose instance stopped", "bucket", bucket)
		}
		if _, err := c.JS.Publish(ctx, m.subj+moveClaim, []byte(m.me), jetstream.WithExpectLastSequencePerSubject(claimSeq)); err != nil && !casLost(err) {
			return nil, fmt.Errorf("move bucket %s: %w", bucket, err)
		}
		seen, since = 0, time.Time{}
	}
}

// A bucket's move into an erasable stream is made by the instance whose
// claim (the last message on the backup's subject "$claim") names it; a
// claim is a compare-and-set, so of instances claiming at once one wins.
// The claimant writes a beat into the backup every moveBeat while it works;
// the others wait, and claim the move for themselves once nothing has been
// written to the backup for moveStale. A claimant gives up when its own
// last beat is older than a third of that, checked before each removal
// and each restored entry, so two instances never both make the move
// unless a request of one is held on the way for longer than that.
type bucketMove struct {
	c          *Conn
	bucket     string
	cfg        jetstream.StreamConfig
	name, subj string // the backup stream and its subject prefix
	me         string // this instance

	beatMu   sync.Mutex
	lastBeat time.Time // when this instance's last beat was stored
}

func newBucketMove(c *Conn, bucket string, replicas int) *bucketMove {
	return &bucketMove{c: c, bucket: bucket, cfg: erasableStream(bucket, replicas),
		name: "VARSEL_MOVE_" + bucket, subj: "varsel.move." + bucket + ".", me: c.instanceID()}
}

// The backup's subjects after its prefix: the copies under moveKeys (an
// older version put them straight under the prefix), and the marks, which
// no key can be ("$" is never in a key): the claim, the beat, and the last
// message of a whole backup.
const (
	moveKeys     = "$k."
	moveClaim    = "$claim"
	moveAlive    = "$alive"
	moveComplete = "$complete"
)

// moveStale is a variable for the tests; a claimant beats 15 times in it.
var moveStale = 15 * time.Second

func moveBeat() time.Duration { return moveStale / 15 }

// errMoveLost: this instance's claim on the move went, or went stale.
var errMoveLost = errors.New("the move's claim was lost")

// look finds the bucket's stream and the move's backup; nil for missing.
// The backup is looked at first: it goes last, so a move that ends
// between the two looks is seen as ended. Each look waits a second: on a
// new cluster a stream another instance has just made answers nothing
// until its leader is elected, and the caller asks again.
func (m *bucketMove) look(ctx context.Context) (st, backup jetstream.Stream, err error) {
	// A backup not known to be missing is never taken for missing: that
	// would skip a move left halfway.
	if backup, err = m.stream(ctx, m.name); err != nil {
		return nil, nil, fmt.Errorf("open bucket %s: %w", m.bucket, err)
	}
	if st, err = m.stream(ctx, m.cfg.Name); err != nil {
		return nil, nil, fmt.Errorf("open bucket %s: %w", m.bucket, err)
	}
	return st, backup, nil
}

func (m *bucketMove) stream(ctx context.Context, name string) (jetstream.Stream, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	s, err := m.c.JS.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	return s, err
}

func (m *bucketMove) open(ctx context.Context, st jetstream.Stream) (jetstream.KeyValue, error) {
	kv, err := openMade(ctx, m.c.JS, m.bucket)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", m.bucket, err)
	}
	return erasingKV{KeyValue: kv, st: st}, nil
}

func (m *bucketMove) backupConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{Name: m.name, Subjects: []string{m.subj + ">"},
		Storage: jetstream.FileStorage, Replicas: m.cfg.Replicas}
}

// claimant is the instance the move's claim names ("" for none) and the
// claim's sequence (0 for none).
func (m *bucketMove) claimant(ctx context.Context, backup jetstream.Stream) (string, uint64, error) {
	c, err := backup.GetLastMsgForSubject(ctx, m.subj+moveClaim)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, err
	}
	return string(c.Data), c.Sequence, nil
}

// owned checks the claim is still this instance's and its beat is fresh.
func (m *bucketMove) owned(ctx context.Context, backup jetstream.Stream) error {
	if err := m.fresh(); err != nil {
		return err
	}
	owner, _, err := m.claimant(ctx, backup)
	if errors.Is(err, jetstream.ErrStreamNotFound) || (err == nil && owner != m.me) {
		return errMoveLost
	}
	return err
}

// fresh fails when this instance's last stored beat is older than a third
// of moveStale: the others may soon take the move over.
func (m *bucketMove) fresh() error {
	m.beatMu.Lock()
	defer m.beatMu.Unlock()
	if time.Since(m.lastBeat) > moveStale/3 {
		return errMoveLost
	}
	return nil
}

// beat writes a beat into the backup every moveBeat until stop is called.
func (m *bucketMove) beat(ctx context.Context) (stop func()) {
	beating, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	m.beatMu.Lock()
	m.lastBeat = time.Now()
	m.beatMu.Unlock()
	go func() {
		defer close(done)
		t := time.NewTicker(moveBeat())
		defer t.Stop()
		for {
			sent := time.Now()
			ask, cancelAsk := context.WithTimeout(beating, moveBeat())
			if _, err := m.c.JS.Publish(ask, m.subj+moveAlive, nil); err == nil {
				m.beatMu.Lock()
				m.lastBeat = sent
				m.beatMu.Unlock()
			}
			cancelAsk()
			select {
			case <-beating.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); <-done }
}

// run makes the move as its claimant: the backup (re)made whole from the
// old stream while that is there, then a new erasable stream in place of
// whatever stream is there, restored from the backup, and the backup
// removed. Run again after a stop, it goes on from the step it stopped in.
func (m *bucketMove) run(ctx context.Context, backup jetstream.Stream) (jetstream.Stream, error) {
	defer m.beat(ctx)()
	fail := func(err error) (jetstream.Stream, error) {
		if errors.Is(err, errMoveLost) {
			return nil, err
		}
		return nil, fmt.Errorf("move bucket %s: %w", m.bucket, err)
	}
	st, err := m.stream(ctx, m.cfg.Name) // as it is now that the move is ours
	if err != nil {
		return fail(err)
	}
	if st != nil && st.CachedInfo().Config.DenyDelete {
		if err := m.owned(ctx, backup); err != nil {
			return fail(err)
		}
		// What came before this instance's claim (an earlier claimant's
		// copies, in either form), and its own copies after it, go.
		_, claimSeq, err := m.claimant(ctx, backup)
		if err != nil {
			return fail(err)
		}
		for _, opt := range []jetstream.StreamPurgeOpt{jetstream.WithPurgeSequence(claimSeq),
			jetstream.WithPurgeSubject(m.subj + moveKeys + ">"), jetstream.WithPurgeSubject(m.subj + moveComplete)} {
			if err := backup.Purge(ctx, opt); err != nil {
				return fail(err)
			}
		}
		n, err := m.copyFrom(ctx)
		if err != nil {
			return fail(err)
		}
		// The backup is whole: only now may the old stream go.
		if err := m.owned(ctx, backup); err != nil {
			return fail(err)
		}
		if _, err := m.c.JS.Publish(ctx, m.subj+moveComplete, nil); err != nil {
			return fail(err)
		}
		m.c.logger.Info("moving bucket to an erasable stream", "bucket", m.bucket, "keys", n)
	}
	if _, err := backup.GetLastMsgForSubject(ctx, m.subj+moveComplete); errors.Is(err, jetstream.ErrMsgNotFound) {
		copies, err := m.copies(ctx, backup)
		if err != nil {
			return fail(err)
		}
		if st != nil && !copies {
			// The erasable stream is made only after a whole backup, and
			// this one holds no copy: it was made after a move that had
			// ended.
			if err := m.owned(ctx, backup); err != nil {
				return fail(err)
			}
			if err := m.c.JS.DeleteStream(ctx, m.name); err != nil {
				return fail(err)
			}
			return st, nil
		}
		// Never completed, and the old stream is gone (or replaced by a
		// restore the version before this one began before it marked its
		// backups whole): nothing to restore that is known whole.
		return nil, fmt.Errorf("move bucket %s: the backup %s is incomplete; restore it by hand", m.bucket, m.name)
	} else if err != nil {
		return fail(err)
	}
	// Whatever stream is there, the old one or one a stopped restore
	// began, is replaced by a new one restored whole.
	if err := m.owned(ctx, backup); err != nil {
		return fail(err)
	}
	if err := m.c.JS.DeleteStream(ctx, m.cfg.Name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fail(err)
	}
	if st, err = m.c.createOrUpdateStream(ctx, m.cfg); err != nil {
		return nil, fmt.Errorf("create bucket %s: %w", m.bucket, err)
	}
	if err := m.restore(ctx, backup); err != nil {
		return fail(err)
	}
	if err := m.owned(ctx, backup); err != nil {
		return fail(err)
	}
	if err := m.c.JS.DeleteStream(ctx, m.name); err != nil {
		return fail(err)
	}
	return st, nil
}

// copies reports whether the backup holds any copy of an entry, in either
// form (every subject but the marks).
func (m *bucketMove) copies(ctx context.Context, backup jetstream.Stream) (bool, error) {
	info, err := backup.Info(ctx, jetstream.WithSubjectFilter(m.subj+">"))
	if err != nil {
		return false, err
	}
	for subj := range info.State.Subjects {
		if mark := subj[len(m.subj):]; mark != moveClaim && mark != moveAlive {
			return true, nil
		}
	}
	return false, nil
}

// copyFrom copies every entry of the old bucket into the backup.
func (m *bucketMove) copyFrom(ctx context.Context) (int, error) {
	old, err := m.c.JS.KeyValue(ctx, m.bucket)
	if err != nil {
		return 0, err
	}
	keys, err := old.ListKeys(ctx)
	if err != nil {
		return 0, err
	}
	defer keys.Stop()
	n := 0
	for k := range keys.Keys() {
		e, err := old.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return n, fmt.Errorf("read %s: %w", k, err)
		}
		if _, err := m.c.JS.Publish(ctx, m.subj+moveKeys+k, e.Value()); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// restore writes every entry of the backup into the bucket.
func (m *bucketMove) restore(ctx context.Context, backup jetstream.Stream) error {
	info, err := backup.Info(ctx)
	if err != nil {
		return err
	}
	if info.State.Msgs == 0 {
		return nil
	}
	// A consumer that cannot be made again (the backup gone) fails
	// instead of trying for ever.
	cons, err := backup.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{MaxResetAttempts: 5})
	if err != nil {
		return err
	}
	for {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			return err
		}
		meta, err := msg.Metadata()
		if err != nil {
			return err
		}
		key := msg.Subject()[len(m.subj):]
		if k, ok := strings.CutPrefix(key, moveKeys); ok || !strings.HasPrefix(key, "$") {
			if ok {
				key = k
			}
			if err := m.fresh(); err != nil {
				return err
			}
			kv := nats.NewMsg("$KV." + m.bucket + "." + key)
			kv.Data = msg.Data()
			if _, err := m.c.JS.PublishMsg(ctx, kv); err != nil {
				return err
			}
		}
		if meta.Sequence.Stream >= info.State.LastSeq {
			return nil
		}
	}
}

// openMade opens a bucket whose stream was just made. On a cluster the
// create may be answered for another instance's create still in flight:
// the stream is then not found for a moment, and its info goes unanswered
// until its leader is elected. So each look waits a second, and a bucket
// not found yet counts as the cluster still forming (whileClusterForms).
func openMade(ctx context.Context, js jetstream.JetStream, bucket string) (kv jetstream.KeyValue, err error) {
	err = whileClusterForms(ctx, func() error {
		look, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if kv, err = js.KeyValue(look, bucket); errors.Is(err, jetstream.ErrBucketNotFound) {
			return fmt.Errorf("%w: %w", errNotMadeYet, err)
		}
		return err
	})
	return kv, err
}
