// Package sms delivers notices as SMS through Twilio's Messages API
// (github.com/twilio/twilio-go), rate-limited by segment per sender, and
// serves Twilio's callbacks: inbound STOP/START/HELP and delivery receipts.
package sms

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	twilio "github.com/twilio/twilio-go"
	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"
	"golang.org/x/time/rate"

	"github.com/varsel/varsel/notifier"
)

// Errors returned inside a *notifier.SendError.
var (
	// ErrNoPhone means the subscriber has no E.164 number to send to.
	ErrNoPhone = errors.New("no E.164 phone number")
	// ErrEmptyMessage means the rendered SMS body is empty.
	ErrEmptyMessage = errors.New("empty SMS body")
	// ErrNoSID means Twilio answered success without a message SID, so it
	// is unknown whether the message was accepted.
	ErrNoSID = errors.New("twilio answered without a message SID")
)

// Twilio error codes that change what Varsel does.
const (
	codeTooManyRequests = 20429 // API concurrency limit
	codeQueueFull       = 21611 // the sender's queue is full
	codeOptedOut        = 21610 // the recipient replied STOP
	codeInvalidTo       = 21211 // not a valid phone number
	codeNotMobile       = 21614 // not a mobile number (landline)
)

// listLimit bounds how many recent messages to one number are read when
// checking whether an ambiguous attempt went out after all.
const listLimit = 100

var _ notifier.Channel = (*Channel)(nil)

