// Package webhook delivers Varsel events to HTTP endpoints, signed per the
// Standard Webhooks specification (https://www.standardwebhooks.com): headers
// webhook-id, webhook-timestamp and webhook-signature, an id stable across
// retries, and both signatures while a secret is being rotated. Targets on
// non-public addresses are refused at dial time unless AllowPrivate is set.
package webhook

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/varsel/varsel/notifier"
)

// Errors wrapped by what Notify and CheckTarget return.
var (
	// ErrTargetRefused means the target is not http(s) or resolves to an
	// address that is not public; see *TargetError.
	ErrTargetRefused = errors.New("webhook target refused")
	// ErrInvalidURL means the subscriber's webhook URL is missing or unusable.
	ErrInvalidURL = errors.New("invalid webhook URL")
	// ErrResolve means the target's host name did not resolve.
	ErrResolve = errors.New("cannot resolve webhook host")
	// ErrInvalidSecret means the subscriber's secret is not a whsec_ secret.
	ErrInvalidSecret = errors.New("invalid webhook secret")
	// ErrIncomplete means the delivery lacks its event, subscriber or message.
	ErrIncomplete = errors.New("incomplete delivery")
	// ErrRedirect means the receiver answered 3xx; redirects are not followed.
	ErrRedirect = errors.New("redirect not followed")
	// ErrGone means the receiver answered 410 Gone: it wants no more deliveries.
	ErrGone = errors.New("endpoint is gone")
	// ErrStatus means the receiver answered with another non-2xx status.
	ErrStatus = errors.New("unexpected HTTP status")
)

// MaxRetryAfter caps a receiver's Retry-After so one answer cannot park a
// delivery for ever.
const MaxRetryAfter = 24 * time.Hour

// Channel sends webhooks. It is safe for concurrent use; create one per
// process and reuse it so connections to a receiver are kept alive.
type Channel struct {
	cfg       Config
	client    *http.Client
	transport *http.Transport
	// selfClient calls Config.Self (loopback allowed); nil without Self.
	selfClient *http.Client
	logger     *slog.Logger
	now        func() time.Time
	bodies     bodyCache
}

var (
	_ notifier.Channel   = (*Channel)(nil)
	_ notifier.Backoffer = (*Channel)(nil)
)

// New returns a webhook channel with its own HTTP client. Zero fields of cfg
// take their defaults; an invalid cfg is an error listing every problem.
func New(cfg Config, logger *slog.Logger) (*Channel, error) {
	return newChannel(cfg, logger, nil)
}

// newChannel lets tests add a guard that runs on every address dialled
// after the target check passed.
func newChannel(cfg Config, logger *slog.Logger, guard func(address string) error) (*Channel, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	client, tr := newClient(cfg, cfg.AllowPrivate, guard)
	c := &Channel{cfg: cfg, client: client, transport: tr, logger: logger, now: time.Now}
	if len(cfg.Self) > 0 {
		c.selfClient, _ = newClient(cfg, true, guard)
	}
	return c, nil
}

