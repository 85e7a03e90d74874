// Package ratelimit limits how often a key (a client network, an address,
// an account) may do something, with a bounded table of keys.
package ratelimit

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// KeyLimiter is a token bucket per key (a client network or an address)
// with a bounded number of keys. The table is kept in order of last use:
// when it is full, a new key takes the place of the key used longest ago.
// A flood of distinct keys therefore only ever forgets the idlest keys
// (whose buckets have mostly filled up again); it never locks out new
// keys, and a key that keeps knocking while over its limit stays recent
// and stays refused.
type KeyLimiter struct {
	mu    sync.Mutex
	every time.Duration
	burst int
	max   int
	keys  map[string]*bucket
	// head is the most recently used bucket, tail the least; a
	// doubly linked list through the buckets.
	head, tail *bucket
}

type bucket struct {
	key        string
	tokens     float64
	last       time.Time
	prev, next *bucket
}

// New returns a limiter allowing burst events at once per key and one more
// every every, for at most max keys (at least one).
func New(every time.Duration, burst, max int) *KeyLimiter {
	if max < 1 {
		max = 1
	}
	return &KeyLimiter{every: every, burst: burst, max: max, keys: make(map[string]*bucket, min(max, 1024))}
}

// Allow takes one token from key's bucket at now and says whether there
// was one. Asking, allowed or not, makes key the most recently used.
func (l *KeyLimiter) Allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(key, now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// Refund gives back a token Allow took, for a limit on failures only:
// take one before trying (so tries at once cannot all pass a look), give
// it back when the try succeeded. The bucket never holds more than its
// burst.
func (l *KeyLimiter) Refund(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(key, now)
	b.tokens = min(b.tokens+1, float64(l.burst))
}

// bucket is key's bucket, refilled to now and made the most recently used.
func (l *KeyLimiter) bucket(key string, now time.Time) *bucket {
	b := l.keys[key]
	switch {
	case b != nil:
		l.unlink(b)
		l.refill(b, now)
	case len(l.keys) >= l.max:
		// Full: the least recently used bucket becomes key's.
		b = l.tail
		l.unlink(b)
		delete(l.keys, b.key)
		*b = bucket{key: key, tokens: float64(l.burst), last: now}
		l.keys[key] = b
	default:
		b = &bucket{key: key, tokens: float64(l.burst), last: now}
		l.keys[key] = b
	}
	l.pushFront(b)
	return b
}

// Len is how many keys the limiter remembers; never more than its max.
func (l *KeyLimiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}

func (l *KeyLimiter) refill(b *bucket, now time.Time) {
	if !now.After(b.last) {
		return // a clock that went back refills nothing
	}
	if l.every <= 0 {
		b.tokens = float64(l.burst)
	} else {
		b.tokens += float64(now.Sub(b.last)) / float64(l.every)
		if b.tokens > float64(l.burst) {
			b.tokens = float64(l.burst)
		}
	}
	b.last = now
}

func (l *KeyLimiter) unlink(b *bucket) {
	if b.prev != nil {
		b.prev.next = b.next
	} else {
		l.head = b.next
	}
	if b.next != nil {
		b.next.prev = b.prev
	} else {
		l.tail = b.prev
	}
	b.prev, b.next = nil, nil
}

func (l *KeyLimiter) pushFront(b *bucket) {
	b.next = l.head
	if l.head != nil {
		l.head.prev = b
	}
	l.head = b
	if l.tail == nil {
		l.tail = b
	}
}

// ClientKey is the rate-limit key of the client: its IP address, or for
// IPv6 its /64 network, which one client usually has whole. It is the
// connection's address: behind a reverse proxy every client shares it.
func ClientKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}
