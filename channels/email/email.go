// Package email delivers notifications over SMTP with go-mail
// (github.com/wneessen/go-mail): a small pool of persistent connections,
// multipart/alternative messages threaded per incident, RFC 8058 one-click
// unsubscribe headers and optional DKIM signing.
package email

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"

	"github.com/varsel/varsel/notifier"
)

// Errors of the email channel.
var (
	// ErrClosed is returned by Notify after Close.
	ErrClosed = errors.New("email channel closed")
	// ErrEmptyMessage means the rendered message has no subject or no body.
	ErrEmptyMessage = errors.New("rendered email has no subject or body")
	// ErrNoUnsubscribe means the rendered message has no unsubscribe URL,
	// which RFC 8058 and the big mailbox providers require on every message.
	ErrNoUnsubscribe = errors.New("rendered email has no unsubscribe URL")
	// ErrBadAddress means the subscriber has no usable email address.
	ErrBadAddress = errors.New("subscriber has no valid email address")
	// ErrIncomplete means the delivery lacks its event or subscriber.
	ErrIncomplete = errors.New("delivery has no event or subscriber")
)

var _ notifier.Channel = (*Channel)(nil)

// Channel sends email through a pool of at most Config.PoolSize persistent
// SMTP connections. It is safe for concurrent use.
type Channel struct {
	cfg       Config
	from      *mail.Address
	dkimKeys  []dkimKey // one signature each, in this order
	tlsConfig *tls.Config
	logger    *slog.Logger

	// sem holds one token per send in flight; a slot is only used with a
	// token, so no more than PoolSize connections are ever open.
	sem chan struct{}
	// idle is a stack of slots not in use; connected slots are pushed on
	// top so that warm connections are reused before new ones are dialled.
	mu        sync.Mutex
	idle      []*slot
	done      chan struct{}
	closeOnce sync.Once
}

// slot is one pooled connection: a go-mail client and, while connected, the
// TCP connection under it.
type slot struct {
	client *gomail.Client
	sc     *smtp.Client // go-mail's connection while connected
	ext    extensions
	conn   atomic.Pointer[trackedConn]
}

// New checks cfg and returns a channel. It does not connect: connections
// are opened on first use and re-opened after a failure.
func New(cfg Config, logger *slog.Logger) (*Channel, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("email config: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("parse from address: %w", err)
	}
	c := &Channel{
		cfg:       cfg,
		from:      from,
		tlsConfig: &tls.Config{ServerName: cfg.Host, MinVersion: tls.VersionTLS12},
		logger:    logger.With("channel", string(notifier.Email)),
		sem:       make(chan struct{}, cfg.PoolSize),
		done:      make(chan struct{}),
	}
	for _, d := range []*DKIMConfig{cfg.DKIM, cfg.DKIMRSA} {
		if d == nil {
			continue
		}
		k, err := d.signer()
		if err != nil {
			return nil, err
		}
		c.dkimKeys = append(c.dkimKeys, dkimKey{domain: d.Domain, selector: d.Selector, key: k})
	}
	c.logger.Info("email channel ready", "smtp", cfg)
	return c, nil
}

// Name returns notifier.Email.
func (c *Channel) Name() notifier.ChannelName { return notifier.Email }

