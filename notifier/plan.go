package notifier

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Job is one planned delivery as it travels on the VARSEL_DELIVERIES stream:
// only ids, so a job stays small and the worker reads fresh subscriber data.
type Job struct {
	ID           string      `json:"id"`
	EventID      string      `json:"event_id"`
	SubscriberID string      `json:"subscriber_id"`
	Channel      ChannelName `json:"channel"`
	// Attempt is the attempt a scheduled retry is for (2 and up); 0 for a
	// planned job or a retry asked for by hand.
	Attempt int `json:"attempt,omitempty"`
	// Seen marks a job whose delivery may already be in the log: one of a
	// plan that was cut short and run again, or a retry asked for by
	// hand; the worker looks it up before sending. The runner also sets
	// it on a job the broker hands out again.
	Seen bool `json:"seen,omitempty"`
	// Subscribers, when set, makes this a job of several deliveries: one
	// per subscriber, of EventID on Channel (ID and SubscriberID are then
	// empty). A plan queues its deliveries this way, up to
	// MaxJobDeliveries a job, so the queue stores, hands out and takes
	// back one message for many deliveries; each delivery is still
	// recorded, retried and deferred on its own, as a job of one.
	Subscribers []string `json:"subscribers,omitempty"`

	// fetched marks a job whose subscriber was read with the rest of its
	// job (see Dispatcher.Prefetch), at fetchedAt; sub is nil when it does
	// not exist.
	fetched   bool
	fetchedAt time.Time
	sub       *Subscriber
}

// MaxJobDeliveries bounds the deliveries of one job.
const MaxJobDeliveries = 32

// NewJob returns the job for one event, subscriber and channel.
func NewJob(eventID, subscriberID string, ch ChannelName) Job {
	return Job{ID: DeliveryID(eventID, subscriberID, ch), EventID: eventID, SubscriberID: subscriberID, Channel: ch}
}

// Valid reports whether a job names a delivery or several.
func (j Job) Valid() bool {
	if len(j.Subscribers) > 0 {
		return j.EventID != "" && j.Channel != ""
	}
	return j.ID != ""
}

// Deliveries returns the jobs of one delivery a job stands for: itself,
// or one per subscriber of a job of several, each marked Seen and with
// the Attempt as the job is.
func (j Job) Deliveries() []Job {
	if len(j.Subscribers) == 0 {
		return []Job{j}
	}
	out := make([]Job, len(j.Subscribers))
	for i, sub := range j.Subscribers {
		out[i] = NewJob(j.EventID, sub, j.Channel)
		out[i].Seen, out[i].Attempt = j.Seen, j.Attempt
	}
	return out
}

// Planner turns one event into jobs: one per matching subscriber and channel
// the policy chooses and the subscriber can be reached on.
type Planner struct {
	Subscribers SubscriberStore
	Policy      Policy
	Metrics     *Metrics
	Logger      *slog.Logger
}

// Plan streams the subscribers and calls emit for every job, in store
// order. Planning the same event again emits the same jobs with the same
// ids, which the queue deduplicates, so a plan cut short by a crash is
// finished by planning again. It returns the number of jobs emitted.
func (p *Planner) Plan(ctx context.Context, ev *Event, inc *IncidentState, emit func(Job) error) (int, error) {
	n := 0
	err := p.each(ctx, ev, inc, p.skipUnverified, func(s *Subscriber, ch ChannelName) error {
		if err := emit(NewJob(ev.ID, s.ID, ch)); err != nil {
			return fmt.Errorf("queue job for %s on %s: %w", s.ID, ch, err)
		}
		n++
		if p.Metrics != nil {
			p.Metrics.JobsPlanned.WithLabelValues(string(ch)).Inc()
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("plan event %s: %w", ev.ID, err)
	}
	return n, nil
}

// Each calls fn for every (subscriber, channel) the event goes to: the
// subscribers who follow its components, on the channels the policy
// chooses that they can be reached on. Plan and the console's audience
// count both use it, so a preview counts exactly whom a publish reaches.
//
// No SMS goes to a number given on the sign-up form and not verified yet
// (Subscriber.PhoneUnverified); Plan counts each such skip in
// varsel_deliveries_total with reason phone_unverified. Nor does one go to
// a subscriber with SMSStartEndOnly for an event that is not StartOrEnd.
func (p *Planner) Each(ctx context.Context, ev *Event, inc *IncidentState, fn func(*Subscriber, ChannelName) error) error {
	return p.each(ctx, ev, inc, nil, fn)
}

func (p *Planner) each(ctx context.Context, ev *Event, inc *IncidentState, skipped func(context.Context, *Event, *Subscriber), fn func(*Subscriber, ChannelName) error) error {
	channels := p.Policy.Channels(ev, inc)
	components := ev.Components()
	return p.Subscribers.Each(ctx, func(s *Subscriber) error {
		if !s.Follows(components) {
			return nil
		}
		for _, ch := range channels {
			if !s.Reachable(ch) {
				continue
			}
			if ch == SMS && s.PhoneUnverified {
				if skipped != nil {
					skipped(ctx, ev, s)
				}
				continue
			}
			if ch == SMS && s.SMSStartEndOnly && !StartOrEnd(ev.Type) {
				continue // the subscriber's choice, not a failure: not counted
			}
			if err := fn(s, ch); err != nil {
				return err
			}
		}
		return nil
	})
}

// Audience counts whom an event reaches, by channel and by the language
// they read (en or nb, as messages resolve it with defaultLocale).
func (p *Planner) Audience(ctx context.Context, ev *Event, inc *IncidentState, defaultLocale string) (map[ChannelName]map[string]int, error) {
	out := map[ChannelName]map[string]int{}
	err := p.Each(ctx, ev, inc, func(s *Subscriber, ch ChannelName) error {
		lang := BaseLanguage(s.Locale)
		if lang == "" {
			lang = BaseLanguage(defaultLocale)
		}
		if out[ch] == nil {
			out[ch] = map[string]int{}
		}
		out[ch][lang]++
		return nil
	})
	return out, err
}

// ReasonPhoneUnverified is why no SMS is planned to a number given on the
// sign-up form whose code has not been entered.
const ReasonPhoneUnverified Reason = "phone_unverified"

// skipUnverified counts and logs an SMS not planned because the number is
// not verified yet; the log names the subscriber, not the number.
func (p *Planner) skipUnverified(ctx context.Context, ev *Event, s *Subscriber) {
	if p.Metrics != nil {
		p.Metrics.Deliveries.WithLabelValues(string(SMS), "skipped", string(ReasonPhoneUnverified)).Inc()
	}
	if p.Logger != nil {
		p.Logger.DebugContext(ctx, "sms skipped", "event", ev.ID, "subscriber", s.ID, "reason", ReasonPhoneUnverified)
	}
}