// newClient returns the HTTP client of a channel, refusing non-public
// addresses at dial time unless allowPrivate.
func newClient(cfg Config, allowPrivate bool, guard func(address string) error) (*http.Client, *http.Transport) {
	dialer := &net.Dialer{
		Timeout:        cfg.ConnectTimeout,
		KeepAlive:      30 * time.Second,
		ControlContext: dialControl(allowPrivate, guard),
	}
	tr := &http.Transport{
		// No proxy: a proxy would dial the target for us and the dial-time
		// address check would only see the proxy.
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    cfg.ConnectTimeout,
		MaxIdleConns:           100 + cfg.MaxIdleConnsPerHost,
		MaxIdleConnsPerHost:    cfg.MaxIdleConnsPerHost,
		IdleConnTimeout:        90 * time.Second,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		// The body is discarded; asking for gzip would only invite a
		// decompression bomb.
		DisableCompression: true,
	}
	client := &http.Client{
		Transport: tr,
		Timeout:   cfg.Timeout,
		// A redirect could lead anywhere, and receivers must answer 2xx
		// themselves: the 3xx is returned to Notify as a failure.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return client, tr
}

// Name implements notifier.Channel.
func (c *Channel) Name() notifier.ChannelName { return notifier.Webhook }

var _ notifier.Endpointer = (*Channel)(nil)

// Endpoint implements notifier.Endpointer: the scheme, host and port of the
// subscriber's webhook, so one slow receiver gets only a few workers.
func (c *Channel) Endpoint(s *notifier.Subscriber) string {
	u, err := url.Parse(s.WebhookURL)
	if err != nil || u.Host == "" {
		return "invalid"
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	return strings.ToLower(u.Scheme) + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// Backoff implements notifier.Backoffer: the wait after attempt (counting
// from 1) failed, from Config.Schedule; past its end, the last entry.
func (c *Channel) Backoff(attempt int) time.Duration {
	s := c.cfg.Schedule
	i := min(max(attempt-1, 0), len(s)-1)
	return s[i]
}

// MaxAttempts is how many times a delivery is tried: the first attempt and
// one retry per Schedule entry.
func (c *Channel) MaxAttempts() int { return len(c.cfg.Schedule) + 1 }

// CloseIdleConnections closes kept-alive connections, for shutdown.
func (c *Channel) CloseIdleConnections() {
	c.transport.CloseIdleConnections()
	if c.selfClient != nil {
		c.selfClient.CloseIdleConnections()
	}
}

// MessageID returns the webhook-id of a delivery: the same for every attempt
// of the delivery so receivers can drop duplicates.
func MessageID(deliveryID string) string {
	sum := sha256.Sum256([]byte(deliveryID))
	return "msg_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:16]))
}

// Notify posts the signed payload of d to the subscriber's webhook URL.
// 2xx succeeds with Receipt.ProviderID set to the webhook-id. Otherwise
// err is a *notifier.SendError and retry says whether a later attempt can
// help: 410 suppresses the endpoint (ReasonGone); 429, 502, 503 and 504
// retry after the receiver's Retry-After when it gives one; other 5xx,
// timeouts and network errors retry; 3xx, other 4xx, refused targets and
// unusable deliveries do not. Errors and logs name the target only as
// scheme and host.
func (c *Channel) Notify(ctx context.Context, d *notifier.Delivery) (notifier.Receipt, bool, error) {
	if d == nil || d.Subscriber == nil || d.Event == nil || d.Message == nil {
		return notifier.Receipt{}, false, &notifier.SendError{Reason: notifier.ReasonRejected, Err: fmt.Errorf("%w: needs event, subscriber and message", ErrIncomplete)}
	}
	rawURL := d.Subscriber.WebhookURL
	fail := func(retry bool, se *notifier.SendError) (notifier.Receipt, bool, error) {
		level := slog.LevelDebug
		if errors.Is(se, ErrTargetRefused) {
			level = slog.LevelWarn
		}
		c.logger.Log(ctx, level, "webhook not delivered", "delivery", d.ID, "target", maskedTarget(rawURL),
			"attempt", d.Attempt, "reason", se.Reason, "retry", retry, "error", se.Err)
		return notifier.Receipt{}, retry, se
	}
	if rawURL == "" {
		return fail(false, &notifier.SendError{Reason: notifier.ReasonInvalidAddress, Err: fmt.Errorf("%w: subscriber has none", ErrInvalidURL)})
	}
	u, err := parseTarget(rawURL)
	if err != nil {
		reason := notifier.ReasonInvalidAddress
		if errors.Is(err, ErrTargetRefused) {
			reason = notifier.ReasonRejected
		}
		return fail(false, &notifier.SendError{Reason: reason, Err: err})
	}
	client := c.client
	self := c.selfClient != nil && slices.Contains(c.cfg.Self, u.String())
	if self {
		client = c.selfClient
	}
	// An address literal is checked here for a clear, deterministic error;
	// names are checked at dial time on the address they resolve to.
	if ip, err := netip.ParseAddr(u.Hostname()); err == nil && !c.cfg.AllowPrivate && !self {
		if why := blockedWhy(ip); why != "" {
			return fail(false, &notifier.SendError{Reason: notifier.ReasonRejected,
				Err: &TargetError{Host: u.Hostname(), Addr: ip.WithZone(""), Why: why}})
		}
	}
	now := c.now()
	signed, err := signWith(d, now, c.cfg.UserAgent, c.logger, &c.bodies)
	if err != nil {
		reason := notifier.ReasonRejected
		if !errors.Is(err, ErrInvalidSecret) {
			reason = notifier.ReasonTemplate
		}
		return fail(false, &notifier.SendError{Reason: reason, Err: err})
	}
	id := signed.ID

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(signed.Body))
	if err != nil {
		return fail(false, &notifier.SendError{Reason: notifier.ReasonInvalidAddress, Err: fmt.Errorf("%w: cannot build a request", ErrInvalidURL)})
	}
	for k, v := range signed.Header {
		req.Header[k] = v
	}

	resp, err := client.Do(req)
	if err != nil {
		reason, retry, err := classifyTransportError(u.Hostname(), err)
		return fail(retry, &notifier.SendError{Reason: reason, Err: fmt.Errorf("post to %s: %w", maskedTarget(rawURL), err)})
	}
	// Read a little so the connection can be reused; the content is ignored.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, c.cfg.MaxResponseBody))
	_ = resp.Body.Close()

	if se, retry := classifyResponse(resp, u, now); se != nil {
		se.Err = fmt.Errorf("post to %s: %w", maskedTarget(rawURL), se.Err)
		return fail(retry, se)
	}
	if c.logger.Enabled(ctx, slog.LevelDebug) {
		c.logger.Debug("webhook delivered", "delivery", d.ID, "target", maskedTarget(rawURL),
			"attempt", d.Attempt, "status", resp.StatusCode, "webhook_id", id)
	}
	return notifier.Receipt{ProviderID: id, Note: "HTTP " + strconv.Itoa(resp.StatusCode)}, false, nil
}

// classifyResponse returns nil for a 2xx answer, else the failure and
// whether to retry. Errors never quote the URL or the Location header in
// full: only scheme and host.
func classifyResponse(resp *http.Response, u *url.URL, now time.Time) (*notifier.SendError, bool) {
	code := resp.StatusCode
	status := fmt.Sprintf("%d %s", code, http.StatusText(code))
	switch {
	case code >= 200 && code < 300:
		return nil, false
	case code >= 300 && code < 400:
		loc := "nowhere"
		if h := resp.Header.Get("Location"); h != "" {
			if l, err := u.Parse(h); err == nil {
				loc = maskedTarget(l.String())
			}
		}
		return &notifier.SendError{Reason: notifier.ReasonRejected, Err: fmt.Errorf("answered %s to %s: %w", status, loc, ErrRedirect)}, false
	case code == http.StatusGone:
		return &notifier.SendError{Reason: notifier.ReasonGone, Suppress: true, Err: fmt.Errorf("answered %s: %w", status, ErrGone)}, false
	case code == http.StatusTooManyRequests:
		return &notifier.SendError{Reason: notifier.ReasonRateLimited, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), now),
			Err: fmt.Errorf("answered %s: %w", status, ErrStatus)}, true
	case code == http.StatusBadGateway, code == http.StatusServiceUnavailable, code == http.StatusGatewayTimeout:
		return &notifier.SendError{Reason: notifier.ReasonServer, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), now),
			Err: fmt.Errorf("answered %s: %w", status, ErrStatus)}, true
	case code >= 500:
		return &notifier.SendError{Reason: notifier.ReasonServer, Err: fmt.Errorf("answered %s: %w", status, ErrStatus)}, true
	}
	return &notifier.SendError{Reason: notifier.ReasonRejected, Err: fmt.Errorf("answered %s: %w", status, ErrStatus)}, false
}

