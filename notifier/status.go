package notifier

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// StatusReader is what the public pages read: every incident and the
// letters about them, kept in memory from the store so the status page,
// the feeds and the status JSON keep answering while the store is away.
// notifier/jetstream implements it by watching the incident bucket.
type StatusReader interface {
	// Incidents returns every incident, newest first. The states are
	// shared: callers must not change them.
	Incidents() []*IncidentState
	// Incident returns one incident, or false.
	Incident(id string) (*IncidentState, bool)
	// Letter returns a sent broadcast letter by its event id. It is false
	// for an id that is not a planned letter; an error means the store
	// could not be asked (the letter was not read before it went away).
	Letter(ctx context.Context, id string) (*Event, bool, error)
	// Freshness says whether the view follows the store now, and until
	// when it is known to have been current.
	Freshness() Freshness
}

// Freshness is how current a StatusReader is.
type Freshness struct {
	// Synced is false until the first full read of the store: before it
	// the view knows nothing and must not be shown as the status.
	Synced bool
	// Live is true while the view follows the store.
	Live bool
	// AsOf is the last moment the view was known to be current.
	AsOf time.Time
}

// DeliveryFilter narrows a listing of the delivery log.
type DeliveryFilter struct {
	EventID string         // only this event's deliveries
	Status  DeliveryStatus // only this status
}

// Operator is what the admin API asks of the pipeline beyond the
// subscriber store. notifier/jetstream implements it on its connection.
type Operator interface {
	// PublishEventAs validates raw and publishes it, recording who did
	// (by) for staff; a *ValidationError means it was invalid and was not
	// published. duplicate reports an event already published under its id.
	PublishEventAs(ctx context.Context, raw []byte, by string) (ev *Event, duplicate bool, err error)
	// Progress reads how far an event's deliveries have got.
	Progress(ctx context.Context, eventID string) (*Progress, error)
	// Event returns an accepted event's record, or an error wrapping
	// ErrNotFound.
	Event(ctx context.Context, id string) (*EventRecord, error)
	// RetryJob queues a failed, undelivered or skipped delivery again; an
	// error wrapping ErrNotFound means there is no such delivery.
	RetryJob(ctx context.Context, id string) (*DeliveryRecord, error)
	// ListDeliveries calls fn for every record matching f, streaming.
	ListDeliveries(ctx context.Context, f DeliveryFilter, fn func(*DeliveryRecord) error) error
	// Ready reports whether the pipeline can take work now.
	Ready(ctx context.Context) error
}

// EnableChannel lifts the pause of one channel for a subscriber and forgets
// its failure count, e.g. to switch a disabled webhook back on.
// ErrOwnOptOut refuses to lift an opt-out the person made themselves
// without force.
var ErrOwnOptOut = errors.New("their own choice: lift it only if they asked (force)")

func EnableChannel(ctx context.Context, store SubscriberStore, id string, ch ChannelName, force bool) (*Subscriber, error) {
	if !slices.Contains(ChannelNames, ch) {
		return nil, fmt.Errorf("enable %q: %w", ch, ErrUnknownChannel)
	}
	return store.Update(ctx, id, func(sub *Subscriber) error {
		if s, ok := sub.Suppressed[ch]; ok && s.Reason == ReasonOptedOut && !force {
			// The person's own choice (a link, the preferences page, STOP):
			// theirs to undo.
			return fmt.Errorf("%s opted out of %s themselves (%s): %w", id, ch, s.Detail, ErrOwnOptOut)
		}
		delete(sub.Suppressed, ch)
		delete(sub.Failures, ch)
		return nil
	})
}
