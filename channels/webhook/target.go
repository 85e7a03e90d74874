package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"syscall"

	"github.com/varsel/varsel/notifier"
)

// blockedPrefixes are the non-public ranges netip has no predicate for.
// Loopback, private (RFC 1918 and fc00::/7), link-local, multicast and
// unspecified addresses are caught by netip's own predicates in blockedWhy.
var blockedPrefixes = []struct {
	prefix netip.Prefix
	why    string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), `in "this network" 0.0.0.0/8`},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT shared address space (100.64.0.0/10)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignment space (192.0.0.0/24)"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking space (198.18.0.0/15)"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved or broadcast (240.0.0.0/4)"},
	// IPv4-compatible IPv6 (deprecated): ::a.b.c.d.
	{netip.MustParsePrefix("::/96"), "IPv4-compatible IPv6 (::/96)"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use NAT64 (64:ff9b:1::/48)"},
}

// embedsIPv4 are IPv6 translation prefixes whose last 32 bits are an IPv4
// address a gateway may forward to, so that address is checked too.
var embedsIPv4 = []netip.Prefix{
	netip.MustParsePrefix("64:ff9b::/96"), // NAT64 (RFC 6052)
}

// blockedWhy says why ip must not be called, or "" when it is public.
func blockedWhy(ip netip.Addr) string {
	ip = ip.WithZone("")
	mapped := ip.Is4In6()
	ip = ip.Unmap()
	why := ""
	switch {
	case !ip.IsValid():
		why = "not a valid address"
	case ip.IsUnspecified():
		why = "unspecified"
	case ip.IsLoopback():
		why = "loopback"
	case ip.IsPrivate():
		why = "private"
	case ip.IsLinkLocalUnicast():
		why = "link-local (cloud metadata lives here)"
	case ip.IsMulticast(), ip.IsLinkLocalMulticast(), ip.IsInterfaceLocalMulticast():
		why = "multicast"
	}
	for _, b := range blockedPrefixes {
		if why == "" && b.prefix.Contains(ip) {
			why = b.why
		}
	}
	for _, p := range embedsIPv4 {
		if why == "" && p.Contains(ip) {
			b := ip.As16()
			v4 := netip.AddrFrom4([4]byte(b[12:]))
			if w := blockedWhy(v4); w != "" {
				why = "NAT64 of " + v4.String() + ", which is " + w
			}
		}
	}
	if why != "" && mapped {
		why = "IPv4-mapped IPv6 of " + ip.String() + ", which is " + why
	}
	return why
}

// TargetError says that a webhook target is not allowed and why. It names
// the host and the refused address, never the URL's path, query or
// credentials.
type TargetError struct {
	Host string     // host name or address literal from the URL
	Addr netip.Addr // the refused address; invalid when the URL itself is refused
	Why  string
}

func (e *TargetError) Error() string {
	if !e.Addr.IsValid() {
		return fmt.Sprintf("webhook target %q refused: %s", e.Host, e.Why)
	}
	host := e.Host
	if host == "" || host == e.Addr.String() {
		return fmt.Sprintf("webhook target address %s refused: it is %s (set VARSEL_WEBHOOK_ALLOW_PRIVATE=true only for development)", e.Addr, e.Why)
	}
	return fmt.Sprintf("webhook target %q refused: it resolves to %s, which is %s (set VARSEL_WEBHOOK_ALLOW_PRIVATE=true only for development)", host, e.Addr, e.Why)
}

// Unwrap lets errors.Is(err, ErrTargetRefused) hold.
func (e *TargetError) Unwrap() error { return ErrTargetRefused }

// parseTarget checks the form of a webhook URL: absolute http or https with
// a host. Errors never quote the URL, which may carry credentials or tokens.
func parseTarget(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: not a URL", ErrInvalidURL)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, &TargetError{Host: u.Hostname(), Why: fmt.Sprintf("scheme must be http or https, not %q", u.Scheme)}
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("%w: no host", ErrInvalidURL)
	}
	return u, nil
}

// CheckTarget tells whether rawURL may be used as a webhook target: an
// absolute http or https URL whose host resolves, and, unless allowPrivate,
// only to public addresses. Call it when a subscriber is added or changed to
// refuse a bad target with a clear error; Notify checks again at dial time,
// on the address actually dialled, so a name that later resolves elsewhere
// (DNS rebinding) is refused then. A refused target returns a *TargetError
// (errors.Is ErrTargetRefused); a URL that is not usable wraps ErrInvalidURL;
// a name that does not resolve wraps ErrResolve.
func CheckTarget(ctx context.Context, rawURL string, allowPrivate bool) error {
	return checkTarget(ctx, net.DefaultResolver, rawURL, allowPrivate)
}

func checkTarget(ctx context.Context, r *net.Resolver, rawURL string, allowPrivate bool) error {
	u, err := parseTarget(rawURL)
	if err != nil {
		return err
	}
	host := u.Hostname()
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip}
	} else {
		addrs, err = r.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return fmt.Errorf("%w %q: %v", ErrResolve, host, lookupProblem(err))
		}
		if len(addrs) == 0 {
			return fmt.Errorf("%w %q: no addresses", ErrResolve, host)
		}
	}
	if allowPrivate {
		return nil
	}
	// Refuse when any address is not public: the dialer may pick any of them.
	for _, ip := range addrs {
		if why := blockedWhy(ip); why != "" {
			return &TargetError{Host: host, Addr: ip.WithZone(""), Why: why}
		}
	}
	return nil
}

// lookupProblem keeps a DNS error short and free of the resolver's address.
func lookupProblem(err error) string {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		switch {
		case dnsErr.IsNotFound:
			return "no such host"
		case dnsErr.IsTimeout:
			return "DNS lookup timed out"
		}
		return dnsErr.Err
	}
	return err.Error()
}

// dialControl runs after the socket is created and before it connects, on
// the address the dialer resolved, so no packet reaches a refused address
// and DNS rebinding between CheckTarget and the send cannot get through.
// allowPrivate skips the check. guard, when set, runs after an address
// passed (tests use it to make sure nothing but loopback is ever dialled).
func dialControl(allowPrivate bool, guard func(address string) error) func(ctx context.Context, network, address string, c syscall.RawConn) error {
	return func(_ context.Context, _, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return &TargetError{Host: address, Why: "dialled address is not an IP address"}
		}
		if why := blockedWhy(ap.Addr()); why != "" && !allowPrivate {
			return &TargetError{Addr: ap.Addr().WithZone(""), Why: why}
		}
		if guard != nil {
			return guard(address)
		}
		return nil
	}
}

// maskedTarget is how a target appears in logs and errors.
func maskedTarget(rawURL string) string {
	return notifier.MaskContact(notifier.Webhook, rawURL)
}
