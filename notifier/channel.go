package notifier

import (
	"context"
	"errors"
	"time"
)

// Channel sends one rendered message to one subscriber. Implementations live
// in channels/<name> and must be safe for concurrent use.
type Channel interface {
	// Name is the channel this implementation serves.
	Name() ChannelName
	// Notify sends d. On success it returns what the provider said (its
	// message id, SMS segments). On failure, retry reports whether sending
	// again later can help; a *SendError says why, for the delivery log,
	// metrics and subscriber suppression.
	Notify(ctx context.Context, d *Delivery) (r Receipt, retry bool, err error)
}

// Delivery is one job: one event to one subscriber on one channel.
type Delivery struct {
	// ID is "<event id>.<subscriber id>.<channel>", also the Nats-Msg-Id of
	// the job and the key of its delivery log record.
	ID         string
	Channel    ChannelName
	Event      *Event
	Incident   *IncidentState // the incident after the event was applied; nil for letters without one
	Subscriber *Subscriber
	Message    *Message
	// Attempt counts from 1.
	Attempt int
	// FirstAttemptAt and PreviousAttemptAt are zero on the first attempt.
	FirstAttemptAt    time.Time
	PreviousAttemptAt time.Time
	// PreviousReason is why the previous attempt failed, so a channel can
	// treat an ambiguous outcome (a timeout after the request was sent) with care.
	PreviousReason Reason
}

// DeliveryID joins the parts of a delivery id.
func DeliveryID(eventID, subscriberID string, ch ChannelName) string {
	return eventID + "." + subscriberID + "." + string(ch)
}

// Receipt is what a channel learned from a successful send.
type Receipt struct {
	ProviderID string // SMTP Message-ID, Twilio message SID, webhook-id
	Segments   int    // SMS segments billed
	// Note is a short operator-facing remark, e.g. "found earlier send SMxxx".
	Note string
}

// Reason classifies a delivery failure for metrics labels, the delivery log
// and subscriber suppression.
type Reason string

// Failure reasons.
const (
	ReasonNetwork        Reason = "network"         // dial, I/O or TLS error before a verdict
	ReasonTimeout        Reason = "timeout"         // no answer in time
	ReasonAmbiguous      Reason = "ambiguous"       // the request may have been accepted
	ReasonRateLimited    Reason = "rate_limited"    // provider asked us to slow down
	ReasonServer         Reason = "server_error"    // provider 5xx / SMTP 4xx
	ReasonRejected       Reason = "rejected"        // provider refused for good
	ReasonBounced        Reason = "bounced"         // hard bounce: address does not exist
	ReasonInvalidAddress Reason = "invalid_address" // not a usable address (bad number, landline)
	ReasonOptedOut       Reason = "opted_out"       // recipient said STOP or unsubscribed
	ReasonGone           Reason = "gone"            // endpoint answered 410
	ReasonDisabled       Reason = "disabled"        // too many consecutive failures
	ReasonTemplate       Reason = "template"        // our rendering failed
	ReasonUnknown        Reason = "unknown"
)

// SendError is a channel failure with its classification.
type SendError struct {
	Reason Reason
	// RetryAfter is the provider's requested wait (Retry-After); zero means
	// use the channel's backoff schedule. It is waited when longer than the
	// schedule's next step, unless Paced.
	RetryAfter time.Duration
	// Paced marks a RetryAfter that is the channel's own pacing (the next
	// free slot of Varsel's SMS rate), waited as it is.
	Paced bool
	// Suppress stops the channel for this subscriber at once (STOP, 410,
	// invalid number).
	Suppress bool
	Err      error
}

func (e *SendError) Error() string { return string(e.Reason) + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *SendError) Unwrap() error { return e.Err }

// ReasonOf returns the Reason of err's *SendError, or ReasonUnknown.
func ReasonOf(err error) Reason {
	var se *SendError
	if errors.As(err, &se) {
		return se.Reason
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return ReasonTimeout
	}
	return ReasonUnknown
}

// Endpointer is implemented by channels whose deliveries go to many
// independent endpoints (webhooks): Endpoint names the one a subscriber's
// delivery goes to ("https://hooks.example.com:443"), so a slow or failing
// endpoint can be given only a few of the channel's workers.
type Endpointer interface {
	Endpoint(s *Subscriber) string
}

// Backoffer is implemented by channels that publish their own retry
// schedule (webhooks follow Standard Webhooks' schedule). attempt is the
// attempt that just failed, counting from 1.
type Backoffer interface {
	Backoff(attempt int) time.Duration
	// MaxAttempts is how many attempts the schedule allows in all.
	MaxAttempts() int
}
