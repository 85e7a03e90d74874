package jetstream

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
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
	m := &bucketMove{c: c, bucket: bucket, cfg: erasableStream(bucket, replicas), replicas: replicas,
		name: "VARSEL_MOVE_" + bucket, subj: "varsel.move." + bucket + ".", me: c.instanceID()}
	waiting := false
	for {
		st, backup, err := m.look(ctx)
		if err != nil {
			return nil, err
		}
		switch {
		case backup == nil && (st == nil || !st.CachedInfo().Config.DenyDelete):
			// Nothing to move, or moved.
			if st, err = c.createOrUpdateStream(ctx, m.cfg); err != nil {
				return nil, fmt.Errorf("create bucket %s: %w", bucket, err)
			}
		case backup == nil:
			// An ordinary bucket to move: claim the move by making the
			// backup. A create that finds it made for another instance
			// says so, and the next look finds that one's claim.
			if _, err := c.JS.CreateStream(ctx, m.backupConfig(nil)); errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				continue
			} else if err != nil {
				return nil, fmt.Errorf("move bucket %s: %w", bucket, err)
			}
			continue
		case backup.CachedInfo().Config.Metadata[moverKey] != m.me:
			if m.alive(ctx, backup) {
				if !waiting {
					c.logger.Info("another instance is moving the bucket to an erasable stream; waiting for it", "bucket", bucket)
					waiting = true
				}
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(moveBeat):
				}
				continue
			}
			// Its mover stopped (or an older version left it): take the
			// move over, and finish it from where it stopped.
			c.logger.Warn("taking over a bucket move whose instance stopped", "bucket", bucket)
			if _, err := c.JS.UpdateStream(ctx, m.backupConfig(backup.CachedInfo().Config.Metadata)); err != nil {
				return nil, fmt.Errorf("move bucket %s: %w", bucket, err)
			}
			continue
		default:
			st, err = m.run(ctx, st, backup)
			if errors.Is(err, errMoveLost) {
				continue
			}
			if err != nil {
				return nil, err
			}
		}
		kv, err := openMade(ctx, c.JS, bucket)
		if err != nil {
			return nil, fmt.Errorf("open bucket %s: %w", bucket, err)
		}
		return erasingKV{KeyValue: kv, st: st}, nil
	}
}

// A bucket's move into an erasable stream is claimed by the instance that
// makes the backup stream: the stream names it in its metadata, and it
// beats in the stream (the subject "$alive") every moveBeat while it
// works. Only it purges, copies, deletes and restores, and it checks the
// claim is still its own before each removal. The others wait until the
// move is done, and take it over once the beat has stopped for moveStale.
type bucketMove struct {
	c          *Conn
	bucket     string
	cfg        jetstream.StreamConfig
	replicas   int
	name, subj string // the backup stream and its subject prefix
	me         string // this instance
}

const (
	moverKey  = "varsel_mover"
	moveAlive = "$alive"
	moveBeat  = time.Second
)

// moveStale is a variable for the tests.
var moveStale = 15 * time.Second

// errMoveLost: another instance took the move over.
var errMoveLost = errors.New("the move was taken over by another instance")

// look finds the bucket's stream and the move's backup; nil for missing.
// Each look waits a second: on a new cluster a stream another instance
// has just made answers nothing until its leader is elected, and the
// caller asks again.
func (m *bucketMove) look(ctx context.Context) (st, backup jetstream.Stream, err error) {
	get := func(name string) (jetstream.Stream, error) {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		s, err := m.c.JS.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, nil
		}
		return s, err
	}
	if st, err = get(m.cfg.Name); err != nil {
		return nil, nil, fmt.Errorf("open bucket %s: %w", m.bucket, err)
	}
	// A backup not known to be missing is never taken for missing: that
	// would skip a move left halfway.
	if backup, err = get(m.name); err != nil {
		return nil, nil, fmt.Errorf("open bucket %s: %w", m.bucket, err)
	}
	return st, backup, nil
}

