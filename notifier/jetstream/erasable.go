package jetstream

import (
	"context"
	"errors"
	"fmt"
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
// nothing: the next start finishes it.
func (c *Conn) erasableBucket(ctx context.Context, bucket string, replicas int) (jetstream.KeyValue, error) {
	cfg := erasableStream(bucket, replicas)
	backupName, backupSubj := "VARSEL_MOVE_"+bucket, "varsel.move."+bucket+"."
	// A second for each look: on a new cluster a stream another instance
	// has just made answers nothing until its leader is elected, and the
	// caller asks again.
	look := func(name string) (jetstream.Stream, error) {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		return c.JS.Stream(ctx, name)
	}
	st, err := look(cfg.Name)
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("open bucket %s: %w", bucket, err)
	}
	backup, berr := look(backupName)
	if berr != nil && !errors.Is(berr, jetstream.ErrStreamNotFound) {
		// Not known to be missing: taking it for missing would skip a
		// move left halfway.
		return nil, fmt.Errorf("open bucket %s: %w", bucket, berr)
	}
	if st != nil && st.CachedInfo().Config.DenyDelete {
		// The old stream is still there: (re)make the backup whole, from
		// it, whatever an earlier start that stopped midway left.
		old, err := c.JS.KeyValue(ctx, bucket)
		if err != nil {
			return nil, fmt.Errorf("open bucket %s: %w", bucket, err)
		}
		if berr == nil {
			if err := backup.Purge(ctx); err != nil {
				return nil, fmt.Errorf("move bucket %s: %w", bucket, err)
			}
		} else if backup, err = c.JS.CreateStream(ctx, jetstream.StreamConfig{Name: backupName, Subjects: []string{backupSubj + ">"},
			Storage: jetstream.FileStorage, Replicas: replicas}); err != nil {
			return nil, fmt.Errorf("move bucket %s: %w", bucket, err)
		}
		keys, err := old.ListKeys(ctx)
		if err != nil {
			return nil, fmt.Errorf("move bucket %s: %w", bucket, err)
		}
		n := 0
		for k := range keys.Keys() {
			e, err := old.Get(ctx, k)
			if errors.Is(err, jetstream.ErrKeyNotFound) {
				continue // deleted meanwhile
			}
			if err != nil {
				return nil, fmt.Errorf("move bucket %s: read %s: %w", bucket, k, err)
			}
			if _, err := c.JS.Publish(ctx, backupSubj+k, e.Value()); err != nil {
				return nil, fmt.Errorf("move bucket %s: %w", bucket, err)
			}
			n++
		}
		// The backup is whole: only now may the old stream go.
		if _, err := c.JS.Publish(ctx, backupSubj+moveComplete, nil); err != nil {
			return nil, fmt.Errorf("move bucket %s: %w", bucket, err)
		}
		c.logger.Info("moving bucket to an erasable stream", "bucket", bucket, "keys", n)
		berr = nil
	}
	if berr == nil {
		if _, err := backup.GetLastMsgForSubject(ctx, backupSubj+moveComplete); err != nil {
			// Never completed, and the old stream is gone: nothing to
			// restore that is known whole.
			return nil, fmt.Errorf("move bucket %s: the backup %s is incomplete (%v); restore it by hand", bucket, backupName, err)
		}
		// A whole backup exists: replace the old stream and restore from it.
		if st != nil && st.CachedInfo().Config.DenyDelete {
			if err := c.JS.DeleteStream(ctx, cfg.Name); err != nil {
				return nil, fmt.Errorf("move bucket %s: %w", bucket, err)
			}
		}
		if st, err = c.createOrUpdateStream(ctx, cfg); err != nil {
			return nil, fmt.Errorf("create bucket %s: %w", bucket, err)
		}
		cons, err := backup.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
		if err != nil {
			return nil, fmt.Errorf("move bucket %s: %w", bucket, err)
		}
		info, _ := backup.Info(ctx)
		for i := uint64(0); info != nil && i < info.State.Msgs; i++ {
			m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
			if err != nil {
				return nil, fmt.Errorf("move bucket %s: %w", bucket, err)
			}
			if m.Subject() == backupSubj+moveComplete {
				continue
			}
			msg := nats.NewMsg("$KV." + bucket + "." + m.Subject()[len(backupSubj):])
			msg.Data = m.Data()
			if _, err := c.JS.PublishMsg(ctx, msg); err != nil {
				return nil, fmt.Errorf("move bucket %s: %w", bucket, err)
			}
		}
		if err := c.JS.DeleteStream(ctx, backupName); err != nil {
			return nil, fmt.Errorf("move bucket %s: %w", bucket, err)
		}
	} else if st, err = c.createOrUpdateStream(ctx, cfg); err != nil {
		return nil, fmt.Errorf("create bucket %s: %w", bucket, err)
	}
	kv, err := openMade(ctx, c.JS, bucket)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", bucket, err)
	}
	return erasingKV{KeyValue: kv, st: st}, nil
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
