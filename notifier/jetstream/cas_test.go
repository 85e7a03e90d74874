package jetstream

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A write that lost to another writer is a conflict to retry, whatever
// code it came back with.
func TestCASLost(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{jetstream.ErrKeyExists, true},
		{fmt.Errorf("create: %w", jetstream.ErrKeyRevisionMismatch), true},
		{&jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamWrongLastSequence}, true},
		{fmt.Errorf("nats: %w", &jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamWrongLastSequenceConstant}), true},
		{&jetstream.APIError{Code: 503, ErrorCode: jetstream.JSErrCodeJetStreamNotEnabled}, false},
		{context.DeadlineExceeded, false},
	} {
		if got := casLost(c.err); got != c.want {
			t.Errorf("casLost(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// On a three-node cluster, several writers creating one subscriber again
// after it was removed all succeed: a create over the removal's marker is
// an update whose refusal NATS reports with a code of its own (10164), a
// conflict like any other. And the address index survives a late drop
// there too (its check reads the stream's leader).
func TestSubscriberWritersOnACluster(t *testing.T) {
	_, urls := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Connect(ctx, Config{URL: strings.Join(urls, ","), Replicas: 3}, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Run("a late drop", func(t *testing.T) { checkLateDrops(t, c) })
	for round := range 5 {
		id := fmt.Sprintf("sub-%05d", 100+round)
		s := fullSubscriber(100 + round)
		if err := c.Subscribers.Put(ctx, s); err != nil {
			t.Fatal(err)
		}
		if err := c.Subscribers.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i := range 8 {
			s := fullSubscriber(100 + round)
			s.Name = fmt.Sprintf("Writer %d", i)
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := c.Subscribers.Put(ctx, s); err != nil {
					t.Errorf("round %d, writer %d: %v", round, i, err)
				}
			}()
		}
		wg.Wait()
	}
}
