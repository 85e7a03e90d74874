package jetstream

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/varsel/varsel/notifier"
	"github.com/varsel/varsel/notifier/staff"
)

// Subscribers is the subscriber store on the varsel_subscribers bucket.
type Subscribers struct {
	kv jetstream.KeyValue
	js jetstream.JetStream
	// idx is the address index (varsel_addresses, see subscribers.go).
	idx jetstream.KeyValue
	// forget rewrites the delivery log without a removed subscriber.
	forget func(ctx context.Context, id string) (int, error)
	// last reads several subscribers in one request (GetMany).
	last *lastMsgs
}

var _ notifier.SubscriberStore = (*Subscribers)(nil)

// Get implements notifier.SubscriberStore. A subscriber the read does not
// find is looked for on the stream's leader (confirmMissing).
func (s *Subscribers) Get(ctx context.Context, id string) (*notifier.Subscriber, error) {
	sub := new(notifier.Subscriber)
	_, err := getJSON(ctx, s.kv, id, sub)
	if errors.Is(err, notifier.ErrNotFound) {
		found, lerr := s.confirmMissing(ctx, id, sub)
		switch {
		case lerr != nil:
			// Not known to be gone: a sender tries again later rather
			// than skip someone as removed.
			return nil, fmt.Errorf("subscriber %q: %w", id, lerr)
		case found:
			return sub, nil
		}
	}
	if err != nil {
		return nil, err
	}
	return sub, nil
}

// confirmMissing reads from the stream's leader a subscriber that a read
// did not find: on a cluster that read is a direct get, which a replica
// behind may answer, and a subscriber created a moment before would be
// taken for removed (a send skipped, an update refused). Missing is rare
// (a removal, a sign-up's first look), so the cost is too.
func (s *Subscribers) confirmMissing(ctx context.Context, id string, sub *notifier.Subscriber) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, confirmBudget)
	defer cancel()
	return leaderGetJSON(ctx, s.js, s.kv.Bucket(), id, sub)
}

var _ notifier.SubscriberBatcher = (*Subscribers)(nil)

