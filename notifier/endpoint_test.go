package notifier

import (
	"sync"
	"testing"
	"time"
)

// gateClock is a Dispatcher with a clock the test moves.
func gateClock(cfg DispatchConfig) (*Dispatcher, *time.Time) {
	now := time.Date(2019, 9, 16, 11, 0, 0, 0, time.UTC)
	return &Dispatcher{Config: cfg, Now: func() time.Time { return now }}, &now
}

// TestEndpointBoundGrowsForAFastEndpoint: an endpoint starts with
// EndpointConcurrency places; every send it answers quickly adds one, up
// to FastEndpointConcurrency, and a slow answer puts it back at the start.
func TestEndpointBoundGrowsForAFastEndpoint(t *testing.T) {
	d, now := gateClock(DispatchConfig{EndpointConcurrency: 4, FastEndpointConcurrency: 8})
	const key = "webhook https://hooks.example.com"
	var held []*endpointGate
	take := func() bool {
		g, ok := d.acquireEndpoint(key)
		if ok {
			held = append(held, g)
		}
		return ok
	}
	for i := range 4 {
		if !take() {
			t.Fatalf("place %d of the first 4 refused", i+1)
		}
	}
	if take() {
		t.Fatal("a 5th place before any send ended")
	}
	// 4 quick answers: each gives its place back and adds one.
	for range 4 {
		*now = now.Add(10 * time.Millisecond)
		d.releaseEndpoint(key, held[0], 10*time.Millisecond)
		held = held[1:]
	}
	for i := range 8 {
		if !take() {
			t.Fatalf("place %d of 8 refused after 4 quick answers", i+1)
		}
	}
	if take() {
		t.Fatal("a 9th place: the bound grew past FastEndpointConcurrency")
	}
	// One slow answer: back to 4, and a busy slow endpoint's job goes back
	// at once, without waiting for a place.
	*now = now.Add(2 * time.Second)
	d.releaseEndpoint(key, held[0], 2*time.Second)
	held = held[1:]
	start := time.Now()
	if take() {
		t.Fatal("a place with 7 in flight after a slow answer, want the bound back at 4")
	}
	if waited := time.Since(start); waited >= endpointPatience {
		t.Errorf("a slow endpoint's job waited %s for a place, want it put back at once", waited)
	}
	for len(held) > 3 {
		d.releaseEndpoint(key, held[0], 2*time.Second)
		held = held[1:]
	}
	if !take() {
		t.Fatal("no place with 3 in flight at a slow endpoint, want 4")
	}
	if take() {
		t.Fatal("a 5th place at a slow endpoint")
	}
}

// TestEndpointThatStopsAnsweringGetsNoMore: with sends in flight and no
// answer for longer than slowSend, the endpoint is treated as slow before
// any of them ends.
func TestEndpointThatStopsAnsweringGetsNoMore(t *testing.T) {
	d, now := gateClock(DispatchConfig{EndpointConcurrency: 2, FastEndpointConcurrency: 6})
	const key = "webhook https://hooks.example.com"
	g, _ := d.acquireEndpoint(key)
	for range 4 { // fast answers: the bound is 6
		d.releaseEndpoint(key, g, time.Millisecond)
		g, _ = d.acquireEndpoint(key)
	}
	for i := range 5 {
		if _, ok := d.acquireEndpoint(key); !ok {
			t.Fatalf("place %d of 6 refused at a fast endpoint", i+2)
		}
	}
	*now = now.Add(slowSend + time.Millisecond) // nothing answered since
	start := time.Now()
	if _, ok := d.acquireEndpoint(key); ok {
		t.Fatal("a place at an endpoint that has not answered for over a second")
	}
	if waited := time.Since(start); waited >= endpointPatience {
		t.Errorf("waited %s at a stalled endpoint, want the job put back at once", waited)
	}
}

// TestEndpointPlaceGoesToAWaiter: a worker waiting at a busy fast endpoint
// gets the place of the send that ends, and the count of sends in flight
// never passes the bound.
func TestEndpointPlaceGoesToAWaiter(t *testing.T) {
	d, _ := gateClock(DispatchConfig{EndpointConcurrency: 1, FastEndpointConcurrency: 1})
	const key = "webhook https://hooks.example.com"
	first, ok := d.acquireEndpoint(key)
	if !ok {
		t.Fatal("first place refused")
	}
	var wg sync.WaitGroup
	got := make(chan bool, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, ok := d.acquireEndpoint(key)
		got <- ok
	}()
	// Give the waiter time to queue, well inside its patience.
	deadline := time.Now().Add(endpointPatience / 2)
	for {
		first.mu.Lock()
		n := len(first.waiters)
		first.mu.Unlock()
		if n == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	d.releaseEndpoint(key, first, time.Millisecond)
	wg.Wait()
	if !<-got {
		t.Fatal("the waiting worker did not get the place given back")
	}
	first.mu.Lock()
	defer first.mu.Unlock()
	if first.inFlight != 1 {
		t.Errorf("%d sends in flight after the hand-over, want 1", first.inFlight)
	}
}

// TestGrownGateKeptBetweenJobs: a fast endpoint that has no send in flight
// for a moment keeps its bound; one idle for gateIdle is forgotten, as is
// at once a gate that never grew.
func TestGrownGateKeptBetweenJobs(t *testing.T) {
	d, now := gateClock(DispatchConfig{EndpointConcurrency: 2, FastEndpointConcurrency: 4})
	const fast, other = "webhook https://fast.example.com", "webhook https://other.example.com"
	for range 3 {
		g, _ := d.acquireEndpoint(fast)
		d.releaseEndpoint(fast, g, time.Millisecond)
	}
	g, _ := d.acquireEndpoint(other)
	d.releaseEndpoint(other, g, 2*time.Second)
	if _, ok := d.endpoints[other]; ok {
		t.Error("a gate that never grew is kept with nothing in flight")
	}
	*now = now.Add(time.Second)
	for i := range 4 {
		if _, ok := d.acquireEndpoint(fast); !ok {
			t.Fatalf("place %d of 4 refused a second after the last job", i+1)
		}
	}
	for _, g := range []*endpointGate{d.endpoints[fast]} {
		for range 4 {
			d.releaseEndpoint(fast, g, time.Millisecond)
		}
	}
	*now = now.Add(gateIdle + time.Second)
	g, _ = d.acquireEndpoint(other) // any use sweeps
	d.releaseEndpoint(other, g, time.Millisecond)
	if _, ok := d.endpoints[fast]; ok {
		t.Errorf("a fast endpoint's gate is kept after %s with nothing sent", gateIdle+time.Second)
	}
}
