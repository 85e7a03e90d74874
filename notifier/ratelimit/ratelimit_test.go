package ratelimit

import (
	"strconv"
	"testing"
	"time"
)

func TestKeyLimiterKeepsBurstAndRate(t *testing.T) {
	l := New(time.Minute, 2, 10)
	t0 := time.Unix(1_000_000, 0)
	if !l.Allow("a", t0) || !l.Allow("a", t0) || l.Allow("a", t0) {
		t.Fatal("burst of two not kept")
	}
	if l.Allow("a", t0.Add(59*time.Second)) {
		t.Error("a token came back before its minute")
	}
	if !l.Allow("a", t0.Add(time.Minute)) || l.Allow("a", t0.Add(time.Minute)) {
		t.Error("one token a minute not kept")
	}
	if !l.Allow("b", t0) {
		t.Error("another key shares a's bucket")
	}
	if l.Allow("a", t0.Add(-time.Hour)) {
		t.Error("a clock that went back refilled the bucket")
	}
}

// Refund gives back a token taken for a try that succeeded, never above
// the burst.
func TestKeyLimiterRefund(t *testing.T) {
	l := New(time.Minute, 2, 10)
	t0 := time.Unix(1_000_000, 0)
	for range 5 {
		if !l.Allow("a", t0) {
			t.Fatal("a refunded token was not given back")
		}
		l.Refund("a", t0)
	}
	l.Refund("a", t0)
	l.Refund("a", t0)
	if !l.Allow("a", t0) || !l.Allow("a", t0) || l.Allow("a", t0) {
		t.Error("refunds grew the bucket past its burst")
	}
}

// A flood of distinct keys must never lock out a new visitor: it evicts
// the keys used longest ago, the table stays within its cap, and a key
// over its limit that keeps asking is still refused.
func TestKeyLimiterFloodNeverLocksOut(t *testing.T) {
	const max = 4096
	l := New(10*time.Minute, 3, max)
	t0 := time.Unix(1_000_000, 0)
	for range 3 {
		l.Allow("abuser", t0)
	}
	if l.Allow("abuser", t0) {
		t.Fatal("the abuser's burst of three not kept")
	}
	for i := range 10_000 {
		now := t0.Add(time.Duration(i) * time.Millisecond)
		if !l.Allow("k"+strconv.Itoa(i), now) {
			t.Fatalf("distinct key %d refused: a flood locks out new keys", i)
		}
		if i%1000 == 0 && l.Allow("abuser", now) {
			t.Fatalf("the abuser got a token back after %d other keys", i)
		}
		if n := l.Len(); n > max {
			t.Fatalf("table holds %d keys, cap %d", n, max)
		}
	}
	now := t0.Add(10 * time.Second)
	if !l.Allow("a new visitor", now) {
		t.Error("a new key refused after 10,000 distinct keys")
	}
	if l.Allow("abuser", now) {
		t.Error("the abuser, still asking, is no longer refused")
	}
	if l.Allow("k9999", now) && l.Allow("k9999", now) && l.Allow("k9999", now) {
		t.Error("a recent key's limit was reset by the flood")
	}
	if n := l.Len(); n != max {
		t.Errorf("table holds %d keys, want its cap %d", n, max)
	}
}

func TestKeyLimiterEvictsLeastRecentlyUsed(t *testing.T) {
	l := New(time.Hour, 1, 2)
	t0 := time.Unix(1_000_000, 0)
	l.Allow("a", t0)
	l.Allow("b", t0)
	l.Allow("a", t0) // a is now the most recent (refused, but asked)
	if !l.Allow("c", t0) {
		t.Fatal("a new key refused by a full table")
	}
	if l.Allow("a", t0) {
		t.Error("a, the most recently used key, was evicted instead of b")
	}
	if _, ok := l.keys["b"]; ok {
		t.Error("b, the least recently used key, was kept")
	}
	if n := l.Len(); n != 2 {
		t.Errorf("table holds %d keys, cap 2", n)
	}
}

func TestKeyLimiterCapAtLeastOne(t *testing.T) {
	l := New(time.Hour, 1, 0)
	t0 := time.Unix(1_000_000, 0)
	if !l.Allow("a", t0) || l.Allow("a", t0) || !l.Allow("b", t0) || l.Len() != 1 {
		t.Error("a table of cap zero does not act as cap one")
	}
}