// Notify sends d.Message to d.Subscriber. On failure retry says whether a
// later attempt can help and err is a *notifier.SendError: SMTP 4xx,
// network, TLS and timeout errors retry; 5xx on RCPT is a hard bounce
// (ReasonBounced), other 5xx are ReasonRejected; an empty rendering is
// ReasonTemplate. The error text never holds the full recipient address.
func (c *Channel) Notify(ctx context.Context, d *notifier.Delivery) (notifier.Receipt, bool, error) {
	msg, id, err := c.buildMessage(d)
	if err != nil {
		c.logFailure(d, err, false)
		return notifier.Receipt{}, false, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.SendTimeout)
	defer cancel()

	select {
	case c.sem <- struct{}{}:
	case <-c.done:
		return notifier.Receipt{}, true, &notifier.SendError{Reason: notifier.ReasonUnknown, Err: ErrClosed}
	case <-ctx.Done():
		err := &notifier.SendError{Reason: notifier.ReasonTimeout, Err: fmt.Errorf("wait for smtp connection: %w", ctx.Err())}
		c.logFailure(d, err, true)
		return notifier.Receipt{}, true, err
	}
	s := c.take()
	defer c.put(s)
	select {
	case <-c.done:
		return notifier.Receipt{}, true, &notifier.SendError{Reason: notifier.ReasonUnknown, Err: ErrClosed}
	default:
	}

	start := time.Now()
	if err, retry := c.send(ctx, s, msg, d.Subscriber.Email); err != nil {
		c.logFailure(d, err, retry)
		return notifier.Receipt{}, retry, err
	}
	c.logger.Debug("email sent", "delivery", d.ID, "to", notifier.MaskEmail(d.Subscriber.Email),
		"message_id", id, "took", time.Since(start))
	return notifier.Receipt{ProviderID: "<" + id + ">"}, false, nil
}

// take returns an idle slot, preferring a connected one; the caller holds
// a token of c.sem.
func (c *Channel) take() *slot {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.idle); n > 0 {
		s := c.idle[n-1]
		c.idle = c.idle[:n-1]
		return s
	}
	return &slot{}
}

// put returns s to the idle stack and releases the caller's token.
func (c *Channel) put(s *slot) {
	c.mu.Lock()
	if s.conn.Load() != nil {
		c.idle = append(c.idle, s)
	} else {
		c.idle = append([]*slot{s}, c.idle...)
	}
	c.mu.Unlock()
	<-c.sem
}

func (c *Channel) logFailure(d *notifier.Delivery, err error, retry bool) {
	to := ""
	if d.Subscriber != nil {
		to = notifier.MaskEmail(d.Subscriber.Email)
	}
	c.logger.Warn("email not sent", "delivery", d.ID, "to", to, "attempt", d.Attempt,
		"reason", notifier.ReasonOf(err), "retry", retry, "err", err)
}

// send delivers msg on s, dialling when s has no connection. A pooled
// connection that the server closed while idle fails at MAIL FROM, before
// anything was handed over; then send dials once more.
func (c *Channel) send(ctx context.Context, s *slot, msg *gomail.Msg, rcpt string) (*notifier.SendError, bool) {
	// Cancelling ctx closes the socket, which ends any SMTP command at once.
	stop := context.AfterFunc(ctx, func() {
		if tc := s.conn.Load(); tc != nil {
			tc.abort()
		}
	})
	defer stop()
	for attempt := 1; ; attempt++ {
		reused := s.conn.Load() != nil
		if reused && (s.sc.Text.R.Buffered() > 0 || !idleClean(s.conn.Load().Conn)) {
			// The server closed the pooled connection while it was idle,
			// or spoke unasked (a 421 before closing; a reply out of turn
			// already read into go-mail's buffer): nothing is sent on it.
			// With BDAT this is the only safe time to find out.
			c.drop(s)
			reused = false
		}
		if !reused {
			if err := c.dial(ctx, s); err != nil {
				ioErr := s.conn.Load().failure()
				if errors.Is(err, context.DeadlineExceeded) {
					ioErr = nil // the abort after the greeting's wait, not a fault of the wire
				}
				c.drop(s)
				return c.classify("dial smtp server", &failure{err: err}, ioErr, ctx.Err(), rcpt)
			}
		}
		tc := s.conn.Load()
		f := c.transact(s, msg)
		if f == nil {
			return nil, false
		}
		if f.step == stepReset && f.delivered {
			// The server took the message; only the RSET after it failed.
			c.drop(s)
			return nil, false
		}
		ioErr := tc.failure()
		if ioErr != nil || ctx.Err() != nil || !f.replyError() {
			c.drop(s)
		}
		if reused && attempt == 1 && ctx.Err() == nil && f.stale(ioErr) {
			continue
		}
		return c.classify(f.stage(), f, ioErr, ctx.Err(), rcpt)
	}
}

