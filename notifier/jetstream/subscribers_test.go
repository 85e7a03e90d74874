package jetstream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/varsel/varsel/notifier"
)

// TestAddressIndex: Put, Update, PutMany and Delete keep the address index;
// FindByAddress finds by email in any case and by phone, never by a stale
// entry; no plain address is a key; Each does not see the index.
func TestAddressIndex(t *testing.T) {
	c := startConn(t, t.TempDir())
	ctx := context.Background()
	s := c.Subscribers
	find := func(addr string) string {
		t.Helper()
		sub, err := s.FindByAddress(ctx, addr)
		if errors.Is(err, notifier.ErrNotFound) {
			return ""
		}
		if err != nil {
			t.Fatalf("find %s: %v", addr, err)
		}
		return sub.ID
	}
	if err := s.Put(ctx, &notifier.Subscriber{ID: "kari", Email: "Kari@Example.com", Phone: "+4792211333"}); err != nil {
		t.Fatal(err)
	}
	if got := find("kari@example.COM"); got != "kari" {
		t.Errorf("by email: %q", got)
	}
	if got := find("+4792211333"); got != "kari" {
		t.Errorf("by phone: %q", got)
	}
	if _, err := s.Update(ctx, "kari", func(sub *notifier.Subscriber) error { sub.Email = "kari@example.org"; return nil }); err != nil {
		t.Fatal(err)
	}
	if find("kari@example.com") != "" || find("kari@example.org") != "kari" {
		t.Errorf("after changing the email: old %q, new %q", find("kari@example.com"), find("kari@example.org"))
	}
	if err := s.PutMany(ctx, 2, func(i int) *notifier.Subscriber {
		return &notifier.Subscriber{ID: []string{"a", "b"}[i], Email: []string{"a@example.com", "b@example.com"}[i]}
	}); err != nil {
		t.Fatal(err)
	}
	if find("b@example.com") != "b" {
		t.Error("PutMany did not index")
	}
	keys, err := s.idx.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if subs, _ := s.kv.Keys(ctx); len(subs) != 3 {
		t.Errorf("the subscribers bucket holds %v, want the 3 subscribers only (the index is a bucket of its own)", subs)
	}
	for _, k := range keys {
		if strings.Contains(k, "example") || strings.Contains(k, "92211333") {
			t.Errorf("a plain address in a key: %s", k)
		}
	}
	n := 0
	if err := s.Each(ctx, func(sub *notifier.Subscriber) error { n++; return nil }); err != nil || n != 3 {
		t.Errorf("Each saw %d subscribers (%v), want 3", n, err)
	}
	if err := s.Delete(ctx, "kari"); err != nil {
		t.Fatal(err)
	}
	if find("kari@example.org") != "" || find("+4792211333") != "" {
		t.Error("Delete left the index entries")
	}
	if find("a@example.com") != "a" || find("b@example.com") != "b" {
		t.Error("Delete of kari dropped the entries of a and b")
	}
	keys, _ = s.idx.Keys(ctx)
	if len(keys) > 3 { // at most a shard each for a and b, and the marker
		t.Errorf("index keys after delete: %v", keys)
	}
}