// classifyTransportError turns an error from http.Client.Do into a reason,
// a retry verdict and an error that does not quote the URL (url.Error
// would print its query and path).
func classifyTransportError(host string, err error) (notifier.Reason, bool, error) {
	var te *TargetError
	if errors.As(err, &te) {
		if te.Host == "" {
			te.Host = host
		}
		return notifier.ReasonRejected, false, te
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return notifier.ReasonTimeout, true, err
	}
	// Network errors, and a cancellation by the caller (shutdown), which
	// says nothing about the target: try again later.
	return notifier.ReasonNetwork, true, err
}

// Signed is one webhook request as Notify sends it: its webhook-id, the
// exact body, and every header Varsel sets (Content-Type, User-Agent,
// webhook-id, webhook-timestamp, webhook-signature).
type Signed struct {
	ID     string
	Body   []byte
	Header http.Header
}

// Sign builds the body of d as sent at now and signs it with the
// subscriber's secret (and, during a rotation, the previous one): exactly
// the request Notify posts, so the outbox can show it. userAgent empty
// means DefaultUserAgent; logger may be nil. An unusable secret is an
// error wrapping ErrInvalidSecret.
func Sign(d *notifier.Delivery, now time.Time, userAgent string, logger *slog.Logger) (*Signed, error) {
	return signWith(d, now, userAgent, logger, nil)
}