// backupConfig is the backup stream's config, claimed by this instance
// (with the rest of the metadata it had).
func (m *bucketMove) backupConfig(metadata map[string]string) jetstream.StreamConfig {
	md := maps.Clone(metadata)
	if md == nil {
		md = map[string]string{}
	}
	md[moverKey] = m.me
	return jetstream.StreamConfig{Name: m.name, Subjects: []string{m.subj + ">"},
		Storage: jetstream.FileStorage, Replicas: m.replicas, Metadata: md}
}

// alive reports whether the backup's mover wrote to it (a copy or a beat)
// within moveStale; a backup without either counts from its making.
func (m *bucketMove) alive(ctx context.Context, backup jetstream.Stream) bool {
	info := backup.CachedInfo()
	times := []time.Time{info.Created, info.State.LastTime}
	if beat, err := backup.GetLastMsgForSubject(ctx, m.subj+moveAlive); err == nil {
		times = append(times, beat.Time)
	} else if !errors.Is(err, jetstream.ErrMsgNotFound) {
		return true // not known to have stopped: ask again
	}
	return time.Since(slices.MaxFunc(times, time.Time.Compare)) < moveStale
}

// owned checks the claim is still this instance's.
func (m *bucketMove) owned(ctx context.Context, backup jetstream.Stream) error {
	info, err := backup.Info(ctx)
	if errors.Is(err, jetstream.ErrStreamNotFound) || (err == nil && info.Config.Metadata[moverKey] != m.me) {
		return errMoveLost
	}
	return err
}

// run makes the move as its claimant: the backup (re)made whole from the
// old stream while that is there, then a new erasable stream in place of
// whatever stream is there, restored from the backup, and the backup
// removed. Run again after a stop, it goes on from the step it stopped in.
func (m *bucketMove) run(ctx context.Context, st, backup jetstream.Stream) (jetstream.Stream, error) {
	beating, stop := context.WithCancel(context.WithoutCancel(ctx))
	beaten := make(chan struct{})
	go func() {
		defer close(beaten)
		for {
			ask, cancel := context.WithTimeout(beating, moveBeat)
			_, _ = m.c.JS.Publish(ask, m.subj+moveAlive, nil)
			cancel()
			select {
			case <-beating.Done():
				return
			case <-time.After(moveBeat):
			}
		}
	}()
	defer func() { stop(); <-beaten }()
	fail := func(err error) (jetstream.Stream, error) {
		if errors.Is(err, errMoveLost) {
			return nil, err
		}
		return nil, fmt.Errorf("move bucket %s: %w", m.bucket, err)
	}
	if st != nil && st.CachedInfo().Config.DenyDelete {
		if err := m.owned(ctx, backup); err != nil {
			return fail(err)
		}
		if err := backup.Purge(ctx); err != nil {
			return fail(err)
		}
		n, err := m.copyFrom(ctx)
		if err != nil {
			return fail(err)
		}
		// The backup is whole: only now may the old stream go.
		if _, err := m.c.JS.Publish(ctx, m.subj+moveComplete, nil); err != nil {
			return fail(err)
		}
		m.c.logger.Info("moving bucket to an erasable stream", "bucket", m.bucket, "keys", n)
	}
	if _, err := backup.GetLastMsgForSubject(ctx, m.subj+moveComplete); errors.Is(err, jetstream.ErrMsgNotFound) {
		// Never completed, and the old stream is gone: nothing to
		// restore that is known whole.
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
	st, err := m.c.createOrUpdateStream(ctx, m.cfg)
	if err != nil {
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
		if _, err := m.c.JS.Publish(ctx, m.subj+k, e.Value()); err != nil {
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
		if key := msg.Subject()[len(m.subj):]; key != moveComplete && key != moveAlive {
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

// moveComplete is the last message of a whole backup of a bucket being
// moved ("$" is never in a key).
const moveComplete = "$complete"
