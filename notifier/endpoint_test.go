package notifier

import (
	"testing"
	"time"
)

// gateClock is a Dispatcher with a clock the test moves.
func gateClock(cfg DispatchConfig) (*Dispatcher, *time.Time) {
	now := time.Date(2019, 9, 16, 11, 0, 0, 0, time.UTC)
	return &Dispatcher{Config: cfg, Now: func() time.Time { return now }}, &now
}

// place is a send in flight at an endpoint.
type place struct {
	g      *endpointGate
	ticket uint64
}

// gateUser takes and gives back places at one endpoint of d.
type gateUser struct {
	t    *testing.T
	d    *Dispatcher
	key  string
	held []place
}

func (u *gateUser) take() bool {
	g, ticket, ok := u.d.acquireEndpoint(u.key)
	if ok {
		u.held = append(u.held, place{g, ticket})
	}
	return ok
}

// answer gives back the oldest place held, its send having taken took.
func (u *gateUser) answer(took time.Duration) {
	p := u.held[0]
	u.held = u.held[1:]
	u.d.releaseEndpoint(u.key, p.g, p.ticket, took)
}

// refusedAtOnce checks that a place is refused without waiting for one.
func (u *gateUser) refusedAtOnce(what string) {
	u.t.Helper()
	start := time.Now()
	if u.take() {
		u.t.Fatalf("%s: a place was given", what)
	}
	if waited := time.Since(start); waited >= endpointPatience {
		u.t.Errorf("%s: the job waited %s for a place, want it put back at once", what, waited)
	}
}

// TestEndpointBoundGrowsForAFastEndpoint: an endpoint starts with
// EndpointConcurrency places; every send it answers quickly while all its
// places are taken adds one, up to FastEndpointConcurrency, and a slow
// answer puts it back at the start.
func TestEndpointBoundGrowsForAFastEndpoint(t *testing.T) {
	d, now := gateClock(DispatchConfig{EndpointConcurrency: 4, FastEndpointConcurrency: 8})
	u := &gateUser{t: t, d: d, key: "webhook https://hooks.example.com"}
	for i := range 4 {
		if !u.take() {
			t.Fatalf("place %d of the first 4 refused", i+1)
		}
	}
	if u.take() {
		t.Fatal("a 5th place before any send ended")
	}
	// 4 quick answers with every place taken: each adds one.
	for range 4 {
		*now = now.Add(10 * time.Millisecond)
		u.answer(10 * time.Millisecond)
		for u.take() {
		}
	}
	if n := len(u.held); n != 8 {
		t.Fatalf("%d places after 4 quick answers at a busy endpoint, want 8", n)
	}
	*now = now.Add(10 * time.Millisecond)
	u.answer(10 * time.Millisecond)
	for u.take() {
	}
	if n := len(u.held); n != 8 {
		t.Fatalf("%d places: the bound grew past FastEndpointConcurrency", n)
	}
	// One slow answer: back to 4, and a busy slow endpoint's job goes back
	// at once, without waiting for a place.
	*now = now.Add(2 * time.Second)
	u.answer(2 * time.Second)
	u.refusedAtOnce("7 in flight after a slow answer")
	for len(u.held) > 3 {
		u.answer(2 * time.Second)
	}
	if !u.take() {
		t.Fatal("no place with 3 in flight at a slow endpoint, want 4")
	}
	u.refusedAtOnce("a 5th place at a slow endpoint")
}

// TestEndpointBoundGrowsOnlyWhenUsed: quick answers from an endpoint that
// never has all its places taken do not raise its bound.
func TestEndpointBoundGrowsOnlyWhenUsed(t *testing.T) {
	d, now := gateClock(DispatchConfig{EndpointConcurrency: 2, FastEndpointConcurrency: 6})
	u := &gateUser{t: t, d: d, key: "webhook https://hooks.example.com"}
	for range 20 {
		u.take()
		*now = now.Add(time.Millisecond)
		u.answer(time.Millisecond)
	}
	for u.take() {
	}
	if n := len(u.held); n != 2 {
		t.Errorf("%d places after 20 quick answers one at a time, want the 2 it started with", n)
	}
}