// TestIndexAddressesBackfills: subscribers stored before the index are
// indexed once.
func TestIndexAddressesBackfills(t *testing.T) {
	c := startConn(t, t.TempDir())
	ctx := context.Background()
	if _, err := c.Subscribers.kv.Put(ctx, "old", []byte(`{"id":"old","email":"old@example.com"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribers.FindByAddress(ctx, "old@example.com"); !errors.Is(err, notifier.ErrNotFound) {
		t.Fatalf("before: %v", err)
	}
	if n, err := c.Subscribers.IndexAddresses(ctx); err != nil || n != 1 {
		t.Fatalf("IndexAddresses = %d, %v", n, err)
	}
	if sub, err := c.Subscribers.FindByAddress(ctx, "old@example.com"); err != nil || sub.ID != "old" {
		t.Fatalf("after: %v", err)
	}
	if n, err := c.Subscribers.IndexAddresses(ctx); err != nil || n != 0 {
		t.Fatalf("again = %d, %v", n, err)
	}
}

// TestOldIndexKeysLeaveTheSubscribersBucket: an index kept beside the
// subscribers by an earlier version is moved to its own bucket on start.
func TestOldIndexKeysLeaveTheSubscribersBucket(t *testing.T) {
	c := startConn(t, t.TempDir())
	ctx := context.Background()
	if _, err := c.Subscribers.kv.Put(ctx, "old", []byte(`{"id":"old","email":"old@example.com"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribers.kv.Put(ctx, addrKey("old@example.com"), []byte("old")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribers.idx.Put(ctx, addrKey("old@example.com"), []byte("old")); err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribers.idx.Delete(ctx, addrIndexed); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribers.IndexAddresses(ctx); err != nil {
		t.Fatal(err)
	}
	if keys, _ := c.Subscribers.kv.Keys(ctx); len(keys) != 1 || keys[0] != "old" {
		t.Errorf("the subscribers bucket holds %v, want only old", keys)
	}
	if keys, _ := c.Subscribers.idx.Keys(ctx); slices.ContainsFunc(keys, func(k string) bool { return strings.HasPrefix(k, addrPrefix) }) {
		t.Errorf("an index key per address is left: %v", keys)
	}
	if sub, err := c.Subscribers.FindByAddress(ctx, "old@example.com"); err != nil || sub.ID != "old" {
		t.Errorf("after the move: %v", err)
	}
}

// TestTwoSubscribersOneAddress: an import may give two ids one address;
// both are found, and removing one leaves the other findable.
func TestTwoSubscribersOneAddress(t *testing.T) {
	c := startConn(t, t.TempDir())
	ctx := context.Background()
	s := c.Subscribers
	for _, id := range []string{"kari-b", "kari-a"} {
		if err := s.Put(ctx, &notifier.Subscriber{ID: id, Email: "kari@example.com"}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.FindAllByAddress(ctx, "KARI@example.com")
	if err != nil || len(all) != 2 || all[0].ID != "kari-a" || all[1].ID != "kari-b" {
		t.Fatalf("FindAllByAddress = %v, %v", all, err)
	}
	if err := s.Delete(ctx, "kari-a"); err != nil {
		t.Fatal(err)
	}
	if sub, err := s.FindByAddress(ctx, "kari@example.com"); err != nil || sub.ID != "kari-b" {
		t.Fatalf("after removing kari-a: %v, %v", sub, err)
	}
}

// TestSubscribersGetMany reads several subscribers in one direct get: the
// latest revision of each that exists, none of a removed one or one never
// added, and nothing at all (not an error) when none exists.
func TestSubscribersGetMany(t *testing.T) {
	c := startConn(t, t.TempDir())
	ctx := context.Background()
	addSubscribers(t, c, 4, fullSubscriber)
	if _, err := c.Subscribers.Update(ctx, "sub-00002", func(s *notifier.Subscriber) error { s.Locale = "en"; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribers.Delete(ctx, "sub-00001"); err != nil {
		t.Fatal(err)
	}
	got, err := c.Subscribers.GetMany(ctx, []string{"sub-00000", "sub-00001", "sub-00002", "sub-00003", "never-added"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got["sub-00000"] == nil || got["sub-00003"] == nil || got["sub-00001"] != nil {
		t.Fatalf("got %v, want sub-00000, sub-00002 and sub-00003", got)
	}
	if s := got["sub-00002"]; s == nil || s.Locale != "en" || s.Email != "user2@example.com" {
		t.Errorf("sub-00002 = %+v, want its latest revision", s)
	}
	none, err := c.Subscribers.GetMany(ctx, []string{"sub-00001", "never-added"})
	if err != nil || len(none) != 0 {
		t.Errorf("none existing: %v, %v; want an empty map", none, err)
	}
	// An id that cannot be read with the others is marked for a read of
	// its own (nil), and the rest are read.
	if m, err := c.Subscribers.GetMany(ctx, []string{"sub-00000", "bad.id"}); err != nil || m["sub-00000"] == nil {
		t.Errorf("with an invalid id: %v, %v; want sub-00000 read", m, err)
	} else if s, ok := m["bad.id"]; !ok || s != nil {
		t.Errorf("the invalid id: %v, %v; want it marked to be read alone", s, ok)
	}
	// Reads at once do not take each other's answers.
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("sub-%05d", []int{0, 2, 3}[i%3])
			m, err := c.Subscribers.GetMany(ctx, []string{id, "never-added"})
			if err != nil || len(m) != 1 || m[id] == nil || m[id].ID != id {
				t.Errorf("read %d of %s: %v, %v", i, id, m, err)
			}
		}()
	}
	wg.Wait()
}

// TestPutKeepsTheSecretAndSkipsWhatDidNotChange: storing a subscriber
// again without a webhook secret (an import run again) keeps the one they
// have, so no integrator's signatures break; a secret given replaces it;
// and a Put that changes nothing makes no new revision (in this erasable
// bucket each one rewrites a block).
func TestPutKeepsTheSecretAndSkipsWhatDidNotChange(t *testing.T) {
	c := startConn(t, t.TempDir())
	ctx := context.Background()
	row := func(email string) *notifier.Subscriber {
		s := &notifier.Subscriber{ID: "hook-1", Email: email, WebhookURL: "https://hooks.example.com/a"}
		if err := s.Normalize(); err != nil {
			t.Fatal(err)
		}
		return s
	}
	first := row("a@example.com")
	if err := c.Subscribers.Put(ctx, first); err != nil {
		t.Fatal(err)
	}
	stored, err := c.Subscribers.Get(ctx, "hook-1")
	if err != nil || stored.WebhookSecret != first.WebhookSecret {
		t.Fatalf("stored %+v, %v; want the generated secret", stored, err)
	}
	revision := func() uint64 {
		e, err := c.Subscribers.kv.Get(ctx, "hook-1")
		if err != nil {
			t.Fatal(err)
		}
		return e.Revision()
	}
	rev := revision()

	again := row("a@example.com")
	if err := c.Subscribers.Put(ctx, again); err != nil {
		t.Fatal(err)
	}
	if again.WebhookSecret != first.WebhookSecret {
		t.Errorf("the caller was told secret %q, want the kept %q", again.WebhookSecret, first.WebhookSecret)
	}
	if got := revision(); got != rev {
		t.Errorf("an identical Put made revision %d (was %d)", got, rev)
	}

	changed := row("b@example.com")
	if err := c.Subscribers.Put(ctx, changed); err != nil {
		t.Fatal(err)
	}
	if stored, _ := c.Subscribers.Get(ctx, "hook-1"); stored.Email != "b@example.com" || stored.WebhookSecret != first.WebhookSecret {
		t.Errorf("after a new address: %s with secret %q, want b@example.com keeping %q", stored.Email, stored.WebhookSecret, first.WebhookSecret)
	}
	if revision() == rev {
		t.Error("a changed subscriber was not written")
	}

	given := &notifier.Subscriber{ID: "hook-1", Email: "b@example.com", WebhookURL: "https://hooks.example.com/a", WebhookSecret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
	if err := c.Subscribers.Put(ctx, given); err != nil {
		t.Fatal(err)
	}
	if stored, _ := c.Subscribers.Get(ctx, "hook-1"); stored.WebhookSecret != given.WebhookSecret {
		t.Errorf("a given secret was not stored: %q", stored.WebhookSecret)
	}
}

// getHookKV runs before once, on the first read of key, after the read:
// another writer acting between that read and the write that follows it.
type getHookKV struct {
	jetstream.KeyValue
	key    string
	before func()
	once   sync.Once
}

func (h *getHookKV) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	e, err := h.KeyValue.Get(ctx, key)
	if key == h.key {
		h.once.Do(h.before)
	}
	return e, err
}

// Two writers create one subscriber at once (a sign-up link opened twice,
// an API create sent twice), and the first also opts out, all between the
// second's read that found the id missing and its write: the second's
// create fails and is made again on the first one's record, so the
// opt-out, the first creation time and the secret handed to the first
// stand, with the second's changes, and no replaced revision stays in
// the store. The same whether the second brings the same record or
// another.
func TestConcurrentCreatorsKeepEachOthersChanges(t *testing.T) {
	c := startConn(t, t.TempDir())
	ctx := context.Background()
	real := c.Subscribers.kv.(erasingKV)
	for i, locale := range []string{"nb", "en"} {
		t.Run("second locale "+locale, func(t *testing.T) {
			theirs := fullSubscriber(10 + i)
			var first *notifier.Subscriber
			hook := &getHookKV{KeyValue: real.KeyValue, key: theirs.ID, before: func() {
				if err := c.Subscribers.Put(ctx, theirs); err != nil {
					t.Error(err)
				}
				var err error
				first, err = c.Subscribers.Update(ctx, theirs.ID, func(s *notifier.Subscriber) error {
					s.Suppressed = map[notifier.ChannelName]notifier.Suppression{notifier.Email: {Reason: notifier.ReasonOptedOut, At: time.Now().UTC()}}
					return nil
				})
				if err != nil {
					t.Error(err)
				}
				time.Sleep(5 * time.Millisecond) // so the creation times differ
			}}
			racing := *c.Subscribers
			racing.kv = erasingKV{KeyValue: hook, st: real.st}
			ours := fullSubscriber(10 + i)
			ours.Locale = locale
			if err := racing.Put(ctx, ours); err != nil {
				t.Fatal(err)
			}
			if first == nil {
				t.Fatal("the first writer did not run")
			}
			got, err := c.Subscribers.Get(ctx, ours.ID)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := got.Suppressed[notifier.Email]; !ok {
				t.Errorf("the first writer's opt-out was lost: suppressed %v", got.Suppressed)
			}
			if got.Locale != locale {
				t.Errorf("locale %q, want the second writer's %q", got.Locale, locale)
			}
			if !got.CreatedAt.Equal(first.CreatedAt) || got.WebhookSecret != first.WebhookSecret {
				t.Errorf("created %v with secret %q, want the first writer's %v and %q", got.CreatedAt, got.WebhookSecret, first.CreatedAt, first.WebhookSecret)
			}
			subj := "$KV." + SubscribersKV + "." + ours.ID
			oldest, err := real.st.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(subj))
			if err != nil {
				t.Fatal(err)
			}
			last, err := real.st.GetLastMsgForSubject(ctx, subj)
			if err != nil {
				t.Fatal(err)
			}
			if oldest.Sequence != last.Sequence {
				t.Errorf("revisions %d and %d of %s are both stored: the replaced one was not erased", oldest.Sequence, last.Sequence, ours.ID)
			}
			if found, err := c.Subscribers.FindByAddress(ctx, ours.Email); err != nil || found.ID != ours.ID {
				t.Errorf("find by address: %v, %v", found, err)
			}
		})
	}
}

// Updates are compare-and-set: of two at once, the one that loses is made
// again on the other's record, so both changes stand.
func TestRacingUpdatesBothStand(t *testing.T) {
	c := startConn(t, t.TempDir())
	ctx := context.Background()
	if err := c.Subscribers.Put(ctx, fullSubscriber(1)); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		var wg sync.WaitGroup
		for _, ch := range []notifier.ChannelName{notifier.Email, notifier.Webhook} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := c.Subscribers.Update(ctx, "sub-00001", func(s *notifier.Subscriber) error {
					if s.Failures == nil {
						s.Failures = map[notifier.ChannelName]int{}
					}
					s.Failures[ch]++
					return nil
				}); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	got, err := c.Subscribers.Get(ctx, "sub-00001")
	if err != nil {
		t.Fatal(err)
	}
	if got.Failures[notifier.Email] != 5 || got.Failures[notifier.Webhook] != 5 {
		t.Errorf("failures after five pairs of racing updates: %v, want five each", got.Failures)
	}
}

// Writes whose index is left to IndexLater are found by address once it
// is applied, with one write a shard; an address changed that way is no
// longer found under the old one; and rows written again unchanged after
// an import that stopped before its index was written get indexed.
func TestIndexLater(t *testing.T) {
	c := startConn(t, t.TempDir())
	ctx := context.Background()
	st, err := c.JS.Stream(ctx, "KV_"+AddressesKV)
	if err != nil {
		t.Fatal(err)
	}
	lastSeq := func() uint64 {
		t.Helper()
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.LastSeq
	}
	const n = 300
	later := c.Subscribers.IndexLater()
	shards := map[string]bool{}
	for i := range n {
		s := fullSubscriber(i)
		if err := c.Subscribers.PutIndexLater(ctx, s, later); err != nil {
			t.Fatal(err)
		}
		for _, a := range s.Addresses() {
			shards[shardOf(notifier.AddressKey(a))] = true
		}
	}
	if _, err := c.Subscribers.FindByAddress(ctx, fullSubscriber(7).Email); !errors.Is(err, notifier.ErrNotFound) {
		t.Fatalf("found by address before the index was applied: %v", err)
	}
	seq := lastSeq()
	if err := later.Apply(ctx, 4); err != nil {
		t.Fatal(err)
	}
	if writes := lastSeq() - seq; writes != uint64(len(shards)) {
		t.Errorf("%d index writes for %d subscribers in %d shards, want one a shard", writes, n, len(shards))
	}
	for i := range n {
		s := fullSubscriber(i)
		for _, a := range []string{s.Email, s.Phone} {
			if got, err := c.Subscribers.FindByAddress(ctx, a); err != nil || got.ID != s.ID {
				t.Fatalf("find %s: %v, %v", notifier.MaskEmail(a), got, err)
			}
		}
	}

	moved := fullSubscriber(1)
	moved.Email = "moved@example.com"
	if err := c.Subscribers.PutIndexLater(ctx, moved, later); err != nil {
		t.Fatal(err)
	}
	if err := later.Apply(ctx, 4); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Subscribers.FindByAddress(ctx, "moved@example.com"); err != nil || got.ID != moved.ID {
		t.Errorf("find the new address: %v, %v", got, err)
	}
	oldHash := notifier.AddressKey(fullSubscriber(1).Email)
	if m, _, err := c.Subscribers.shard(ctx, shardOf(oldHash)); err != nil || slices.Contains(m[oldHash], moved.ID) {
		t.Errorf("the old address's entry after the move: %v, %v; want it dropped", m[oldHash], err)
	}

	// A move whose drop waits while another writer sets the address back:
	// the drop is not applied.
	back := fullSubscriber(2)
	back.Email = "away@example.com"
	if err := c.Subscribers.PutIndexLater(ctx, back, later); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribers.Update(ctx, back.ID, func(s *notifier.Subscriber) error {
		s.Email = fullSubscriber(2).Email
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := later.Apply(ctx, 4); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Subscribers.FindByAddress(ctx, fullSubscriber(2).Email); err != nil || got.ID != back.ID {
		t.Errorf("the address set back while its drop waited: %v, %v; want it found", got, err)
	}

	// An import stopped before its index: the rows are there, unfound.
	stopped := c.Subscribers.IndexLater()
	for i := n; i < n+20; i++ {
		if err := c.Subscribers.PutIndexLater(ctx, fullSubscriber(i), stopped); err != nil {
			t.Fatal(err)
		}
	}
	again := c.Subscribers.IndexLater()
	for i := n; i < n+20; i++ {
		if err := c.Subscribers.PutIndexLater(ctx, fullSubscriber(i), again); err != nil {
			t.Fatal(err)
		}
	}
	if err := again.Apply(ctx, 4); err != nil {
		t.Fatal(err)
	}
	for i := n; i < n+20; i++ {
		if got, err := c.Subscribers.FindByAddress(ctx, fullSubscriber(i).Email); err != nil || got.ID != fullSubscriber(i).ID {
			t.Fatalf("after the import ran again, find %d: %v, %v", i, got, err)
		}
	}
}

// A Put that changes nothing still makes sure the index has the
// subscriber's addresses: a caller retrying a write whose answer was lost
// finds the record done, and must not leave it unfound by address.
func TestUnchangedPutRestoresTheIndex(t *testing.T) {
	c := startConn(t, t.TempDir())
	ctx := context.Background()
	s := fullSubscriber(5)
	if err := c.Subscribers.Put(ctx, s); err != nil {
		t.Fatal(err)
	}
	h := notifier.AddressKey(s.Email)
	if err := c.Subscribers.updateShard(ctx, shardOf(h), []indexChange{{hash: h, id: s.ID, drop: true}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribers.FindByAddress(ctx, s.Email); !errors.Is(err, notifier.ErrNotFound) {
		t.Fatalf("found after its entry was dropped: %v", err)
	}
	if err := c.Subscribers.Put(ctx, fullSubscriber(5)); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Subscribers.FindByAddress(ctx, s.Email); err != nil || got.ID != s.ID {
		t.Errorf("after the same Put again: %v, %v; want it found", got, err)
	}
}

// An index drop written after another writer gave the address back (the
// two writers' record writes are ordered, their index writes are not)
// leaves the subscriber found by it: by an update undone at once, and by a
// removal that a re-creation overtook.
func TestALateDropKeepsAnAddressGivenBack(t *testing.T) {
	checkLateDrops(t, startConn(t, t.TempDir()))
}

func checkLateDrops(t *testing.T, c *Conn) {
	t.Helper()
	ctx := context.Background()
	s := fullSubscriber(40)
	if err := c.Subscribers.Put(ctx, s); err != nil {
		t.Fatal(err)
	}
	found := func(addr string) bool {
		t.Helper()
		got, err := c.Subscribers.FindByAddress(ctx, addr)
		if err != nil && !errors.Is(err, notifier.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil && got.ID == s.ID
	}
	// A writer moved the email away and another set it back; the first
	// one's index changes come last.
	if err := c.Subscribers.reindex(ctx, s.ID, s.Addresses(), []string{"elsewhere@example.com", s.Phone}); err != nil {
		t.Fatal(err)
	}
	if !found(s.Email) {
		t.Errorf("%s not found after a late drop: the record still has it", notifier.MaskEmail(s.Email))
	}
	// A removal whose index drops come after the subscriber was made again.
	if err := c.Subscribers.reindex(ctx, s.ID, s.Addresses(), nil); err != nil {
		t.Fatal(err)
	}
	for _, a := range s.Addresses() {
		if !found(a) {
			t.Errorf("%s not found after a removal's late drops: the subscriber was made again with it", maskAddress(a))
		}
	}
	// The drops of a removal that nothing overtook stand.
	if err := c.Subscribers.Delete(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	h := notifier.AddressKey(s.Email)
	if m, _, err := c.Subscribers.shard(ctx, shardOf(h)); err != nil || slices.Contains(m[h], s.ID) {
		t.Errorf("the removed subscriber's index entry: %v, %v; want it dropped", m[h], err)
	}
}
