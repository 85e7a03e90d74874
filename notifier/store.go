package notifier

import (
	"context"
	"errors"
)

// Store errors.
var (
	// ErrNotFound means no record has that key.
	ErrNotFound = errors.New("not found")
	// ErrConflict means a record changed between read and write; the
	// Update helpers retry on it themselves.
	ErrConflict = errors.New("changed concurrently")
)

// SubscriberStore keeps subscribers. notifier/jetstream implements it on a
// NATS KeyValue bucket.
type SubscriberStore interface {
	// Get returns the subscriber or an error wrapping ErrNotFound.
	Get(ctx context.Context, id string) (*Subscriber, error)
	// Put creates or replaces a subscriber; it sets CreatedAt on creation
	// and UpdatedAt always.
	Put(ctx context.Context, s *Subscriber) error
	// Update reads, changes and writes one subscriber atomically, retrying
	// when another writer got there first. fn may be called more than once.
	Update(ctx context.Context, id string, fn func(*Subscriber) error) (*Subscriber, error)
	// Delete removes a subscriber; deleting a missing one is not an error.
	Delete(ctx context.Context, id string) error
	// Each calls fn for every subscriber, one at a time, without holding
	// them all in memory. It stops at the first error fn returns.
	Each(ctx context.Context, fn func(*Subscriber) error) error
	// FindByPhone returns the subscribers with that E.164 number.
	FindByPhone(ctx context.Context, phone string) ([]*Subscriber, error)
}

// SubscriberBatcher is a SubscriberStore that reads several subscribers
// in one round trip. GetMany returns those of ids that exist; a missing
// one is absent from the map, not an error; one that could not be read
// with the others (an invalid id, a record that does not decode) is in it
// as nil, to be read on its own. An error means none could be read.
type SubscriberBatcher interface {
	GetMany(ctx context.Context, ids []string) (map[string]*Subscriber, error)
}

// DeliveryLog keeps one record per delivery job.
type DeliveryLog interface {
	// Get returns the record or an error wrapping ErrNotFound.
	Get(ctx context.Context, id string) (*DeliveryRecord, error)
	// Update reads, changes and writes one record atomically; a missing
	// record is passed to fn as a new one with only ID set.
	Update(ctx context.Context, id string, fn func(*DeliveryRecord) error) (*DeliveryRecord, error)
	// Save writes the record of a delivery that is not done (waiting for
	// a retry) if the stored record is still at r.Revision (zero: not
	// stored yet), saving the read an Update needs; otherwise it returns
	// an error wrapping ErrConflict and writes nothing.
	Save(ctx context.Context, r *DeliveryRecord) error
	// Settle records a delivery's final outcome (sent, failed, skipped)
	// and counts it in the event's summary. It may batch: done is called
	// once the record is stored (nil) or could not be (an error), and the
	// job must not be acknowledged before.
	Settle(r *DeliveryRecord, done func(error))
}