// Channel sends SMS through Twilio. It is safe for concurrent use.
type Channel struct {
	cfg       Config
	base      *url.URL
	creds     *client.Credentials
	transport http.RoundTripper
	logger    *slog.Logger

	// limiter holds the sender's segment budget. A Channel has one
	// sender, so one limiter is the per-sender limit.
	mu      sync.Mutex
	limiter *rate.Limiter

	// now and sleep are the clock; tests replace them.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

// New returns an SMS channel for cfg, or the problems with cfg. A nil
// logger discards logs.
func New(cfg Config, logger *slog.Logger) (*Channel, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	base, err := url.Parse(cfg.APIURL)
	if err != nil {
		return nil, fmt.Errorf("parse API URL: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	return &Channel{
		cfg:       cfg,
		base:      base,
		creds:     client.NewCredentials(cfg.AccountSID, cfg.AuthToken),
		transport: tr,
		logger:    logger.With("channel", string(notifier.SMS)),
		// Burst 1: Twilio drains a sender's queue at exactly its rate, so
		// a burst would only wait in Twilio's queue (and risk 21611 /
		// 30001), and with burst 1 no one-second window holds more than
		// Rate single-segment messages.
		limiter: rate.NewLimiter(rate.Limit(cfg.Rate), 1),
		now:     time.Now,
		sleep:   sleepCtx,
	}, nil
}

// Name returns notifier.SMS.
func (c *Channel) Name() notifier.ChannelName { return notifier.SMS }

// Notify sends d.Message.SMS to the subscriber's phone. It waits for the
// sender's segment budget first; if the next slot comes after ctx's
// deadline it returns a retryable ReasonRateLimited with RetryAfter at
// once, and if ctx ends while waiting a retryable ReasonTimeout. After an
// ambiguous attempt (d.PreviousReason is notifier.ReasonAmbiguous) it
// first looks for that message in Twilio's list and, when it is there,
// returns it with a Note instead of sending it again; if the list cannot
// be read it sends nothing and stays ReasonAmbiguous (retry).
func (c *Channel) Notify(ctx context.Context, d *notifier.Delivery) (notifier.Receipt, bool, error) {
	var to string
	if d.Subscriber != nil {
		to = d.Subscriber.Phone
	}
	if !notifier.ValidPhone(to) {
		return notifier.Receipt{}, false, &notifier.SendError{Reason: notifier.ReasonInvalidAddress, Err: ErrNoPhone}
	}
	if d.Message == nil || strings.TrimSpace(d.Message.SMS) == "" {
		return notifier.Receipt{}, false, &notifier.SendError{Reason: notifier.ReasonTemplate, Err: ErrEmptyMessage}
	}
	body := d.Message.SMS
	segments := max(1, d.Message.Segments)
	log := c.logger.With("delivery", d.ID, "to", notifier.MaskPhone(to), "attempt", d.Attempt)

	var note string
	if d.PreviousReason == notifier.ReasonAmbiguous {
		sid, err := c.findEarlier(ctx, d, to, body)
		if err != nil {
			// Still unknown whether the earlier attempt went out: sending
			// now could send it twice, so try the check again later.
			log.Warn("sms: cannot check for an earlier send; not sending", "err", err)
			return notifier.Receipt{}, true, &notifier.SendError{Reason: notifier.ReasonAmbiguous, Err: err}
		}
		if sid != "" {
			note = "found earlier send " + sid + ", not resent"
			log.Info("sms: earlier ambiguous attempt was accepted; not resending", "sid", sid)
			return notifier.Receipt{ProviderID: sid, Segments: segments, Note: note}, false, nil
		}
		note = "no earlier send found after an ambiguous attempt, sent again"
		log.Info("sms: no earlier send found after an ambiguous attempt; sending")
	}

	now := c.now()
	wait, cancel := c.reserve(now, segments)
	if dl, ok := ctx.Deadline(); ok && now.Add(wait).After(dl) {
		// The slot comes after ctx ends: give it back and let the job
		// come back later rather than hold a worker until it times out.
		cancel()
		return notifier.Receipt{}, true, &notifier.SendError{Reason: notifier.ReasonRateLimited, RetryAfter: wait, Paced: true,
			Err: fmt.Errorf("wait for rate limit: next slot in %v, after the deadline", wait)}
	}
	if wait > 0 {
		if err := c.sleep(ctx, wait); err != nil {
			cancel()
			return notifier.Receipt{}, true, &notifier.SendError{Reason: notifier.ReasonTimeout, Err: fmt.Errorf("wait for rate limit: %w", err)}
		}
	}

	params := &openapi.CreateMessageParams{}
	params.SetTo(to)
	params.SetBody(body)
	if c.cfg.From != "" {
		params.SetFrom(c.cfg.From)
	} else {
		params.SetMessagingServiceSid(c.cfg.MessagingServiceSID)
	}
	if c.cfg.PublicURL != "" {
		params.SetStatusCallback(c.cfg.PublicURL + "/twilio/status?delivery=" + url.QueryEscape(d.ID))
	}
	params.SetValidityPeriod(int(c.cfg.ValidityPeriod / time.Second))

	cctx, stop := context.WithTimeout(ctx, c.cfg.Timeout)
	defer stop()
	att := &attempt{ctx: cctx, ch: c}
	m, err := c.api(att).CreateMessage(params)
	if err == nil && (m.Sid == nil || *m.Sid == "") {
		err = ErrNoSID
	}
	if err != nil {
		se := classify(att, err, to)
		retry := retryable(se.Reason)
		log.Warn("sms: send failed", "reason", se.Reason, "retry", retry, "err", se.Err)
		return notifier.Receipt{}, retry, se
	}
	log.Debug("sms: sent", "sid", *m.Sid, "segments", segments)
	return notifier.Receipt{ProviderID: *m.Sid, Segments: segments, Note: note}, false, nil
}

// reserve books segments tokens of the sender's budget at now and returns
// how long to wait before sending, and a function that gives the tokens
// back if the message is not sent. Each segment takes its own slot of
// 1/Rate seconds; the message goes out at its first slot and the other
// slots hold back the next message. So in any one-second window the
// sender hands Twilio at most Rate segments, plus the rest of one
// multi-segment message (its segments cannot be split).
func (c *Channel) reserve(now time.Time, segments int) (time.Duration, func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rs := make([]*rate.Reservation, segments)
	for i := range rs {
		// n=1 never exceeds the burst, so every reservation is OK.
		rs[i] = c.limiter.ReserveN(now, 1)
	}
	cancel := func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		t := c.now()
		for i := len(rs) - 1; i >= 0; i-- {
			rs[i].CancelAt(t)
		}
	}
	// x/time/rate computes in float seconds and can come out a few
	// nanoseconds early; rounding up keeps every slot at or after its time.
	wait := rs[0].DelayFrom(now)
	if r := wait % time.Microsecond; r != 0 {
		wait += time.Microsecond - r
	}
	return wait, cancel
}

// findEarlier looks in Twilio's message list for a message with body sent
// to to since the delivery's first attempt, and returns its SID or "".
func (c *Channel) findEarlier(ctx context.Context, d *notifier.Delivery, to, body string) (string, error) {
	since := d.FirstAttemptAt
	if since.IsZero() {
		since = d.PreviousAttemptAt
	}
	if since.IsZero() {
		// No record of when it began: look back a day rather than miss it.
		since = c.now().Add(-24 * time.Hour)
	}
	params := &openapi.ListMessageParams{}
	params.SetTo(to)
	if c.cfg.From != "" {
		// A messaging service picks the number, so only a fixed From
		// narrows the search.
		params.SetFrom(c.cfg.From)
	}
	// No DateSent filter: a message still queued at Twilio has no
	// date_sent yet and would be missed, and then sent twice. Read the
	// newest messages to the number and compare date_created here instead.
	params.SetPageSize(listLimit)
	params.SetLimit(listLimit)

	cctx, stop := context.WithTimeout(ctx, c.cfg.Timeout)
	defer stop()
	msgs, err := c.api(&attempt{ctx: cctx, ch: c}).ListMessage(params)
	if err != nil {
		return "", redact(fmt.Errorf("list messages: %w", err), to)
	}
	// A minute of slack for clock skew between us and Twilio.
	cutoff := since.Add(-time.Minute)
	for _, m := range msgs {
		if m.Body == nil || *m.Body != body || m.Sid == nil || *m.Sid == "" {
			continue
		}
		// Same text sent before this delivery began (an earlier, identical
		// update) is not this attempt. An unreadable date counts as a match:
		// better one missing SMS than a second one.
		if m.DateCreated != nil {
			if created, err := time.Parse(time.RFC1123Z, *m.DateCreated); err == nil && created.Before(cutoff) {
				continue
			}
		}
		return *m.Sid, nil
	}
	return "", nil
}

// api returns a Twilio API client whose requests go through att, so they
// carry its context and reach cfg.APIURL. twilio-go builds its requests
// without a context, hence one small client per call.
func (c *Channel) api(att *attempt) *openapi.ApiService {
	tc := &client.Client{
		Credentials: c.creds,
		HTTPClient: &http.Client{
			Transport:     att,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	tc.SetAccountSid(c.cfg.AccountSID)
	rc := twilio.NewRestClientWithParams(twilio.ClientParams{Client: tc})
	// TWILIO_EDGE / TWILIO_REGION would rename the host; APIURL decides.
	rc.Edge, rc.Region = "", ""
	return rc.Api
}

// retryable reports whether sending again later can help.
func retryable(r notifier.Reason) bool {
	switch r {
	case notifier.ReasonNetwork, notifier.ReasonTimeout, notifier.ReasonAmbiguous,
		notifier.ReasonRateLimited, notifier.ReasonServer:
		return true
	}
	return false
}

// classify turns a failed CreateMessage into a SendError. The recipient's
// number is masked in the error text, since it ends up in logs and the
// delivery log.
func classify(att *attempt, err error, to string) *notifier.SendError {
	status := att.statusCode()
	se := &notifier.SendError{RetryAfter: att.retryAfterDelay()}
	var te *client.TwilioRestError
	if errors.As(err, &te) {
		if te.Status == 0 {
			te.Status = status
		}
		ae := &APIError{Status: te.Status, Code: te.Code, Message: maskText(te.Message, to), MoreInfo: te.MoreInfo}
		se.Err = fmt.Errorf("create message: %w", ae)
		switch {
		case te.Code == codeOptedOut:
			se.Reason, se.Suppress = notifier.ReasonOptedOut, true
		case te.Code == codeInvalidTo || te.Code == codeNotMobile:
			se.Reason, se.Suppress = notifier.ReasonInvalidAddress, true
		case te.Status == http.StatusTooManyRequests || te.Code == codeTooManyRequests || te.Code == codeQueueFull:
			se.Reason = notifier.ReasonRateLimited
		case te.Status >= 500:
			se.Reason = notifier.ReasonServer
		default:
			se.Reason = notifier.ReasonRejected
		}
		return se
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		// The client names the URL twilio-go built: Twilio's host, not
		// the one the request went to (VARSEL_TWILIO_API_URL), and a path
		// holding the Account SID, the API's user name. Name the host it
		// went to, without the path.
		err = fmt.Errorf("%s %s://%s: %w", ue.Op, att.ch.base.Scheme, att.ch.base.Host, ue.Err)
	}
	se.Err = redact(fmt.Errorf("create message: %w", err), to)
	switch {
	case status >= 200 && status < 300:
		// Twilio accepted something but the answer was unreadable.
		se.Reason = notifier.ReasonAmbiguous
	case status == http.StatusTooManyRequests:
		se.Reason = notifier.ReasonRateLimited
	case status >= 500:
		se.Reason = notifier.ReasonServer
	case status >= 300:
		se.Reason = notifier.ReasonRejected
	case att.wrote.Load():
		// The request left, no answer came back: Twilio may have queued
		// the message. The next attempt checks before sending.
		se.Reason = notifier.ReasonAmbiguous
	default:
		// Nothing was sent (dial, DNS, TLS, or ctx ended first).
		se.Reason = notifier.ReasonNetwork
	}
	return se
}

// APIError is an error answer from the Twilio API, with the recipient's
// number masked in Message.
type APIError struct {
	Status   int    // HTTP status
	Code     int    // Twilio error code, https://www.twilio.com/docs/api/errors
	Message  string // Twilio's explanation, number masked
	MoreInfo string // link to Twilio's documentation of Code
}

func (e *APIError) Error() string {
	return fmt.Sprintf("twilio error %d (HTTP %d): %s", e.Code, e.Status, e.Message)
}

// maskText masks every spelling of phone in s.
func maskText(s, phone string) string {
	masked := notifier.MaskPhone(phone)
	return strings.NewReplacer(
		phone, masked,
		url.QueryEscape(phone), url.QueryEscape(masked),
		strings.TrimPrefix(phone, "+"), strings.TrimPrefix(masked, "+"),
	).Replace(s)
}

// redactedError shows a masked message but keeps the original chain for
// errors.Is and errors.As.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redact masks phone in err's text.
func redact(err error, phone string) error {
	msg := err.Error()
	if m := maskText(msg, phone); m != msg {
		return &redactedError{msg: m, err: err}
	}
	return err
}

// parseRetryAfter reads a Retry-After header: seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
