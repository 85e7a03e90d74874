// Package ratelimit limits how often a key (a client network, an address,
// an account) may do something, with a bounded table of keys.
package ratelimit

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// KeyLimiter is a token bucket per key (a client network or an address)
// with a bounded number of keys.
type KeyLimiter struct {
	mu        sync.Mutex
	every     time.Duration
	burst     int
	max       int
	keys      map[string]*rate.Limiter
	lastSweep time.Time
}

// New returns a limiter allowing burst events at once per key and one more
// every every, for at most max keys.
func New(every time.Duration, burst, max int) *KeyLimiter {
	return &KeyLimiter{every: every, burst: burst, max: max, keys: map[string]*rate.Limiter{}}
}

// Allow takes one token from key's bucket at now. When the table is full it
// forgets the keys whose bucket has filled up again (they are as good as
// new), at most once a second; if it is still full, new keys are refused:
// a flood of addresses must not reset everyone's limits.
func (l *KeyLimiter) Allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.keys[key]
	if lim == nil {
		if len(l.keys) >= l.max && now.Sub(l.lastSweep) >= time.Second {
			l.lastSweep = now
			for k, v := range l.keys {
				if v.TokensAt(now) >= float64(l.burst) {
					delete(l.keys, k)
				}
			}
		}
		if len(l.keys) >= l.max {
			return false
		}
		lim = rate.NewLimiter(rate.Every(l.every), l.burst)
		l.keys[key] = lim
	}
	return lim.AllowN(now, 1)
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