// TestHangingSendStopsNewOnes: a send in flight for longer than slowSend
// puts the endpoint back to its first bound, and keeps it there, even while
// other sends to it are answered quickly.
func TestHangingSendStopsNewOnes(t *testing.T) {
	d, now := gateClock(DispatchConfig{EndpointConcurrency: 2, FastEndpointConcurrency: 6})
	u := &gateUser{t: t, d: d, key: "webhook https://hooks.example.com"}
	for u.take() {
	}
	for range 4 { // quick answers with every place taken: the bound is 6
		u.answer(time.Millisecond)
		for u.take() {
		}
	}
	if n := len(u.held); n != 6 {
		t.Fatalf("%d places at a fast endpoint, want 6", n)
	}
	// The oldest place's send hangs; the others are answered quickly.
	hanging := u.held[0]
	u.held = u.held[1:]
	*now = now.Add(slowSend + time.Millisecond)
	u.refusedAtOnce("a send hanging for over a second")
	for len(u.held) > 0 {
		u.answer(time.Millisecond)
	}
	// One hanging, none other in flight: the first bound (2) again, and
	// quick answers while it hangs do not raise it.
	for range 5 {
		if !u.take() {
			t.Fatal("no second place beside the hanging send")
		}
		u.refusedAtOnce("a third place beside a hanging send")
		u.answer(time.Millisecond)
	}
	d.releaseEndpoint(u.key, hanging.g, hanging.ticket, 15*time.Second)
}

// TestGrownGateKeptBetweenJobs: a fast endpoint that has no send in flight
// for a while keeps its bound and is not taken for stalled; one idle for
// gateIdle is forgotten, as is at once a gate that never grew.
func TestGrownGateKeptBetweenJobs(t *testing.T) {
	d, now := gateClock(DispatchConfig{EndpointConcurrency: 2, FastEndpointConcurrency: 4})
	fast := &gateUser{t: t, d: d, key: "webhook https://fast.example.com"}
	other := &gateUser{t: t, d: d, key: "webhook https://other.example.com"}
	for fast.take() {
	}
	for range 2 {
		fast.answer(time.Millisecond)
		for fast.take() {
		}
	}
	for len(fast.held) > 0 {
		fast.answer(time.Millisecond)
	}
	other.take()
	other.answer(2 * time.Second)
	if _, ok := d.endpoints[other.key]; ok {
		t.Error("a gate that never grew is kept with nothing in flight")
	}
	*now = now.Add(5 * time.Second) // longer than slowSend, shorter than gateIdle
	for i := range 4 {
		if !fast.take() {
			t.Fatalf("place %d of 4 refused 5 s after the last job", i+1)
		}
	}
	for len(fast.held) > 0 {
		fast.answer(time.Millisecond)
	}
	*now = now.Add(2*gateIdle + time.Second)
	other.take() // any use sweeps
	other.answer(time.Millisecond)
	if _, ok := d.endpoints[fast.key]; ok {
		t.Errorf("a fast endpoint's gate is kept after %s with nothing sent", 2*gateIdle)
	}
}

// TestEndpointPlaceGoesToTheFirstWaiter: the places a send's end frees go
// to the workers waiting, first come first served, and a waiter whose wait
// ends just as a place is handed to it keeps that place.
func TestEndpointPlaceGoesToTheFirstWaiter(t *testing.T) {
	d, now := gateClock(DispatchConfig{EndpointConcurrency: 1, FastEndpointConcurrency: 2})
	u := &gateUser{t: t, d: d, key: "webhook https://hooks.example.com"}
	if !u.take() {
		t.Fatal("first place refused")
	}
	g := u.held[0].g
	// Two workers queue (take, as acquireEndpoint does before waiting).
	t1, w1 := g.take(*now, 1)
	t2, w2 := g.take(*now, 1)
	if t1 != 0 || t2 != 0 || w1 == nil || w2 == nil {
		t.Fatalf("took %d and %d at a full endpoint, want both to wait", t1, t2)
	}
	// A quick answer with the place taken: the bound grows to 2, and both
	// free places go to the two waiters, in order.
	u.answer(time.Millisecond)
	var got []uint64
	for _, w := range []*gateWaiter{w1, w2} {
		select {
		case ticket := <-w.ch:
			got = append(got, ticket)
		default:
			t.Fatalf("waiter %d got no place after the bound grew to 2", len(got)+1)
		}
	}
	if got[0] >= got[1] {
		t.Errorf("tickets %v: the second waiter was served first", got)
	}
	// A waiter handed a place as its wait ends: giveUp says so, and the
	// place is still its own.
	t3, w3 := g.take(*now, 1)
	if t3 != 0 || w3 == nil {
		t.Fatal("a third worker took a place at a full endpoint")
	}
	g.release(*now, got[0], time.Millisecond, 1, 2)
	if g.giveUp(w3) {
		t.Fatal("giveUp took a waiter off the queue after a place was handed to it")
	}
	if ticket := <-w3.ch; ticket == 0 {
		t.Fatal("the handed place has no ticket")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if n := len(g.started); n != 2 {
		t.Errorf("%d sends in flight after the hand-overs, want 2", n)
	}
}
