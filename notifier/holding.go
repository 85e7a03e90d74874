package notifier

import (
	"errors"
	"fmt"
	"time"
)

// ErrNoHolding means an incident cannot get a holding update: it is closed,
// or it is maintenance, or it has no update yet.
var ErrNoHolding = errors.New("no holding update possible")

// HoldingUpdate composes the holding update of an incident at now ("the
// update from 14:00 still applies; next update at 16:00"): an
// incident.updated that repeats the current state with no text of its
// own, holding_since the time of the update that still applies (the last
// one that was not itself a holding update) and the next promise. Varsel
// writes the words in each reader's language and zone.
func HoldingUpdate(st *IncidentState, now, next time.Time) (*Event, error) {
	switch {
	case st == nil || len(st.Updates) == 0:
		return nil, fmt.Errorf("%w: the incident has no update yet", ErrNoHolding)
	case st.Kind == "maintenance":
		return nil, fmt.Errorf("%w: %s is maintenance", ErrNoHolding, st.Incident.ID)
	case st.Incident.Status.Closed():
		return nil, fmt.Errorf("%w: %s is %s", ErrNoHolding, st.Incident.ID, st.Incident.Status)
	case !next.After(now):
		return nil, fmt.Errorf("next_update_at %s is not after now (%s)", next.Format(time.RFC3339), now.Format(time.RFC3339))
	}
	since := st.Updates[len(st.Updates)-1]
	for i := len(st.Updates) - 1; i >= 0; i-- {
		if st.Updates[i].HoldingSince == nil {
			since = st.Updates[i]
			break
		}
	}
	sinceAt := since.Time
	if since.HoldingSince != nil {
		sinceAt = *since.HoldingSince
	}
	in := st.Incident
	in.Message = nil
	in.HoldingSince = &sinceAt
	in.NextUpdateAt = &next
	// The id is the update it holds to and the promise: a second click,
	// or a retried request, is the same event and is sent once (the id
	// was the second it was made in, so two clicks a second apart both
	// went out); after a new real update the same promise is a new one.
	ev := &Event{ID: HoldingPrefix(in.ID) + fmt.Sprintf("s%d-", since.Sequence) + next.UTC().Format("20060102T1504Z"), Type: IncidentUpdated, Time: now, Incident: &in}
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	return ev, nil
}

// HoldingPrefix begins the id of every holding update of incident id,
// short enough that what follows it keeps the id within 128 characters.
func HoldingPrefix(id string) string {
	if len(id) > 90 {
		id = id[:90]
	}
	return id + "-holding-"
}