// signWith is Sign with the payload's data object from bodies, when given.
func signWith(d *notifier.Delivery, now time.Time, userAgent string, logger *slog.Logger, bodies *bodyCache) (*Signed, error) {
	if d == nil || d.Subscriber == nil || d.Event == nil || d.Message == nil {
		return nil, fmt.Errorf("%w: needs event, subscriber and message", ErrIncomplete)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	id := MessageID(d.ID)
	var body []byte
	var err error
	if bodies != nil {
		body, err = bodies.body(d, now)
	} else {
		body, err = json.Marshal(buildPayload(d, now))
	}
	if err != nil {
		return nil, fmt.Errorf("encode payload: %w", err)
	}
	sig, err := signature(logger, d.Subscriber, id, now, body)
	if err != nil {
		return nil, err
	}
	// The keys in their canonical form, as Header.Set would make them
	// (the receiver's header lookup is case-insensitive).
	h := http.Header{
		"Content-Type":      {"application/json"},
		"User-Agent":        {cmp.Or(userAgent, DefaultUserAgent)},
		"Webhook-Id":        {id},
		"Webhook-Timestamp": {strconv.FormatInt(now.Unix(), 10)},
		"Webhook-Signature": {sig},
	}
	return &Signed{ID: id, Body: body, Header: h}, nil
}

// signature returns the webhook-signature header value: v1 signatures with
// the current secret and, during a rotation, the previous one.
func signature(logger *slog.Logger, s *notifier.Subscriber, id string, now time.Time, body []byte) (string, error) {
	key, err := decodeSecret(s.WebhookSecret)
	if err != nil {
		return "", err
	}
	sig := "v1," + sign(key, id, now, body)
	if s.PreviousWebhookSecret != "" && s.PreviousSecretUntil != nil && now.Before(*s.PreviousSecretUntil) {
		prev, err := decodeSecret(s.PreviousWebhookSecret)
		if err != nil {
			// Never quote it: say only that it was skipped.
			logger.Warn("previous webhook secret is not a whsec_ secret; signing with the current one only", "subscriber", s.ID)
		} else {
			sig += " v1," + sign(prev, id, now, body)
		}
	}
	return sig, nil
}

func decodeSecret(secret string) ([]byte, error) {
	if !notifier.ValidWebhookSecret(secret) {
		return nil, fmt.Errorf("%w: want whsec_ and base64 of 24–64 bytes", ErrInvalidSecret)
	}
	return base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
}

// sign is Standard Webhooks' v1 scheme: base64 of HMAC-SHA256 over
// "<id>.<unix seconds>.<body>".
func sign(key []byte, id string, ts time.Time, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write(strconv.AppendInt(nil, ts.Unix(), 10))
	m.Write([]byte{'.'})
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// parseRetryAfter reads Retry-After as seconds or an HTTP date, capped at
// MaxRetryAfter; zero when absent or unreadable (use the schedule).
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), MaxRetryAfter)
}