// GetMany implements notifier.SubscriberBatcher with one direct get of the
// last revision of every key (see lastMsgs).
func (s *Subscribers) GetMany(ctx context.Context, ids []string) (map[string]*notifier.Subscriber, error) {
	prefix := "$KV." + s.kv.Bucket() + "."
	out := make(map[string]*notifier.Subscriber, len(ids))
	subjects := make([]string, 0, len(ids))
	for _, id := range ids {
		if !notifier.ValidID(id) {
			out[id] = nil // read alone, to fail with its own error
			continue
		}
		subjects = append(subjects, prefix+id)
	}
	if len(subjects) == 0 {
		return out, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	msgs, err := s.last.get(ctx, "KV_"+s.kv.Bucket(), subjects)
	if err != nil {
		return nil, fmt.Errorf("get subscribers: %w", err)
	}
	for subj, m := range msgs {
		if m.Header.Get(kvOperationHeader) != "" {
			continue // deleted or purged
		}
		id := strings.TrimPrefix(subj, prefix)
		sub := new(notifier.Subscriber)
		if err := decodeHot(m.Data, sub); err != nil {
			out[id] = nil // read alone, to fail with its own error
			continue
		}
		out[id] = sub
	}
	leaderFailed := false
	for _, subj := range subjects {
		id := strings.TrimPrefix(subj, prefix)
		if _, ok := out[id]; ok {
			continue
		}
		if leaderFailed {
			out[id] = nil // read alone, to fail with its own error
			continue
		}
		// Not found: removed, or not yet on the replica that answered.
		sub := new(notifier.Subscriber)
		found, err := s.confirmMissing(ctx, id, sub)
		switch {
		case err != nil:
			leaderFailed = true // the others would wait as long
			out[id] = nil
		case found:
			out[id] = sub
		}
	}
	return out, nil
}

// kvOperationHeader marks a KeyValue delete or purge marker (nats.go's
// KV-Operation); a value has none.
const kvOperationHeader = "KV-Operation"

// Put implements notifier.SubscriberStore. It keeps CreatedAt and the
// suppression and failure state of an existing subscriber unless sub sets
// them, and its webhook secret unless sub gives one (a secret Normalize
// generated is not given). A Put that changes nothing writes nothing.
func (s *Subscribers) Put(ctx context.Context, sub *notifier.Subscriber) error {
	before, err := s.write(ctx, sub)
	if err != nil {
		return err
	}
	return s.reindex(ctx, sub.ID, before, sub.Addresses())
}

// PutIndexLater is Put with the address index left to later.Apply. A
// subscriber that is unchanged has its addresses added to later too, so an
// import run again after one that stopped before its index was written
// indexes them.
func (s *Subscribers) PutIndexLater(ctx context.Context, sub *notifier.Subscriber, later *IndexLater) error {
	before, err := s.write(ctx, sub)
	if err != nil {
		return err
	}
	later.add(indexChanges(sub.ID, before, sub.Addresses()))
	return nil
}

// write stores sub as Put does and returns the addresses it had before.
// When nothing changes it writes nothing and returns none: the index may
// still lack the subscriber's addresses (a write whose answer was lost,
// retried by its caller, finds itself done), so the caller adds them all,
// which reads the shards and writes nothing when they have them.
func (s *Subscribers) write(ctx context.Context, sub *notifier.Subscriber) ([]string, error) {
	if !notifier.ValidID(sub.ID) {
		return nil, fmt.Errorf("put subscriber: invalid id %q", sub.ID)
	}
	now := time.Now().UTC()
	var before []string
	_, err := updateJSON(ctx, s.kv, sub.ID, true, func(cur *notifier.Subscriber) error {
		old := *cur
		before = cur.Addresses()
		if sub.SecretGenerated() && old.WebhookSecret != "" {
			// No secret was given: the subscriber keeps theirs (and a
			// rotation in progress), and sub says so to the caller.
			sub.WebhookSecret, sub.PreviousWebhookSecret, sub.PreviousSecretUntil = old.WebhookSecret, old.PreviousWebhookSecret, old.PreviousSecretUntil
		}
		created := cur.CreatedAt
		suppressed, failures := cur.Suppressed, cur.Failures
		*cur = *sub
		if created.IsZero() {
			created = now
		}
		cur.CreatedAt, cur.UpdatedAt = created, now
		if cur.Suppressed == nil {
			cur.Suppressed = suppressed
		}
		if cur.Failures == nil {
			cur.Failures = failures
		}
		if old.ID != "" && sameSubscriber(old, *cur) {
			// Nothing changes: no new revision. In this erasable bucket
			// every write also erases the revision it replaces, which
			// rewrites the block holding it (3 ms a row when an import
			// is run again).
			return errUnchanged
		}
		return nil
	})
	if errors.Is(err, errUnchanged) {
		return nil, nil
	}
	return before, err
}

// errUnchanged stops a write that would change nothing.
var errUnchanged = errors.New("unchanged")

// sameSubscriber reports whether a and b are the same record but for when
// it was last written.
func sameSubscriber(a, b notifier.Subscriber) bool {
	a.UpdatedAt, b.UpdatedAt = time.Time{}, time.Time{}
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}

// Update implements notifier.SubscriberStore. A subscriber that the read
// does not find is looked for on the stream's leader before the update is
// refused: on a cluster the read may come from a replica that has not yet
// stored a subscriber created a moment before (it was seen in tests). Then
// the update is made on the leader's copy, with compare-and-set on its
// revision.
func (s *Subscribers) Update(ctx context.Context, id string, fn func(*notifier.Subscriber) error) (*notifier.Subscriber, error) {
	var before []string
	change := func(sub *notifier.Subscriber) error {
		before = sub.Addresses()
		if err := fn(sub); err != nil {
			return err
		}
		sub.UpdatedAt = time.Now().UTC()
		return nil
	}
	sub, err := updateJSON(ctx, s.kv, id, false, change)
	if errors.Is(err, notifier.ErrNotFound) {
		sub, err = s.updateOnLeader(ctx, id, change, err)
	}
	if err != nil {
		return nil, err
	}
	return sub, s.reindex(ctx, id, before, sub.Addresses())
}

// updateOnLeader is updateJSON reading the leader's copy: for a subscriber
// that a direct get did not find (notFound is that error).
func (s *Subscribers) updateOnLeader(ctx context.Context, id string, change func(*notifier.Subscriber) error, notFound error) (*notifier.Subscriber, error) {
	for range maxCASRetries {
		lctx, cancel := context.WithTimeout(ctx, confirmBudget)
		data, rev, found, err := leaderGet(lctx, s.js, s.kv.Bucket(), id)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("update subscriber %q: %w", id, err)
		}
		if !found {
			return nil, notFound
		}
		sub := new(notifier.Subscriber)
		if err := json.Unmarshal(data, sub); err != nil {
			return nil, fmt.Errorf("decode %s %q: %w", s.kv.Bucket(), id, err)
		}
		if err := change(sub); err != nil {
			return nil, err
		}
		b, err := json.Marshal(sub)
		if err != nil {
			return nil, fmt.Errorf("encode %s %q: %w", s.kv.Bucket(), id, err)
		}
		if _, err = s.kv.Update(ctx, id, b, rev); err == nil {
			return sub, nil
		}
		if !casLost(err) {
			return nil, fmt.Errorf("write %s %q: %w", s.kv.Bucket(), id, err)
		}
	}
	return nil, fmt.Errorf("update %s %q: %w", s.kv.Bucket(), id, notifier.ErrConflict)
}

