package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/varsel/varsel/notifier"
)

// The address index is the bucket varsel_addresses. It maps the hash of
// every address (notifier.AddressKey: the SHA-256 hex of the lower-cased
// email or the E.164 phone, so no plain address is stored) to the id of
// the subscriber who has it. The hashes are kept in 4,096 shards, one key
// each ("shard." + the hash's first three hex digits) holding a JSON map
// of hash to id: NATS keeps an index of every key in memory, and one key
// per address cost a 100,000-subscriber fan-out 120 MB of peak RSS
// (204 MB without the index, 325 MB with a key per address). Shards are
// updated with compare-and-set. FindByAddress reads one shard and checks
// the subscriber still has the address, so an entry left stale by a crash
// between the two writes finds nothing rather than the wrong subscriber.
const (
	addrPrefix  = "addr."
	shardPrefix = "shard."
	// addrIndexed marks an index built for every subscriber (set by
	// IndexAddresses once, for subscribers stored before it).
	addrIndexed = "shards-v1"
)

// addrKey is the per-address key of the sign-up decline records (and of
// the index as an earlier version kept it).
func addrKey(addr string) string { return addrPrefix + notifier.AddressKey(addr) }

func shardOf(hash string) string { return shardPrefix + hash[:3] }

var _ notifier.AddressFinder = (*Subscribers)(nil)

// FindByAddress implements notifier.AddressFinder: the first subscriber
// (by id) with the address.
func (s *Subscribers) FindByAddress(ctx context.Context, addr string) (*notifier.Subscriber, error) {
	all, err := s.FindAllByAddress(ctx, addr)
	if err != nil {
		return nil, err
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("address %s: %w", maskAddress(addr), notifier.ErrNotFound)
	}
	return all[0], nil
}

// FindAllByAddress returns every subscriber with the address (an import
// may give two ids one address), by id; none is not an error.
func (s *Subscribers) FindAllByAddress(ctx context.Context, addr string) ([]*notifier.Subscriber, error) {
	h := notifier.AddressKey(addr)
	m, _, err := s.shard(ctx, shardOf(h))
	if err != nil {
		return nil, fmt.Errorf("address %s: %w", maskAddress(addr), err)
	}
	var out []*notifier.Subscriber
	for _, id := range m[h] {
		sub, err := s.Get(ctx, id)
		if errors.Is(err, notifier.ErrNotFound) {
			continue // removed: the entry is stale
		}
		if err != nil {
			return nil, err
		}
		if sub.HasAddress(addr) {
			out = append(out, sub)
		}
	}
	return out, nil
}

func maskAddress(addr string) string {
	if len(addr) > 0 && addr[0] == '+' {
		return notifier.MaskPhone(addr)
	}
	return notifier.MaskEmail(addr)
}

// shard reads one shard of the index, hash to the ids (sorted) of the
// subscribers with that address; a missing one is empty.
func (s *Subscribers) shard(ctx context.Context, key string) (map[string][]string, uint64, error) {
	e, err := s.idx.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return map[string][]string{}, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	m, err := decodeShard(key, e.Value())
	return m, e.Revision(), err
}

// leaderShard is shard read from the stream's leader (see leaderGet).
func (s *Subscribers) leaderShard(ctx context.Context, key string) (map[string][]string, uint64, error) {
	b, rev, found, err := leaderGet(ctx, s.js, s.idx.Bucket(), key)
	if err != nil {
		return nil, 0, err
	}
	if !found {
		// Missing, or a removal's marker, which a create writes over.
		return map[string][]string{}, 0, nil
	}
	m, err := decodeShard(key, b)
	return m, rev, err
}

func decodeShard(key string, b []byte) (map[string][]string, error) {
	m := map[string][]string{}
	if err := json.Unmarshal(b, &m); err != nil {
		// A shard written when an address had one id.
		one := map[string]string{}
		if err1 := json.Unmarshal(b, &one); err1 != nil {
			return nil, fmt.Errorf("address index %s: %w", key, err)
		}
		for h, id := range one {
			m[h] = []string{id}
		}
	}
	return m, nil
}

