package main

import (
	"context"
	"math"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// The limit is the floor for a small heap, one and a half times the live
// heap and room above it, and never below what the live heap needs.
func TestMemoryLimitFor(t *testing.T) {
	for _, c := range []struct {
		live uint64
		want int64
	}{
		{0, memLimitFloor},
		{100 << 20, memLimitFloor},
		{200 << 20, 300<<20 + memLimitRoom},
		{1 << 30, 1<<30 + 1<<29 + memLimitRoom},
	} {
		if got := memoryLimitFor(c.live); got != c.want {
			t.Errorf("memoryLimitFor(%d MiB) = %d MiB, want %d MiB", c.live>>20, got>>20, c.want>>20)
		}
		if got := memoryLimitFor(c.live); uint64(got) <= c.live {
			t.Errorf("memoryLimitFor(%d MiB) = %d MiB: not above the live heap", c.live>>20, got>>20)
		}
	}
}

// serve keeps the limit while it runs and lifts it when it stops; an
// operator's GOGC or GOMEMLIMIT is left alone.
func TestKeepMemoryLimit(t *testing.T) {
	defer debug.SetMemoryLimit(math.MaxInt64)
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { keepMemoryLimit(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for debug.SetMemoryLimit(-1) == math.MaxInt64 {
		if time.Now().After(deadline) {
			t.Fatal("no memory limit set")
		}
		time.Sleep(time.Millisecond)
	}
	if got := debug.SetMemoryLimit(-1); got < memLimitFloor {
		t.Errorf("limit %d MiB, below the floor", got>>20)
	}
	// It follows the live heap as that grows past the floor.
	live := make([]byte, 200<<20)
	for i := range live {
		live[i] = byte(i)
	}
	runtime.GC()
	want := memoryLimitFor(200 << 20)
	for debug.SetMemoryLimit(-1) < want {
		if time.Now().After(deadline.Add(10 * time.Second)) {
			t.Fatalf("limit %d MiB with 200 MiB live, want at least %d MiB", debug.SetMemoryLimit(-1)>>20, want>>20)
		}
		time.Sleep(10 * time.Millisecond)
	}
	runtime.KeepAlive(live)
	cancel()
	<-done
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("limit %d after serve stopped, want none", got)
	}

	for _, env := range []string{"GOGC", "GOMEMLIMIT"} {
		t.Run(env, func(t *testing.T) {
			t.Setenv(env, map[string]string{"GOGC": "200", "GOMEMLIMIT": "1GiB"}[env])
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan struct{})
			go func() { keepMemoryLimit(ctx); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatalf("with %s set, it kept a limit (%d MiB)", env, debug.SetMemoryLimit(-1)>>20)
			}
			if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
				t.Errorf("with %s set, a limit of %d MiB", env, got>>20)
			}
		})
	}
}
