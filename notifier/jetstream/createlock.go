package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A new subscriber is stored without a header.
//
// A KeyValue create or update sends its expectation as a header, and NATS
// stores the header with the message. A multi-get of messages with stored
// headers (Subscribers.GetMany, at every send) makes the server rewrite
// each one's headers six times through net/http.Header instead of writing
// them once: about 3 µs and 3 KB a read, 4.6 % of serve's CPU in a fan-out
// out of process. So a new subscriber is written with a plain put, and
// what the create's expectation did (refuse a second creator of the id) a
// lock does: the creators of one id take the same one of createLocks keys
// in the address bucket (a create of that key, which one writer at a time
// can make), ask the subscribers stream's leader (not a replica, which may
// lag) whether the id exists, and put only if it does not. Every other
// write of a subscriber needs the record to exist and stays an update,
// compare-and-set; an update cannot land before the put, for there is
// nothing to update. The header stays on a subscriber once it is updated.
const (
	createLockPrefix = "create."
	createLocks      = 256
	// createLockWait bounds the wait for a lock.
	createLockWait = 30 * time.Second
	// errNoMessage is JetStream's "no message found".
	errNoMessage = 10037
)

// createLockStale is how long a waiter sees one revision of a lock held,
// by its own clock, before taking it over: its holder died (a create holds
// it for four round trips). A variable for the tests.
var createLockStale = 10 * time.Second

// plainCreateKV is the subscribers bucket as Subscribers.Put writes it:
// its Create takes the id's creation lock and writes with a plain put.
type plainCreateKV struct {
	jetstream.KeyValue                    // the bucket as updates use it (erasing)
	plain              jetstream.KeyValue // the bucket without the erasing
	locks              jetstream.KeyValue // the address bucket
	nc                 *nats.Conn
	stream             string
}

// creator returns the bucket Put writes through: with plain creates for
// an erasable bucket (every subscribers bucket, once serve has moved it).
func (s *Subscribers) creator() jetstream.KeyValue {
	e, ok := s.kv.(erasingKV)
	if !ok || s.last == nil || s.last.nc == nil {
		return s.kv
	}
	return plainCreateKV{KeyValue: e, plain: e.KeyValue, locks: s.idx, nc: s.last.nc, stream: "KV_" + e.Bucket()}
}

// Create writes key if no other writer has: ErrKeyExists if one has.
func (p plainCreateKV) Create(ctx context.Context, key string, value []byte, _ ...jetstream.KVCreateOpt) (uint64, error) {
	unlock, err := p.lock(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", key, err)
	}
	defer unlock()
	exists, err := p.leaderHas(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", key, err)
	}
	if exists {
		return 0, fmt.Errorf("create %s: %w", key, jetstream.ErrKeyExists)
	}
	return p.plain.Put(ctx, key, value)
}

// lock takes the creation lock of id and returns its release.
func (p plainCreateKV) lock(ctx context.Context, id string) (func(), error) {
	key := createLockKey(id)
	ctx, cancel := context.WithTimeout(ctx, createLockWait)
	defer cancel()
	var seen uint64
	var since time.Time
	for {
		rev, err := p.locks.Create(ctx, key, []byte("1"))
		if err == nil {
			return p.unlock(key, rev), nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("take the creation lock %s: %w", key, err)
		}
		e, err := p.locks.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			continue // released meanwhile
		case err != nil:
			return nil, fmt.Errorf("read the creation lock %s: %w", key, err)
		case e.Revision() != seen:
			seen, since = e.Revision(), time.Now()
		case time.Since(since) > createLockStale:
			if rev, err := p.locks.Update(ctx, key, []byte("1"), seen); err == nil {
				return p.unlock(key, rev), nil
			}
			continue // another waiter took it over first
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for the creation lock %s: %w", key, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

// createLockKey is the creation lock of id.
func createLockKey(id string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return fmt.Sprintf("%s%02x", createLockPrefix, h.Sum32()%createLocks)
}

// unlock releases the lock at rev, unless a waiter has taken it over; it
// outlives the create's context, so a cancelled create does not leave it
// held until it is stale.
func (p plainCreateKV) unlock(key string, rev uint64) func() {
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.locks.Delete(ctx, key, jetstream.LastRevision(rev))
	}
}

// leaderHas asks the stream's leader whether key has a value (a delete or
// purge marker is none).
func (p plainCreateKV) leaderHas(ctx context.Context, key string) (bool, error) {
	req, err := json.Marshal(map[string]string{"last_by_subj": "$KV." + p.Bucket() + "." + key})
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	msg, err := p.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+p.stream, req)
	if err != nil {
		return false, fmt.Errorf("read %s from the stream's leader: %w", key, err)
	}
	var resp struct {
		Message *struct {
			Hdrs []byte `json:"hdrs"`
		} `json:"message"`
		Error *struct {
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return false, fmt.Errorf("read %s from the stream's leader: %w", key, err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrCode == errNoMessage:
		return false, nil
	case resp.Error != nil:
		return false, fmt.Errorf("read %s from the stream's leader: %s (%d)", key, resp.Error.Description, resp.Error.ErrCode)
	case resp.Message == nil:
		return false, fmt.Errorf("read %s from the stream's leader: an answer without a message", key)
	}
	if len(resp.Message.Hdrs) > 0 {
		h, err := nats.DecodeHeadersMsg(resp.Message.Hdrs)
		if err != nil {
			return false, fmt.Errorf("read %s from the stream's leader: %w", key, err)
		}
		if op := h.Get(kvOperationHeader); op == "DEL" || op == "PURGE" {
			return false, nil
		}
	}
	return true, nil
}
