package main

import (
	"context"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// The soft memory limit that serve and bench keep. Go's collector lets the
// heap grow to twice what was live after the last collection (GOGC=100),
// and keeps a peak's pages mapped long after it. At 100k subscribers an
// import (about 100 MB live, most of it the NATS server's block buffers)
// and then a fan-out, whose allocations take other pages, held `serve` at
// 267 MB. Under a limit the runtime collects a little sooner as the heap
// nears it and returns freed pages: 222 MB in as long (21.2 against 21.6
// s). The limit is memLimitFloor, which a heap that small never needs to
// pass, or for a larger live heap one and a half times it and room for
// stacks and the runtime's own: such a store is collected up to twice as
// often as by Go's default, never without end.
const (
	memLimitFloor = 200 << 20
	memLimitRoom  = 32 << 20
	memLimitEvery = 500 * time.Millisecond
)

// memoryLimitFor is the limit for a live heap of live bytes.
func memoryLimitFor(live uint64) int64 {
	return int64(min(max(memLimitFloor, live+live/2+memLimitRoom), math.MaxInt64))
}

// startMemoryLimit runs keepMemoryLimit until the returned stop is
// called (or ctx ends); stop waits for the limit to be lifted.
func startMemoryLimit(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { keepMemoryLimit(ctx); close(done) }()
	return func() { cancel(); <-done }
}

// keepMemoryLimit sets the soft memory limit from the live heap every
// memLimitEvery until ctx ends, unless the operator tunes the collector
// with GOMEMLIMIT or GOGC: then it does nothing.
func keepMemoryLimit(ctx context.Context) {
	if os.Getenv("GOMEMLIMIT") != "" || os.Getenv("GOGC") != "" {
		return
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	set := func() {
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			debug.SetMemoryLimit(memoryLimitFor(sample[0].Value.Uint64()))
		}
	}
	set()
	t := time.NewTicker(memLimitEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			debug.SetMemoryLimit(math.MaxInt64)
			return
		case <-t.C:
			set()
		}
	}
}
