package jetstream

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/varsel/varsel/notifier"
)

// StatusCache is the public pages' read model: every incident state,
// watched from the incident bucket and kept in memory, and the letters
// about them, read once and kept (a sent letter never changes). It keeps
// serving what it last knew while NATS is away and says since when
// (Freshness). It implements notifier.StatusReader.
type StatusCache struct {
	conn   *Conn
	logger *slog.Logger

	mu        sync.RWMutex
	incidents map[string]*notifier.IncidentState
	sorted    []*notifier.IncidentState // nil: rebuild
	letters   map[string]*notifier.Event
	synced    bool // read in full once
	live      bool // the current watcher has read in full
	asOf      time.Time
	resync    chan struct{}
}

var _ notifier.StatusReader = (*StatusCache)(nil)

// statusSyncTimeout bounds the first full read of the incident bucket.
const statusSyncTimeout = 30 * time.Second

// WatchStatus reads every incident and keeps following the bucket until
// ctx is cancelled. It returns once the first full read is done, or with
// an error when the bucket cannot be watched or read in time. When the
// connection comes back after a loss it reads the bucket again in full,
// so what changed meanwhile (deletions included) is not missed.
func (c *Conn) WatchStatus(ctx context.Context, logger *slog.Logger) (*StatusCache, error) {
	sc := &StatusCache{conn: c, logger: logger.With("component", "status"), resync: make(chan struct{}, 1),
		incidents: map[string]*notifier.IncidentState{}, letters: map[string]*notifier.Event{}}
	w, err := c.Incidents.kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", IncidentsKV, err)
	}
	c.OnReconnect(func() {
		select {
		case sc.resync <- struct{}{}:
		default:
		}
	})
	synced := make(chan struct{})
	go sc.run(ctx, w, synced)
	select {
	case <-synced:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(statusSyncTimeout):
		return nil, fmt.Errorf("read %s: not done within %s", IncidentsKV, statusSyncTimeout)
	}
	go sc.keepTime(ctx)
	return sc, nil
}

// run follows one watcher after another: a new one, reading the bucket in
// full, whenever the connection came back or the old one ended.
func (sc *StatusCache) run(ctx context.Context, w jetstream.KeyWatcher, synced chan struct{}) {
	for {
		sc.follow(ctx, w, synced)
		synced = nil
		for {
			if ctx.Err() != nil {
				return
			}
			var err error
			if w, err = sc.conn.Incidents.kv.WatchAll(ctx); err == nil {
				break
			}
			sc.logger.Warn("watch incidents again", "error", err)
			select {
			case <-ctx.Done():
				return
			case <-sc.resync:
			case <-time.After(time.Second):
			}
		}
	}
}

// follow applies one watcher's updates until ctx ends, the connection came
// back (resync) or the watcher stops. The nil entry marks the end of the
// full read: incidents it did not list are gone. synced, when not nil, is
// closed then.
func (sc *StatusCache) follow(ctx context.Context, w jetstream.KeyWatcher, synced chan struct{}) {
	defer func() { _ = w.Stop() }()
	sc.mu.Lock()
	sc.live = false
	sc.mu.Unlock()
	seen := map[string]bool{}
	for {
		var e jetstream.KeyValueEntry
		select {
		case <-ctx.Done():
			return
		case <-sc.resync:
			return
		case u, ok := <-w.Updates():
			if !ok {
				return
			}
			e = u
		}
		if e == nil {
			sc.mu.Lock()
			for id := range sc.incidents {
				if !seen[id] {
					delete(sc.incidents, id)
					sc.sorted = nil
				}
			}
			seen = nil
			sc.synced, sc.live, sc.asOf = true, true, time.Now()
			sc.mu.Unlock()
			if synced != nil {
				close(synced)
				synced = nil
			}
			continue
		}
		if seen != nil {
			seen[e.Key()] = true
		}
		if e.Operation() != jetstream.KeyValuePut {
			sc.mu.Lock()
			delete(sc.incidents, e.Key())
			sc.sorted = nil
			sc.mu.Unlock()
			continue
		}
		st := new(notifier.IncidentState)
		if err := json.Unmarshal(e.Value(), st); err != nil {
			sc.logger.Error("incident state unreadable, keeping the last good one", "incident", e.Key(), "error", err)
			continue
		}
		sc.mu.Lock()
		sc.incidents[e.Key()] = st
		sc.sorted = nil
		sc.asOf = time.Now()
		missing := slices.DeleteFunc(slices.Clone(st.Letters), func(id string) bool { _, ok := sc.letters[id]; return ok })
		sc.mu.Unlock()
		for _, id := range missing {
			// Read ahead, so the letter is there when NATS is not.
			go func() { _, _, _ = sc.Letter(ctx, id) }()
		}
	}
}

// keepTime moves AsOf along while NATS is connected.
func (sc *StatusCache) keepTime(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sc.mu.Lock()
		if sc.live && sc.conn.NC.IsConnected() {
			sc.asOf = time.Now()
		}
		sc.mu.Unlock()
	}
}

// Incidents implements notifier.StatusReader.
func (sc *StatusCache) Incidents() []*notifier.IncidentState {
	sc.mu.RLock()
	if sc.sorted != nil {
		defer sc.mu.RUnlock()
		return sc.sorted
	}
	sc.mu.RUnlock()
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.sorted == nil {
		all := make([]*notifier.IncidentState, 0, len(sc.incidents))
		for _, st := range sc.incidents {
			all = append(all, st)
		}
		slices.SortFunc(all, func(a, b *notifier.IncidentState) int {
			if c := b.LastEventTime.Compare(a.LastEventTime); c != 0 {
				return c
			}
			return cmp.Compare(a.Incident.ID, b.Incident.ID)
		})
		sc.sorted = all
	}
	return sc.sorted
}

// Incident implements notifier.StatusReader.
func (sc *StatusCache) Incident(id string) (*notifier.IncidentState, bool) {
	sc.mu.RLock()
	defer sc.mu.RUnlock()
	st, ok := sc.incidents[id]
	return st, ok
}

// letterTimeout bounds reading a letter the cache does not hold yet.
const letterTimeout = 2 * time.Second

// Letter implements notifier.StatusReader.
func (sc *StatusCache) Letter(ctx context.Context, id string) (*notifier.Event, bool, error) {
	sc.mu.RLock()
	ev, ok := sc.letters[id]
	sc.mu.RUnlock()
	if ok {
		return ev, true, nil
	}
	if !notifier.ValidID(id) {
		return nil, false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, letterTimeout)
	defer cancel()
	rec, err := sc.conn.Events.Get(ctx, id)
	switch {
	case errors.Is(err, notifier.ErrNotFound):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	case rec.Event == nil || rec.Event.Letter == nil || rec.PlannedAt == nil:
		return nil, false, nil
	}
	sc.mu.Lock()
	sc.letters[id] = rec.Event
	sc.mu.Unlock()
	return rec.Event, true, nil
}

// Freshness implements notifier.StatusReader.
func (sc *StatusCache) Freshness() notifier.Freshness {
	sc.mu.RLock()
	defer sc.mu.RUnlock()
	return notifier.Freshness{Synced: sc.synced, Live: sc.live && sc.conn.NC.IsConnected(), AsOf: sc.asOf}
}