// transact sends msg on s's connection: pipelined when the server offers
// PIPELINING, else with go-mail's one command at a time.
func (c *Channel) transact(s *slot, msg *gomail.Msg) *failure {
	if s.ext.pipelining {
		return sendPipelined(s.sc, s.ext, msg, c.cfg.SendTimeout)
	}
	if err := s.client.SendWithSMTPClient(s.sc, msg); err != nil {
		f := goMailFailure(err, msg)
		if f.replyError() {
			// go-mail has reset after the refusal, but keeps no word of
			// whether RSET was answered: ask again, and keep the
			// connection only if the server is in no transaction.
			f.clean = s.sc.Reset() == nil
		}
		return f
	}
	return nil
}

// dial opens a connection for s.
func (c *Channel) dial(ctx context.Context, s *slot) error {
	if s.client == nil {
		cl, err := gomail.NewClient(c.cfg.Host, c.clientOptions(s)...)
		if err != nil {
			return fmt.Errorf("configure smtp client: %w", err)
		}
		s.client = cl
	}
	// Connecting is bounded by DialTimeout (dialConn); the greeting, EHLO,
	// STARTTLS and AUTH after it by the send's context, whose end closes
	// the socket (send). A server that says nothing was reported as "use
	// of closed network connection": say what was waited for.
	sc, err := s.client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		// go-mail's own deadline (the same send timeout) may end the read
		// a moment before the context: either is the same wait run out.
		if errors.Is(ctx.Err(), context.DeadlineExceeded) || isTimeout(err) {
			return fmt.Errorf("%w: the smtp server did not finish its greeting, EHLO, STARTTLS and AUTH within the send timeout (%s)", context.DeadlineExceeded, c.cfg.SendTimeout)
		}
		return err
	}
	s.sc, s.ext = sc, readExtensions(sc, c.cfg.Pipelining)
	c.logger.Debug("smtp connection opened", "addr", net.JoinHostPort(c.cfg.Host, strconv.Itoa(c.cfg.Port)))
	return nil
}

func (c *Channel) clientOptions(s *slot) []gomail.Option {
	opts := []gomail.Option{
		gomail.WithPort(c.cfg.Port),
		gomail.WithTimeout(c.cfg.SendTimeout),
		// Skip a round trip before and after every message: a dead pooled
		// connection shows at MAIL FROM, which is safe to repeat (see
		// staleConn), and a completed DATA already ends the transaction.
		gomail.WithoutNoop(), gomail.WithoutRset(),
		gomail.WithTLSConfig(c.tlsConfig),
		gomail.WithDialContextFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
			return c.dialConn(ctx, s, network, addr)
		}),
	}
	switch c.cfg.TLS {
	case TLSStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	default:
		// Implicit TLS is set up in dialConn, under go-mail's feet.
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if c.cfg.Username != "" {
		opts = append(opts, gomail.WithSMTPAuth(authTypes[c.cfg.Auth]),
			gomail.WithUsername(c.cfg.Username), gomail.WithPassword(c.cfg.Password))
	}
	return opts
}

// dialConn opens the TCP (and for tls=tls the TLS) connection and records
// it in s, wrapped so that I/O errors go-mail hides in its own error type can
// still be classified.
func (c *Channel) dialConn(ctx context.Context, s *slot, network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: raw}
	s.conn.Store(tc)
	if c.cfg.TLS != TLSImplicit {
		return tc, nil
	}
	tlsConn := tls.Client(tc, c.tlsConfig)
	if err := tlsConn.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	return tlsConn, nil
}

// drop closes s's connection without a polite QUIT: it failed, or its state
// is unknown.
func (c *Channel) drop(s *slot) {
	if tc := s.conn.Swap(nil); tc != nil {
		_ = tc.Conn.Close()
	}
}