// confirmBudget bounds a leader read made to confirm what a direct get did
// not find: with no leader (an election) leaderGet would try for about 5
// s, and a send or a page waits on it.
const confirmBudget = 1500 * time.Millisecond

// Delete implements notifier.SubscriberStore.
func (s *Subscribers) Delete(ctx context.Context, id string) error {
	old, err := s.Get(ctx, id)
	if err != nil && !errors.Is(err, notifier.ErrNotFound) {
		return fmt.Errorf("delete subscriber %q: %w", id, err)
	}
	// Every revision erased from the store's files, not only marked deleted;
	// then what the delivery log says about them.
	if err := s.kv.Delete(ctx, id); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("delete subscriber %q: %w", id, err)
	}
	if s.forget != nil {
		if _, err := s.forget(ctx, id); err != nil {
			return fmt.Errorf("delete subscriber %q: %w", id, err)
		}
	}
	if old != nil {
		return s.reindex(ctx, id, old.Addresses(), nil)
	}
	return nil
}

// Each implements notifier.SubscriberStore.
func (s *Subscribers) Each(ctx context.Context, fn func(*notifier.Subscriber) error) error {
	// "*": ids have no dots, and an earlier version's index keys
	// ("addr.<hash>", moved away on start) are not subscribers.
	return eachJSON(ctx, s.js, s.kv, "*", decodeHot, fn)
}

// FindByPhone implements notifier.SubscriberStore by a scan: it serves
// inbound SMS keywords, which are rare.
func (s *Subscribers) FindByPhone(ctx context.Context, phone string) ([]*notifier.Subscriber, error) {
	var found []*notifier.Subscriber
	err := s.Each(ctx, func(sub *notifier.Subscriber) error {
		if sub.Phone == phone {
			found = append(found, sub)
		}
		return nil
	})
	return found, err
}

// Incidents is the incident state store on the varsel_incidents bucket.
type Incidents struct {
	kv jetstream.KeyValue
	js jetstream.JetStream
}

var _ notifier.IncidentStore = (*Incidents)(nil)

// Get implements notifier.IncidentStore.
func (s *Incidents) Get(ctx context.Context, id string) (*notifier.IncidentState, error) {
	st := new(notifier.IncidentState)
	if _, err := getJSON(ctx, s.kv, id, st); err != nil {
		return nil, err
	}
	return st, nil
}

// Update implements notifier.IncidentStore.
func (s *Incidents) Update(ctx context.Context, id string, fn func(*notifier.IncidentState) error) (*notifier.IncidentState, error) {
	return updateJSON(ctx, s.kv, id, true, fn)
}

// List implements notifier.IncidentStore.
func (s *Incidents) List(ctx context.Context) ([]*notifier.IncidentState, error) {
	var all []*notifier.IncidentState
	err := eachJSON(ctx, s.js, s.kv, ">", json.Unmarshal, func(st *notifier.IncidentState) error {
		all = append(all, st)
		return nil
	})
	slices.SortFunc(all, func(a, b *notifier.IncidentState) int { return b.LastEventTime.Compare(a.LastEventTime) })
	return all, err
}

// Events is the accepted-event store on the varsel_events bucket.
type Events struct{ kv jetstream.KeyValue }

var _ notifier.EventStore = (*Events)(nil)

// Get implements notifier.EventStore.
func (s *Events) Get(ctx context.Context, id string) (*notifier.EventRecord, error) {
	r := new(notifier.EventRecord)
	if _, err := getJSON(ctx, s.kv, id, r); err != nil {
		return nil, err
	}
	return r, nil
}

// Put implements notifier.EventStore.
func (s *Events) Put(ctx context.Context, r *notifier.EventRecord) error {
	return putJSON(ctx, s.kv, r.Event.ID, r)
}

