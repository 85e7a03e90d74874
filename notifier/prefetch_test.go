package notifier

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"
)

// batchStore is a SubscriberStore whose GetMany fails while broken.
type batchStore struct {
	SubscriberStore
	subs       map[string]*Subscriber
	broken     bool
	unreadable string // answered as nil: read it alone
	calls      int
}

func (b *batchStore) GetMany(_ context.Context, ids []string) (map[string]*Subscriber, error) {
	b.calls++
	if b.broken {
		return nil, errors.New("direct get: 400 bad request")
	}
	out := map[string]*Subscriber{}
	for _, id := range ids {
		if s, ok := b.subs[id]; ok {
			out[id] = s
		}
		if id == b.unreadable {
			out[id] = nil
		}
	}
	return out, nil
}

func (b *batchStore) Get(_ context.Context, id string) (*Subscriber, error) {
	if s, ok := b.subs[id]; ok {
		return s, nil
	}
	return nil, ErrNotFound
}

// TestPrefetch: a job's subscribers are read together and handed to each
// delivery (a missing one as not found); when that read fails, each
// delivery reads its own, and for a minute no read together is tried.
func TestPrefetch(t *testing.T) {
	store := &batchStore{subs: map[string]*Subscriber{"a": {ID: "a"}, "c": {ID: "c"}}}
	now := time.Date(2019, 9, 16, 8, 0, 0, 0, time.UTC)
	d := &Dispatcher{Subscribers: store, Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return now }}
	ctx := context.Background()
	jobs := Job{EventID: "e", Channel: Email, Subscribers: []string{"a", "b", "c"}}.Deliveries()

	got := d.Prefetch(ctx, jobs)
	for i, want := range []string{"a", "", "c"} {
		s, err := d.subscriber(ctx, got[i])
		switch {
		case want == "" && !errors.Is(err, ErrNotFound):
			t.Errorf("job %d: %v, %v; want not found", i, s, err)
		case want != "" && (err != nil || s.ID != want):
			t.Errorf("job %d: %v, %v; want %s", i, s, err, want)
		}
	}
	if store.calls != 1 {
		t.Fatalf("%d reads together, want 1", store.calls)
	}
	// A read more than a second old is not trusted: the subscriber may
	// have been removed since (a slow channel's job waits its turn).
	delete(store.subs, "a")
	now = now.Add(prefetchMaxAge + time.Millisecond)
	if s, err := d.subscriber(ctx, got[0]); !errors.Is(err, ErrNotFound) {
		t.Errorf("a removed subscriber read %v ago: %v, %v; want it read again and not found", prefetchMaxAge, s, err)
	}
	store.subs["a"] = &Subscriber{ID: "a"}
	// One that could not be read with the others (nil in the answer)
	// reads its own.
	store.unreadable = "c"
	got = d.Prefetch(ctx, Job{EventID: "e1", Channel: Email, Subscribers: []string{"a", "c"}}.Deliveries())
	if !got[0].fetched || got[1].fetched {
		t.Errorf("fetched %v and %v; want a read together and c left to read alone", got[0].fetched, got[1].fetched)
	}
	store.unreadable = ""
	store.calls = 1

	store.broken = true
	got = d.Prefetch(ctx, Job{EventID: "e2", Channel: Email, Subscribers: []string{"a", "c"}}.Deliveries())
	if got[0].fetched || got[1].fetched {
		t.Error("a failed read together marked the jobs as read")
	}
	if s, err := d.subscriber(ctx, got[0]); err != nil || s.ID != "a" {
		t.Errorf("after a failed read together: %v, %v; want a read of its own", s, err)
	}
	store.broken = false
	d.Prefetch(ctx, Job{EventID: "e3", Channel: Email, Subscribers: []string{"a", "c"}}.Deliveries())
	if store.calls != 2 {
		t.Errorf("%d reads together within a minute of a failure, want none after it", store.calls-2)
	}
	now = now.Add(batchReadPause + time.Second)
	if got := d.Prefetch(ctx, Job{EventID: "e4", Channel: Email, Subscribers: []string{"a", "c"}}.Deliveries()); store.calls != 3 || !got[0].fetched {
		t.Errorf("a minute later: %d reads together, fetched %v; want it tried again", store.calls, got[0].fetched)
	}
}
