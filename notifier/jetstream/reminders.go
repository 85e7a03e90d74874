package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/varsel/varsel/notifier"
)

// The reminders' stream, subjects and bucket. Each incident has at most one
// pending schedule per kind, on RemindWaitPrefix + "<incident>.<kind>"; a
// new promise replaces it and an update without one purges it. When it is
// due, NATS publishes the reminder on RemindDueSubject, a work queue that
// one instance takes. RemindersKV remembers what was sent to whom, so a
// redelivered reminder is not sent twice.
const (
	RemindersStream  = "VARSEL_REMINDERS"
	remindPrefix     = "varsel.remind."
	RemindWaitPrefix = remindPrefix + "wait."
	RemindDueSubject = remindPrefix + "due"
	RemindersKV      = "varsel_reminders"
	remindConsumer   = "varsel-reminders"
)

// Reminders schedules the staff's reminders of every promise in NATS (so
// they fire once, whichever instances run, and survive restarts) and sends
// them when due. It implements notifier.Reminders.
type Reminders struct {
	c *Conn
	// Before is how long before a promised update the first reminder comes.
	Before time.Duration
	Now    func() time.Time
}

var _ notifier.Reminders = (*Reminders)(nil)

// NewReminders returns the reminders on c, the first one before the promise.
func (c *Conn) NewReminders(before time.Duration) *Reminders {
	return &Reminders{c: c, Before: before, Now: time.Now}
}

// Promised implements notifier.Reminders.
func (r *Reminders) Promised(ctx context.Context, st *notifier.IncidentState) error {
	base := RemindWaitPrefix + st.Incident.ID + "."
	next := st.Incident.NextUpdateAt
	if st.ResolvedAt != nil || next == nil {
		stream, err := r.c.JS.Stream(ctx, RemindersStream)
		if err != nil {
			return fmt.Errorf("open %s: %w", RemindersStream, err)
		}
		if err := stream.Purge(ctx, jetstream.WithPurgeSubject(base+">")); err != nil {
			return fmt.Errorf("cancel the reminders of %s: %w", st.Incident.ID, err)
		}
		return nil
	}
	now := r.Now()
	soon := next.Add(-r.Before)
	if !next.After(now) {
		// A promise already missed: only the overdue reminder, at once.
		return r.schedule(ctx, base, notifier.Reminder{IncidentID: st.Incident.ID, Promise: *next, Kind: notifier.ReminderOverdue}, now)
	}
	if err := r.schedule(ctx, base, notifier.Reminder{IncidentID: st.Incident.ID, Promise: *next, Kind: notifier.ReminderSoon}, soon); err != nil {
		return err
	}
	return r.schedule(ctx, base, notifier.Reminder{IncidentID: st.Incident.ID, Promise: *next, Kind: notifier.ReminderOverdue}, *next)
}

func (r *Reminders) schedule(ctx context.Context, base string, rem notifier.Reminder, at time.Time) error {
	b, _ := json.Marshal(rem)
	msg := nats.NewMsg(base + string(rem.Kind))
	msg.Data = b
	if now := r.Now(); !at.After(now) {
		at = now
	}
	// Whole seconds, rounded up: never before its time.
	at = at.UTC().Add(time.Second - 1).Truncate(time.Second)
	msg.Header.Set("Nats-Schedule", "@at "+at.Format(time.RFC3339))
	msg.Header.Set("Nats-Schedule-Target", RemindDueSubject)
	if _, err := r.c.JS.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("schedule the %s reminder of %s: %w", rem.Kind, rem.IncidentID, err)
	}
	return nil
}

// ReminderTarget is one place a reminder goes: an address or a chat hook.
type ReminderTarget struct {
	Name string // for the sent-log key and the log: "email:kari@example.com"
	Send func(ctx context.Context, rem notifier.Reminder, st *notifier.IncidentState) error
}

// Run takes the reminders that fall due, until ctx is cancelled, and sends
// each that still stands (the incident open and still promising that
// update) to every target it was not sent to yet. A failed target is tried
// again in 30 s; a sent one is remembered for a week so a redelivery sends
// nothing twice.
func (r *Reminders) Run(ctx context.Context, targets []ReminderTarget, logger *slog.Logger) error {
	cons, err := r.c.JS.CreateOrUpdateConsumer(ctx, RemindersStream, jetstream.ConsumerConfig{
		Durable: remindConsumer, Description: "Varsel reminders of promised updates",
		FilterSubject: RemindDueSubject, AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second, MaxDeliver: -1,
	})
	if err != nil {
		return fmt.Errorf("create reminders consumer: %w", err)
	}
	it, err := cons.Messages(pullOpts(4)...)
	if err != nil {
		return fmt.Errorf("consume reminders: %w", err)
	}
	consume(ctx, it, logger.With("reading", "reminders"), func(msg jetstream.Msg) {
		if err := r.handle(context.WithoutCancel(ctx), msg.Data(), targets, logger); err != nil {
			logger.Warn("reminder not sent everywhere, will retry", "error", err)
			_ = msg.NakWithDelay(30 * time.Second)
			return
		}
		_ = msg.Ack()
	})
	return nil
}

func (r *Reminders) handle(ctx context.Context, data []byte, targets []ReminderTarget, logger *slog.Logger) error {
	var rem notifier.Reminder
	if err := json.Unmarshal(data, &rem); err != nil || rem.IncidentID == "" {
		logger.Error("malformed reminder dropped", "error", err)
		return nil
	}
	st, err := r.c.Incidents.Get(ctx, rem.IncidentID)
	if errors.Is(err, notifier.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !rem.Stands(st) {
		logger.Info("reminder no longer stands", "incident", rem.IncidentID, "kind", rem.Kind)
		return nil
	}
	kv, err := r.c.JS.KeyValue(ctx, RemindersKV)
	if err != nil {
		return err
	}
	var errs []error
	for i, t := range targets {
		key := rem.IncidentID + "." + strconv.FormatInt(rem.Promise.Unix(), 10) + "." + string(rem.Kind) + "." + strconv.Itoa(i)
		if _, err := kv.Get(ctx, key); err == nil {
			continue // sent before a redelivery
		}
		if err := t.Send(ctx, rem, st); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", t.Name, err))
			continue
		}
		if _, err := kv.Put(ctx, key, []byte(t.Name)); err != nil {
			errs = append(errs, fmt.Errorf("remember the reminder to %s: %w", t.Name, err))
		}
		logger.Info("reminder sent", "incident", rem.IncidentID, "kind", rem.Kind, "to", t.Name)
	}
	return errors.Join(errs...)
}
