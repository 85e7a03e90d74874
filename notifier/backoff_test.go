package notifier

import (
	"context"
	"errors"
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