// Close ends every pooled connection with QUIT after in-flight sends finish
// (each is bounded by SendTimeout). Later Notify calls return ErrClosed.
func (c *Channel) Close() error {
	var errs []error
	c.closeOnce.Do(func() {
		close(c.done)
		// Holding every token means no send is in flight.
		for range c.cfg.PoolSize {
			c.sem <- struct{}{}
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, s := range c.idle {
			if s.conn.Load() != nil && s.client != nil {
				if err := s.client.CloseWithSMTPClient(s.sc); err != nil {
					errs = append(errs, fmt.Errorf("close smtp connection: %w", err))
				}
				c.drop(s)
			}
		}
	})
	return errors.Join(errs...)
}

// trackedConn remembers the first I/O error on a connection and whether it
// happened while reading, i.e. while waiting for the server's verdict.
//
// It also holds what go-mail writes until go-mail next reads: SMTP without
// PIPELINING is a dialogue, so everything written before a read is one
// turn and goes in one write. go-mail flushes its 4 KB buffer when it
// fills, which split Varsel's usual 5 KB message into two writes (and two
// segments for the server to read); held, a message costs one write per
// reply waited for. A write that fails when held data goes out is
// recorded as a write, not a read: nothing of it reached the server.
type trackedConn struct {
	net.Conn
	mu      sync.Mutex
	err     error
	onRead  bool
	aborted bool
	// wmu guards held, what is written but not yet sent. go-mail's
	// goroutine of the moment writes and reads, but a TLS handshake
	// closes the connection from another goroutine when its context ends.
	wmu  sync.Mutex
	held []byte
}

// maxHeld bounds what is held: a larger message goes out in parts of
// about this size.
const maxHeld = 64 << 10

func (t *trackedConn) Read(p []byte) (int, error) {
	t.wmu.Lock()
	err := t.flushLocked()
	t.wmu.Unlock()
	if err != nil {
		return 0, err
	}
	n, err := t.Conn.Read(p)
	if err != nil {
		t.record(err, true)
	}
	return n, err
}

func (t *trackedConn) Write(p []byte) (int, error) {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	if len(t.held)+len(p) <= maxHeld {
		t.held = append(t.held, p...)
		return len(p), nil
	}
	if err := t.flushLocked(); err != nil {
		return 0, err
	}
	n, err := t.Conn.Write(p)
	if err != nil {
		t.record(err, false)
	}
	return n, err
}

// flushLocked sends what is held; t.wmu is held.
func (t *trackedConn) flushLocked() error {
	if len(t.held) == 0 {
		return nil
	}
	_, err := t.Conn.Write(t.held)
	t.held = t.held[:0]
	if err != nil {
		t.record(err, false)
	}
	return err
}

// SetDeadline and SetWriteDeadline send what is held: under the new
// deadline when it is later (go-mail setting one for its next command),
// and under the old one first when the new one has passed (crypto/tls
// writes its close_notify, then sets the write deadline to now, so that
// nothing more goes out).
func (t *trackedConn) SetDeadline(d time.Time) error {
	return t.setDeadline(d, t.Conn.SetDeadline)
}

func (t *trackedConn) SetWriteDeadline(d time.Time) error {
	return t.setDeadline(d, t.Conn.SetWriteDeadline)
}

func (t *trackedConn) setDeadline(d time.Time, set func(time.Time) error) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	if !d.IsZero() && !d.After(time.Now()) {
		_ = t.flushLocked() // a failure is recorded
		return set(d)
	}
	err := set(d)
	_ = t.flushLocked()
	return err
}

// Close sends what is held and closes the connection. When another
// goroutine is writing (a TLS handshake that Close is called to cut
// short, from its context's AfterFunc), it closes at once: waiting for
// that write is what Close must end.
func (t *trackedConn) Close() error {
	if t.wmu.TryLock() {
		_ = t.flushLocked()
		t.wmu.Unlock()
	}
	return t.Conn.Close()
}

func (t *trackedConn) record(err error, onRead bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err == nil {
		t.err, t.onRead = err, onRead
	}
}

func (t *trackedConn) abort() {
	t.mu.Lock()
	t.aborted = true
	t.mu.Unlock()
	_ = t.Conn.Close()
}

// failure returns the first I/O error, or nil; tc may be nil.
func (t *trackedConn) failure() *ioFailure {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err == nil {
		return nil
	}
	return &ioFailure{err: t.err, onRead: t.onRead, aborted: t.aborted}
}

// ioFailure is what a trackedConn saw go wrong.
type ioFailure struct {
	err     error
	onRead  bool
	aborted bool
}
