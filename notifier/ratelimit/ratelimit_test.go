package ratelimit

import (
	"testing"
	"time"
)

func TestKeyLimiterIsBounded(t *testing.T) {
	l := New(time.Minute, 1, 2)
	t0 := time.Unix(1_000_000, 0)
	if !l.Allow("a", t0) || !l.Allow("b", t0) || l.Allow("a", t0) {
		t.Fatal("burst of one not kept")
	}
	if l.Allow("c", t0.Add(2*time.Second)) {
		t.Error("a new key got in while the table was full of active keys")
	}
	if !l.Allow("c", t0.Add(2*time.Minute)) || len(l.keys) > 2 {
		t.Errorf("idle keys were not forgotten: %d keys", len(l.keys))
	}
}
