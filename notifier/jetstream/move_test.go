package jetstream

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// oldStore starts a server whose store holds an ordinary subscribers
// bucket of n keys, as an older version made it, and returns its URL.
func oldStore(t *testing.T, n int) string {
	t.Helper()
	srv, err := StartServer(filepath.Join(t.TempDir(), "jetstream"), "127.0.0.1:0", quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	c := rawConn(t, srv.ClientURL())
	old, err := c.JS.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: SubscribersKV, History: 1, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := old.Put(context.Background(), fmt.Sprintf("s%05d", i), []byte(fmt.Sprintf(`{"id":"s%05d"}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	return srv.ClientURL()
}

// rawConn is a connection with no set-up made, as an instance starts.
func rawConn(t *testing.T, url string) *Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	return &Conn{NC: nc, JS: js, logger: quietLogger()}
}

// movedWhole checks the bucket holds the n keys, each once, in an
// erasable stream, and the backup is gone.
func movedWhole(t *testing.T, url string, n int) {
	t.Helper()
	c := rawConn(t, url)
	ctx := context.Background()
	st, err := c.JS.Stream(ctx, "KV_"+SubscribersKV)
	if err != nil {
		t.Fatalf("after the move: %v", err)
	}
	if info := st.CachedInfo(); info.Config.DenyDelete || info.State.Msgs != uint64(n) {
		t.Errorf("after the move the stream denies deletes: %v, holds %d messages for %d subscribers", info.Config.DenyDelete, info.State.Msgs, n)
	}
	kv, err := c.JS.KeyValue(ctx, SubscribersKV)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, n / 2, n - 1} {
		if e, err := kv.Get(ctx, fmt.Sprintf("s%05d", i)); err != nil || string(e.Value()) != fmt.Sprintf(`{"id":"s%05d"}`, i) {
			t.Errorf("subscriber %d after the move: %v", i, err)
		}
	}
	if _, err := c.JS.Stream(ctx, "VARSEL_MOVE_"+SubscribersKV); err == nil {
		t.Error("the backup stream of the move is left behind")
	}
}

// setupBucket is the subscribers bucket's part of set-up, as setup runs it.
func setupBucket(ctx context.Context, c *Conn) error {
	return whileClusterForms(ctx, func() error {
		_, err := c.erasableBucket(ctx, SubscribersKV, 1)
		return err
	})
}

// stoppedMover makes the move's backup as an instance "gone" that then
// stopped, with its claim or, as the last version left it, without.
func stoppedMover(t *testing.T, url string, claimed bool) (*Conn, *bucketMove) {
	t.Helper()
	gone := rawConn(t, url)
	m := newBucketMove(gone, SubscribersKV, 1)
	m.me = "gone"
	if _, err := gone.JS.CreateStream(context.Background(), m.backupConfig()); err != nil {
		t.Fatal(err)
	}
	if claimed {
		if _, err := gone.JS.Publish(context.Background(), m.subj+moveClaim, []byte(m.me)); err != nil {
			t.Fatal(err)
		}
	}
	return gone, m
}

// TestInstancesMovingABucketTogetherLoseNoSubscriber: two instances
// started on a store to move, together or one while the other copies,
// leave the move to one of them; before, the second purged the backup
// the first was filling, and the first restored what was left (908 of
// 5,000 subscribers lost), or one waited for ever on a backup deleted
// under it.
func TestInstancesMovingABucketTogetherLoseNoSubscriber(t *testing.T) {
	const n = 3000
	for _, midCopy := range []bool{false, true} {
		url := oldStore(t, n)
		a, b := rawConn(t, url), rawConn(t, url)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		var wg sync.WaitGroup
		var errA, errB error
		wg.Go(func() { errA = setupBucket(ctx, a) })
		for midCopy {
			st, err := b.JS.Stream(ctx, "VARSEL_MOVE_"+SubscribersKV)
			if err == nil && st.CachedInfo().State.Msgs >= n/2 {
				break
			}
			if ctx.Err() != nil {
				t.Fatal("the first instance's backup was never seen half full")
			}
			time.Sleep(time.Millisecond)
		}
		wg.Go(func() { errB = setupBucket(ctx, b) })
		wg.Wait()
		cancel()
		if errA != nil || errB != nil {
			t.Fatalf("mid-copy %v: set-up failed: %v; %v", midCopy, errA, errB)
		}
		movedWhole(t, url, n)
	}
}

// TestMoveLeftByAStoppedInstanceIsTakenOver: a move whose instance
// stopped (nothing written to its backup for moveStale) is finished by
// the next one, whether it stopped while copying (in this version's form
// or, unclaimed, in the last one's) or while restoring, and nothing is
// restored twice.
func TestMoveLeftByAStoppedInstanceIsTakenOver(t *testing.T) {
	defer func(d time.Duration) { moveStale = d }(moveStale)
	moveStale = 500 * time.Millisecond
	const n = 500
	ctx := context.Background()
	for _, stopped := range []string{"copying", "copying, unclaimed, as the last version did", "restoring"} {
		url := oldStore(t, n)
		unclaimed := stopped == "copying, unclaimed, as the last version did"
		gone, m := stoppedMover(t, url, !unclaimed)
		prefix := m.subj + moveKeys
		if unclaimed {
			prefix = m.subj
		}
		switch stopped {
		case "restoring":
			if _, err := m.copyFrom(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := gone.JS.Publish(ctx, m.subj+moveComplete, nil); err != nil {
				t.Fatal(err)
			}
			// The old stream replaced, and a part restored.
			if err := gone.JS.DeleteStream(ctx, m.cfg.Name); err != nil {
				t.Fatal(err)
			}
			if _, err := gone.JS.CreateStream(ctx, m.cfg); err != nil {
				t.Fatal(err)
			}
			prefix = "$KV." + SubscribersKV + "."
			fallthrough
		default:
			for i := range n / 2 {
				if _, err := gone.JS.Publish(ctx, prefix+fmt.Sprintf("s%05d", i), []byte(fmt.Sprintf(`{"id":"s%05d"}`, i))); err != nil {
					t.Fatal(err)
				}
			}
		}
		next := rawConn(t, url)
		start := time.Now()
		if err := setupBucket(ctx, next); err != nil {
			t.Fatalf("stopped while %s: the next instance's set-up: %v", stopped, err)
		}
		if took := time.Since(start); took < moveStale && !unclaimed {
			t.Errorf("stopped while %s: taken over after %v, before its backup stood still for %v", stopped, took, moveStale)
		}
		movedWhole(t, url, n)
	}
}

// TestBackupBesideAMovedBucket: a backup found beside a bucket already
// erasable is removed when it holds no copy (made after the move had
// ended), and kept, with set-up refused, when it holds copies but was
// never marked whole (the version before this one marked none): then
// nobody knows whether the bucket or the backup is whole.
func TestBackupBesideAMovedBucket(t *testing.T) {
	defer func(d time.Duration) { moveStale = d }(moveStale)
	moveStale = 300 * time.Millisecond
	const n = 200
	ctx := context.Background()
	for _, copies := range []bool{false, true} {
		url := oldStore(t, n)
		if err := setupBucket(ctx, rawConn(t, url)); err != nil {
			t.Fatal(err)
		}
		gone, m := stoppedMover(t, url, true)
		if copies {
			for i := range n {
				if _, err := gone.JS.Publish(ctx, m.subj+fmt.Sprintf("s%05d", i), []byte(fmt.Sprintf(`{"id":"s%05d"}`, i))); err != nil {
					t.Fatal(err)
				}
			}
		}
		err := setupBucket(ctx, rawConn(t, url))
		if !copies {
			if err != nil {
				t.Fatalf("a backup with no copy: %v", err)
			}
			movedWhole(t, url, n)
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "restore it by hand") {
			t.Errorf("a backup with copies never marked whole, beside a moved bucket: set-up says %v", err)
		}
		if st, err := gone.JS.Stream(ctx, m.name); err != nil || st.CachedInfo().State.Msgs < n {
			t.Errorf("the backup with the copies is gone or emptied (%v)", err)
		}
	}
}

// TestClaimantWithAStaleBeatStopsRestoring: a claimant whose own last
// stored beat is older than a third of moveStale (the others may be
// taking the move over) writes nothing more.
func TestClaimantWithAStaleBeatStopsRestoring(t *testing.T) {
	url := oldStore(t, 0)
	c := rawConn(t, url)
	ctx := context.Background()
	m := newBucketMove(c, SubscribersKV, 1)
	backup, err := c.JS.CreateStream(ctx, m.backupConfig())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := c.JS.Publish(ctx, m.subj+moveKeys+fmt.Sprintf("s%05d", i), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.JS.DeleteStream(ctx, m.cfg.Name); err != nil {
		t.Fatal(err)
	}
	st, err := c.JS.CreateStream(ctx, m.cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.lastBeat = time.Now().Add(-moveStale / 2)
	if err := m.restore(ctx, backup); !errors.Is(err, errMoveLost) {
		t.Errorf("restore with a stale beat: %v, want errMoveLost", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Errorf("restore with a stale beat wrote %d entries", info.State.Msgs)
	}
	m.lastBeat = time.Now()
	if err := m.restore(ctx, backup); err != nil {
		t.Fatalf("restore with a fresh beat: %v", err)
	}
	if info, _ := st.Info(ctx); info.State.Msgs != 10 {
		t.Errorf("restore with a fresh beat wrote %d of 10 entries", info.State.Msgs)
	}
}