// PutMany writes n new subscribers made by mk with pipelined publishes; it
// is for bulk import, where waiting for each write in turn would dominate.
// Existing subscribers with the same ids are replaced whole.
func (s *Subscribers) PutMany(ctx context.Context, n int, mk func(i int) *notifier.Subscriber) error {
	js := s.js
	now := time.Now().UTC()
	futures := make([]jetstream.PubAckFuture, 0, 1024)
	var index []indexChange
	wait := func() error {
		defer func() { futures = futures[:0] }()
		if err := awaitAcks(ctx, futures); err != nil {
			return fmt.Errorf("put subscriber: %w", err)
		}
		return nil
	}
	for i := range n {
		sub := mk(i)
		if sub.CreatedAt.IsZero() {
			sub.CreatedAt = now
		}
		sub.UpdatedAt = now
		b, err := json.Marshal(sub)
		if err != nil {
			return err
		}
		f, err := js.PublishAsync("$KV."+SubscribersKV+"."+sub.ID, b)
		if err != nil {
			return fmt.Errorf("put subscriber %s: %w", sub.ID, err)
		}
		for _, a := range sub.Addresses() { // the index (subscribers.go); a replaced one's old entries go stale
			index = append(index, indexChange{hash: notifier.AddressKey(a), id: sub.ID})
		}
		if futures = append(futures, f); len(futures) == cap(futures) {
			if err := wait(); err != nil {
				return err
			}
		}
	}
	if err := wait(); err != nil {
		return err
	}
	// One write per shard of the index, after the subscribers are stored.
	return s.applyIndex(ctx, index)
}

// StaffAccounts is the staff account store on the varsel_staff bucket,
// keyed by the hex of the lower-case email (KV keys cannot hold "@").
type StaffAccounts struct {
	kv jetstream.KeyValue
	js jetstream.JetStream
}

var _ staff.AccountStore = (*StaffAccounts)(nil)

func staffKey(email string) string { return hex.EncodeToString([]byte(strings.ToLower(email))) }

// Get implements staff.AccountStore.
func (s *StaffAccounts) Get(ctx context.Context, email string) (*staff.Account, error) {
	a := new(staff.Account)
	if _, err := getJSON(ctx, s.kv, staffKey(email), a); err != nil {
		return nil, fmt.Errorf("staff account %s: %w", notifier.MaskEmail(email), errors.Unwrap(err))
	}
	return a, nil
}

// Put implements staff.AccountStore.
func (s *StaffAccounts) Put(ctx context.Context, a *staff.Account) error {
	return putJSON(ctx, s.kv, staffKey(a.Email), a)
}

// Delete implements staff.AccountStore.
func (s *StaffAccounts) Delete(ctx context.Context, email string) error {
	if _, err := s.Get(ctx, email); err != nil {
		return err
	}
	// Purge, not delete: nothing of the account stays in the bucket.
	if err := s.kv.Purge(ctx, staffKey(email)); err != nil {
		return fmt.Errorf("remove staff account: %w", err)
	}
	return nil
}

// List implements staff.AccountStore.
func (s *StaffAccounts) List(ctx context.Context) ([]*staff.Account, error) {
	var out []*staff.Account
	err := eachJSON(ctx, s.js, s.kv, ">", json.Unmarshal, func(a *staff.Account) error {
		out = append(out, a)
		return nil
	})
	slices.SortFunc(out, func(a, b *staff.Account) int { return strings.Compare(a.Email, b.Email) })
	return out, err
}

// StaffSessions is the session store on the varsel_sessions bucket, whose
// entries expire with the bucket's TTL (staff.DefaultLifetime).
type StaffSessions struct{ kv jetstream.KeyValue }

var _ staff.SessionStore = (*StaffSessions)(nil)

// Get implements staff.SessionStore.
func (s *StaffSessions) Get(ctx context.Context, key string) (*staff.Session, error) {
	v := new(staff.Session)
	if _, err := getJSON(ctx, s.kv, key, v); err != nil {
		return nil, err
	}
	return v, nil
}

// Put implements staff.SessionStore.
func (s *StaffSessions) Put(ctx context.Context, key string, v *staff.Session) error {
	return putJSON(ctx, s.kv, key, v)
}

// Delete implements staff.SessionStore.
func (s *StaffSessions) Delete(ctx context.Context, key string) error {
	if err := s.kv.Purge(ctx, key); err != nil {
		return fmt.Errorf("end session: %w", err)
	}
	return nil
}
