package notifier

import "time"

// DeliveryStatus is where one delivery stands.
type DeliveryStatus string

// DeliveryStatuses lists every status, for validating filters.
var DeliveryStatuses = []DeliveryStatus{StatusQueued, StatusSent, StatusFailed, StatusSkipped, StatusDelivered, StatusUndelivered}

// Delivery statuses. Queued, sent, failed and skipped are Varsel's own;
// delivered and undelivered come from provider receipts (Twilio).
const (
	StatusQueued      DeliveryStatus = "queued"
	StatusSent        DeliveryStatus = "sent"
	StatusFailed      DeliveryStatus = "failed"
	StatusSkipped     DeliveryStatus = "skipped"
	StatusDelivered   DeliveryStatus = "delivered"
	StatusUndelivered DeliveryStatus = "undelivered"
)

// Done reports whether the delivery must not be sent again: it went out,
// it was decided not to send it, or it failed for good. Only an explicit
// retry (which sets it back to queued) sends a failed delivery again.
func (s DeliveryStatus) Done() bool {
	return s == StatusSent || s == StatusSkipped || s == StatusDelivered || s == StatusUndelivered || s == StatusFailed
}

// DeliveryRecord is the delivery log's entry for one job.
type DeliveryRecord struct {
	ID           string         `json:"id"`
	EventID      string         `json:"event_id"`
	EventType    EventType      `json:"event_type"`
	SubscriberID string         `json:"subscriber_id"`
	Channel      ChannelName    `json:"channel"`
	Status       DeliveryStatus `json:"status"`
	Attempts     int            `json:"attempts"`
	LastError    string         `json:"last_error,omitempty"`
	Reason       Reason         `json:"reason,omitempty"`
	ProviderID   string         `json:"provider_id,omitempty"`
	// ProviderStatus is the latest receipt from the provider (Twilio:
	// queued, sent, delivered, undelivered, failed) and its error code.
	ProviderStatus string     `json:"provider_status,omitempty"`
	ProviderError  string     `json:"provider_error,omitempty"`
	Segments       int        `json:"segments,omitempty"`
	Note           string     `json:"note,omitempty"`
	EventTime      time.Time  `json:"event_time"`
	QueuedAt       time.Time  `json:"queued_at"`
	FirstAttemptAt *time.Time `json:"first_attempt_at,omitempty"`
	LastAttemptAt  *time.Time `json:"last_attempt_at,omitempty"`
	// NextAttemptAt is when a queued delivery that failed is tried again.
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	// Retries counts the retries asked for by hand, which start the
	// delivery over; it keeps its progress counts apart.
	Retries   int        `json:"retries,omitempty"`
	SentAt    *time.Time `json:"sent_at,omitempty"`
	UpdatedAt time.Time  `json:"updated_at"`
	// Revision is the store's revision of this record when it was read;
	// zero for a record not yet stored. It is not part of the record.
	Revision uint64 `json:"-"`
}