// indexChange is what to do to one hash: point it at id, or (drop) remove
// it if it still points at id.
type indexChange struct {
	hash, id string
	drop     bool
}

// applyIndex applies changes, one compare-and-set write per shard touched.
func (s *Subscribers) applyIndex(ctx context.Context, changes []indexChange) error {
	for key, cs := range byShard(changes) {
		if err := s.updateShard(ctx, key, cs); err != nil {
			return err
		}
	}
	return nil
}

// byShard groups changes by the shard they change, in their order.
func byShard(changes []indexChange) map[string][]indexChange {
	m := map[string][]indexChange{}
	for _, c := range changes {
		m[shardOf(c.hash)] = append(m[shardOf(c.hash)], c)
	}
	return m
}

// updateShard applies cs to one shard with compare-and-set. The shard is
// read with a direct get, which on a cluster any replica may answer from
// behind, and a read that finds nothing to change writes nothing, so no
// compare-and-set would catch a stale one: an add that finds its entry
// there reads the shard again from the leader before it is taken as done
// (an entry dropped a moment ago on another node would otherwise stay
// dropped). A drop that finds nothing to drop is left at that: the worst a
// stale read leaves is a stale entry, which lookups skip.
func (s *Subscribers) updateShard(ctx context.Context, key string, cs []indexChange) error {
	adds := slices.ContainsFunc(cs, func(c indexChange) bool { return !c.drop })
	fromLeader := false
	for range maxCASRetries {
		read := s.shard
		if fromLeader {
			read = s.leaderShard
		}
		m, rev, err := read(ctx, key)
		if err != nil && !fromLeader && errors.Is(err, nats.ErrNoResponders) {
			// No replica answered the direct get (on a cluster just formed
			// none may listen yet): the leader's read waits for one.
			fromLeader = true
			m, rev, err = s.leaderShard(ctx, key)
		}
		if err != nil {
			return err
		}
		changed := applyShard(m, cs)
		if !changed && adds && !fromLeader {
			fromLeader = true
			continue
		}
		if !changed {
			return nil
		}
		if len(m) == 0 {
			// The shard's last entry went: no key is left for it.
			err = s.idx.Purge(ctx, key, jetstream.LastRevision(rev))
			if err == nil || errors.Is(err, jetstream.ErrKeyNotFound) {
				return nil
			}
			if !casLost(err) {
				return fmt.Errorf("address index %s: %w", key, err)
			}
			fromLeader = true
			continue
		}
		b, _ := json.Marshal(m)
		if rev == 0 {
			_, err = s.idx.Create(ctx, key, b)
		} else {
			_, err = s.idx.Update(ctx, key, b, rev)
		}
		if err == nil {
			return nil
		}
		if !casLost(err) {
			return fmt.Errorf("address index %s: %w", key, err)
		}
		// Another writer won, or the read came from a replica behind:
		// read the leader's from now on.
		fromLeader = true
	}
	return fmt.Errorf("address index %s: %w", key, notifier.ErrConflict)
}

// applyShard applies cs to the shard m and reports whether it changed.
func applyShard(m map[string][]string, cs []indexChange) bool {
	changed := false
	for _, c := range cs {
		ids := m[c.hash]
		i, has := slices.BinarySearch(ids, c.id)
		switch {
		case !c.drop && !has:
			m[c.hash], changed = slices.Insert(ids, i, c.id), true
		case c.drop && has:
			if ids = slices.Delete(ids, i, i+1); len(ids) == 0 {
				delete(m, c.hash)
			} else {
				m[c.hash] = ids
			}
			changed = true
		}
	}
	return changed
}

