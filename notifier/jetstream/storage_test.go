package jetstream

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// TestRestartOnAStoreWithRoomForOneCopy: a store whose disk holds the
// streams' reservations once (about 1.3 GiB of the 1.75 here) is set up
// again at every start. NATS weighs a create's reservation against the
// free store before it looks for the name, so the restart was refused
// with "insufficient storage resources" on a 2 GiB volume; a store with
// room for none names what it needs.
func TestRestartOnAStoreWithRoomForOneCopy(t *testing.T) {
	start := func(maxStore int64) *server.Server {
		s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
			JetStreamMaxStore: maxStore, NoSigs: true, MaxPayload: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		s.SetLoggerV2(&serverLog{l: quietLogger()}, false, false, false)
		go s.Start()
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatal("nats-server did not start")
		}
		t.Cleanup(s.Shutdown)
		return s
	}
	s := start(7 << 28) // 1.75 GiB
	for i := range 3 {
		c, err := Connect(context.Background(), Config{URL: s.ClientURL()}, quietLogger())
		if err != nil {
			t.Fatalf("start %d on a store with room for one copy: %v", i+1, err)
		}
		c.Close()
	}
	small := start(512 << 20)
	_, err := Connect(context.Background(), Config{URL: small.ClientURL()}, quietLogger())
	if err == nil || !strings.Contains(err.Error(), "give the store (VARSEL_DATA_DIR") || !strings.Contains(err.Error(), "GiB for VARSEL_") {
		t.Errorf("start on a store too small: %v, want the reservation named", err)
	}
}

// TestReadySaysWhenNotReady: Ready fails while the delivery log has not
// been written for longer than logFailingFor (a full disk: /readyz said
// ready while nothing could be recorded), not during an election, not
// after the failures have stopped, and from Drain on (it said ready
// through the whole shutdown).
func TestReadySaysWhenNotReady(t *testing.T) {
	c, err := Connect(context.Background(), Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0"}, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := c.Ready(ctx); err != nil {
		t.Fatalf("a new store: %v", err)
	}
	now := time.Now()
	c.Deliveries.failing.Store(&logFailure{since: now.Add(-20 * time.Second), last: now, err: "no leader"})
	if err := c.Ready(ctx); err != nil {
		t.Errorf("a log failing for 20 s (an election, within a batch's retries): %v", err)
	}
	c.Deliveries.failing.Store(&logFailure{since: now.Add(-time.Minute), last: now, err: "no space left on device"})
	if err := c.Ready(ctx); err == nil || !strings.Contains(err.Error(), "delivery log not written for 1m0s: no space left on device") {
		t.Errorf("a log failing for a minute: %v", err)
	}
	c.Deliveries.failing.Store(&logFailure{since: now.Add(-5 * time.Minute), last: now.Add(-2 * time.Minute), err: "no space left on device"})
	if err := c.Ready(ctx); err != nil {
		t.Errorf("a failure that has not come again for 2 minutes: %v", err)
	}
	c.Deliveries.failing.Store(nil)
	c.Drain()
	if err := c.Ready(ctx); err == nil || !strings.Contains(err.Error(), "shutting down") {
		t.Errorf("draining: %v", err)
	}
}
