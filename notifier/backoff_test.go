package notifier

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// scheduleChannel is a channel with its own retry schedule, as webhooks.
type scheduleChannel struct{ steps []time.Duration }

func (scheduleChannel) Name() ChannelName { return Webhook }
func (scheduleChannel) Notify(context.Context, *Delivery) (Receipt, bool, error) {
	return Receipt{}, false, nil
}
func (c scheduleChannel) Backoff(attempt int) time.Duration {
	return c.steps[min(max(attempt-1, 0), len(c.steps)-1)]
}
func (c scheduleChannel) MaxAttempts() int { return len(c.steps) + 1 }

// TestRetryAfterNeverShortensTheSchedule: a receiver's Retry-After waits
// longer than the schedule when it asks to, never shorter (every attempt
// counts: "503, retry in 7 s" spent all nine in a minute and the endpoint
// was disabled).
func TestRetryAfterNeverShortensTheSchedule(t *testing.T) {
	d := &Dispatcher{Channels: map[ChannelName]Channel{Webhook: scheduleChannel{[]time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute}}}}
	for _, c := range []struct {
		attempt    int
		retryAfter time.Duration
		want       time.Duration
	}{
		{1, 0, 5 * time.Second},
		{2, 7 * time.Second, 5 * time.Minute},
		{3, 7 * time.Second, 30 * time.Minute},
		{1, 2 * time.Minute, 2 * time.Minute},
		{3, 2 * time.Hour, 2 * time.Hour},
	} {
		err := error(&SendError{Reason: ReasonServer, Err: errors.New("503"), RetryAfter: c.retryAfter})
		if got := d.backoff(&Delivery{Channel: Webhook, Attempt: c.attempt}, err); got != c.want {
			t.Errorf("attempt %d, Retry-After %s: wait %s, want %s", c.attempt, c.retryAfter, got, c.want)
		}
	}
	// The channel's own pacing (the SMS rate's next slot) is waited as
	// it is: no attempt went out.
	paced := &SendError{Reason: ReasonRateLimited, Err: errors.New("next slot"), RetryAfter: 2 * time.Second, Paced: true}
	if got := d.backoff(&Delivery{Channel: Webhook, Attempt: 3}, paced); got != 2*time.Second {
		t.Errorf("paced wait %s, want 2s", got)
	}
}

// TestHoldingUpdateIDs: the same holding update (same update held to,
// same promise) has the same id, so it is sent once; after a real update
// the same promise is a new one; a long incident id keeps the id valid.
func TestHoldingUpdateIDs(t *testing.T) {
	t0 := time.Date(2019, 9, 17, 14, 0, 0, 0, time.UTC)
	st := &IncidentState{Kind: "incident", Incident: Incident{ID: "inc", Status: StatusIdentified, Impact: ImpactMajor, Components: []string{"web"},
		Title: Localized{"en": "Slow"}, StartedAt: t0.Add(-time.Hour)}}
	st.Updates = []Update{{EventID: "u1", Time: t0, Sequence: 1}}
	next := t0.Add(2 * time.Hour)
	a, err := HoldingUpdate(st, t0.Add(time.Minute), next)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := HoldingUpdate(st, t0.Add(time.Minute+40*time.Second), next)
	if a.ID != b.ID {
		t.Errorf("two clicks 40 s apart: %s and %s", a.ID, b.ID)
	}
	st.Updates = append(st.Updates, Update{EventID: "u2", Time: t0.Add(30 * time.Minute), Sequence: 2})
	c, _ := HoldingUpdate(st, t0.Add(40*time.Minute), next)
	if c.ID == a.ID {
		t.Errorf("after a real update the same promise kept the id %s: it would be dropped as a duplicate", c.ID)
	}
	st.Incident.ID = strings.Repeat("x", 128)
	long, err := HoldingUpdate(st, t0.Add(41*time.Minute), next)
	if err != nil || !ValidID(long.ID) {
		t.Errorf("a 128-character incident id: %v, id %q", err, long.ID)
	}
}
