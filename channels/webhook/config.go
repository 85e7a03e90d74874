package webhook

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Defaults applied by New to the zero fields of a Config.
const (
	DefaultTimeout             = 15 * time.Second
	DefaultConnectTimeout      = 5 * time.Second
	DefaultMaxResponseBody     = 64 << 10
	DefaultUserAgent           = "Varsel/dev"
	DefaultMaxIdleConnsPerHost = 16
)

// DefaultSchedule is the wait before each retry, after the first attempt
// failed: Standard Webhooks' example schedule (immediately, 5 s, 5 min,
// 30 min, 2 h, 5 h, 10 h, 10 h). With it a delivery is tried at most nine
// times over about 27 hours and 35 minutes.
var DefaultSchedule = []time.Duration{
	0,
	5 * time.Second,
	5 * time.Minute,
	30 * time.Minute,
	2 * time.Hour,
	5 * time.Hour,
	10 * time.Hour,
	10 * time.Hour,
}

// Config configures the webhook channel. It is plain data: a zero field
// takes its default (see New), and Validate reports every problem at once.
type Config struct {
	// Timeout bounds one delivery from dial to the last byte of the
	// response that is read. Zero means DefaultTimeout (15 s).
	Timeout time.Duration
	// ConnectTimeout bounds the DNS lookup, TCP connect and TLS handshake.
	// Zero means DefaultConnectTimeout (5 s).
	ConnectTimeout time.Duration
	// AllowPrivate lets targets resolve to loopback, private, link-local,
	// unique-local, CGNAT and other non-public addresses
	// (VARSEL_WEBHOOK_ALLOW_PRIVATE). Only for development and tests: it
	// lets whoever can add a subscriber make Varsel call internal services.
	AllowPrivate bool
	// MaxResponseBody is how much of a response body is read (then
	// discarded) so the connection can be reused. Zero means
	// DefaultMaxResponseBody (64 KiB).
	MaxResponseBody int64
	// Schedule lists the wait before each retry: Schedule[0] after the
	// first attempt failed, Schedule[1] after the second, and so on, so a
	// delivery is tried at most len(Schedule)+1 times. Nil or empty means
	// DefaultSchedule.
	Schedule []time.Duration
	// UserAgent is sent with every request, "Varsel/<version>". Empty means
	// DefaultUserAgent.
	UserAgent string
	// MaxIdleConnsPerHost is how many idle keep-alive connections are kept
	// per receiver host. Zero means DefaultMaxIdleConnsPerHost (16).
	MaxIdleConnsPerHost int
	// Self lists exact URLs of Varsel's own listener on a loopback address
	// (its demo webhook receiver, http://127.0.0.1:8080/demo/webhook) that
	// are called even without AllowPrivate: only those URLs, byte for byte,
	// so no other loopback or private target gets through.
	Self []string
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.MaxResponseBody == 0 {
		c.MaxResponseBody = DefaultMaxResponseBody
	}
	if len(c.Schedule) == 0 {
		c.Schedule = DefaultSchedule
	}
	// Copy so a caller changing its slice later cannot change ours.
	c.Schedule = append([]time.Duration(nil), c.Schedule...)
	c.Self = append([]string(nil), c.Self...)
	if c.UserAgent == "" {
		c.UserAgent = DefaultUserAgent
	}
	if c.MaxIdleConnsPerHost == 0 {
		c.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	}
	return c
}

// Validate reports every problem with c at once, or nil. Zero values are
// valid: they mean the defaults.
func (c Config) Validate() error {
	var errs []error
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %v is negative", c.Timeout))
	}
	if c.ConnectTimeout < 0 {
		errs = append(errs, fmt.Errorf("connect timeout %v is negative", c.ConnectTimeout))
	}
	d := c.withDefaults()
	if c.Timeout >= 0 && c.ConnectTimeout >= 0 && d.ConnectTimeout > d.Timeout {
		errs = append(errs, fmt.Errorf("connect timeout %v is longer than the total timeout %v", d.ConnectTimeout, d.Timeout))
	}
	if c.MaxResponseBody < 0 {
		errs = append(errs, fmt.Errorf("max response body %d is negative", c.MaxResponseBody))
	}
	for i, s := range c.Schedule {
		if s < 0 {
			errs = append(errs, fmt.Errorf("schedule[%d] %v is negative", i, s))
		}
	}
	if strings.ContainsFunc(c.UserAgent, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		errs = append(errs, fmt.Errorf("user agent %q contains control characters", c.UserAgent))
	}
	for _, raw := range c.Self {
		ok := false
		if u, err := url.Parse(raw); err == nil && u.Scheme == "http" && u.String() == raw {
			ip, err := netip.ParseAddr(u.Hostname())
			ok = err == nil && ip.IsLoopback()
		}
		if !ok {
			errs = append(errs, fmt.Errorf("self URL %q is not an http URL on a loopback address", raw))
		}
	}
	if c.MaxIdleConnsPerHost < 0 {
		errs = append(errs, fmt.Errorf("max idle connections per host %d is negative", c.MaxIdleConnsPerHost))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("webhook config: %w", err)
	}
	return nil
}