// reindex points the index at id for every address in after, and drops the
// entries of addresses in before that id no longer has.
func (s *Subscribers) reindex(ctx context.Context, id string, before, after []string) error {
	if slices.Equal(before, after) {
		return nil // most updates (a failure count, an opt-out) change no address
	}
	changes := indexChanges(id, before, after)
	if err := s.applyIndex(ctx, changes); err != nil {
		return fmt.Errorf("index subscriber %s: %w", id, err)
	}
	if err := s.readdDropped(ctx, changes, 1); err != nil {
		return fmt.Errorf("index subscriber %s: %w", id, err)
	}
	return nil
}

// readdDropped points the index again at the subscribers of changes' drops
// for the addresses they have by now. A record's writes are ordered (they
// are compare-and-set), the index writes that follow them are not: a
// writer that drops an address after another writer gave it back (an
// update undone at once, a removal racing a re-import) would leave that
// subscriber unfound by it for good, and a sign-up from it would make a
// second subscriber. The record is read after the drops were written, from
// the stream's leader: a writer that gives the address back after that
// read writes its own index entry after those drops (and, finding an entry
// there, confirms it on the leader: see updateShard). The records are read
// workers at a time; after a failed read the rest are not. An entry
// re-added for an address that is then taken away again stays, stale, and
// lookups skip it (FindAllByAddress checks the subscriber has the address).
func (s *Subscribers) readdDropped(ctx context.Context, changes []indexChange, workers int) error {
	dropped := map[string][]string{} // id -> hashes dropped
	for _, c := range changes {
		if c.drop {
			dropped[c.id] = append(dropped[c.id], c.hash)
		}
	}
	if len(dropped) == 0 {
		return nil
	}
	ids := make(chan string, len(dropped))
	for id := range dropped {
		ids <- id
	}
	close(ids)
	var mu sync.Mutex
	var readd []indexChange
	var first error
	var wg sync.WaitGroup
	for range min(max(workers, 1), len(dropped)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				mu.Lock()
				failed := first != nil
				mu.Unlock()
				if failed {
					return
				}
				var sub notifier.Subscriber
				found, err := leaderGetJSON(ctx, s.js, s.kv.Bucket(), id, &sub)
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				if found {
					has := map[string]bool{}
					for _, a := range sub.Addresses() {
						has[notifier.AddressKey(a)] = true
					}
					for _, h := range dropped[id] {
						if has[h] {
							readd = append(readd, indexChange{hash: h, id: id})
						}
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	if len(readd) == 0 {
		return nil
	}
	return s.applyIndex(ctx, readd)
}

// indexChanges points every address in after at id, and drops id from the
// addresses in before that it no longer has.
func indexChanges(id string, before, after []string) []indexChange {
	var changes []indexChange
	keep := map[string]bool{}
	for _, a := range after {
		h := notifier.AddressKey(a)
		keep[h] = true
		changes = append(changes, indexChange{hash: h, id: id})
	}
	for _, a := range before {
		if h := notifier.AddressKey(a); !keep[h] {
			changes = append(changes, indexChange{hash: h, id: id, drop: true})
		}
	}
	return changes
}

// IndexLater gathers the address index changes of many writes
// (PutIndexLater), for Apply to write with one compare-and-set a shard
// instead of one a subscriber: an import of 100,000 rows rewrote each of
// the 4,096 shards (about 2 KB) some 25 times, 200 MB of writes that made
// the import slow and the NATS server's block buffers most of its memory.
type IndexLater struct {
	s       *Subscribers
	mu      sync.Mutex
	changes []indexChange
}

// IndexLater starts gathering index changes.
func (s *Subscribers) IndexLater() *IndexLater { return &IndexLater{s: s} }

func (l *IndexLater) add(cs []indexChange) {
	l.mu.Lock()
	l.changes = append(l.changes, cs...)
	l.mu.Unlock()
}

// Apply writes the gathered changes, workers shards at a time, and starts
// over empty. Until it has, the subscribers written are not found by
// address (sign-up's check for an existing subscriber, inbound SMS). A
// dropped address that its subscriber has again by now (another writer set
// it back while the change waited) is indexed again (readdDropped).
func (l *IndexLater) Apply(ctx context.Context, workers int) error {
	l.mu.Lock()
	changes := l.changes
	l.changes = nil
	l.mu.Unlock()
	shards := byShard(changes)
	keys := make(chan string, len(shards))
	for k := range shards {
		keys <- k
	}
	close(keys)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range keys {
				if err := l.s.updateShard(ctx, k, shards[k]); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = l.s.readdDropped(ctx, changes, workers)
	}
	if first != nil {
		return fmt.Errorf("index the addresses: %w", first)
	}
	return nil
}

// IndexAddresses indexes every stored subscriber's addresses once: for a
// store written before the index existed, or before it was sharded. It
// returns how many subscribers it indexed; 0 when the index is built.
func (s *Subscribers) IndexAddresses(ctx context.Context) (int, error) {
	if _, err := s.idx.Get(ctx, addrIndexed); err == nil {
		return 0, nil
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, fmt.Errorf("index addresses: %w", err)
	}
	n := 0
	var changes []indexChange
	err := s.Each(ctx, func(sub *notifier.Subscriber) error {
		n++
		for _, a := range sub.Addresses() {
			changes = append(changes, indexChange{hash: notifier.AddressKey(a), id: sub.ID})
		}
		return nil
	})
	if err == nil {
		err = s.applyIndex(ctx, changes)
	}
	if err != nil {
		return n, fmt.Errorf("index addresses: %w", err)
	}
	// Index keys of earlier versions go: one per address beside the
	// subscribers, or in this bucket (two tokens: not the decline records).
	for _, kv := range []jetstream.KeyValue{s.kv, s.idx} {
		keys, err := kv.ListKeysFiltered(ctx, addrPrefix+"*")
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			continue
		}
		if err != nil {
			return n, fmt.Errorf("index addresses: %w", err)
		}
		var old []string
		for k := range keys.Keys() {
			old = append(old, k)
		}
		for _, k := range old {
			if err := kv.Purge(ctx, k); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
				return n, fmt.Errorf("index addresses: remove the old index key: %w", err)
			}
		}
	}
	if _, err := s.idx.PutString(ctx, addrIndexed, "1"); err != nil {
		return n, fmt.Errorf("index addresses: %w", err)
	}
	return n, nil
}

// A declined sign-up is remembered in the index's bucket, under
// addrKey(address) + declinedSuffix, as the Unix seconds of the decline:
// the address's hash and a time, nothing else (few addresses have one).
const declinedSuffix = ".declined"

// DeclineSignup remembers that the owner of addr cancelled a sign-up from
// its confirmation email at at (notifier/web.SignupDeclines).
func (s *Subscribers) DeclineSignup(ctx context.Context, addr string, at time.Time) error {
	if _, err := s.idx.PutString(ctx, addrKey(addr)+declinedSuffix, strconv.FormatInt(at.Unix(), 10)); err != nil {
		return fmt.Errorf("decline sign-up of %s: %w", maskAddress(addr), err)
	}
	return nil
}

// SignupDeclined returns when the owner of addr last cancelled a sign-up,
// if not before since; else the zero time, and a record older than since
// is erased.
func (s *Subscribers) SignupDeclined(ctx context.Context, addr string, since time.Time) (time.Time, error) {
	k := addrKey(addr) + declinedSuffix
	e, err := s.idx.Get(ctx, k)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("sign-up declines of %s: %w", maskAddress(addr), err)
	}
	sec, err := strconv.ParseInt(string(e.Value()), 10, 64)
	if at := time.Unix(sec, 0); err == nil && !at.Before(since.Truncate(time.Second)) {
		return at, nil
	}
	// Past its time: erase it, unless a new decline replaced it meanwhile.
	err = s.idx.Purge(ctx, k, jetstream.LastRevision(e.Revision()))
	if err != nil && !casLost(err) {
		return time.Time{}, fmt.Errorf("sign-up declines of %s: %w", maskAddress(addr), err)
	}
	return time.Time{}, nil
}
