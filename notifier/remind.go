package notifier

import (
	"context"
	"time"
)

// ReminderKind says which reminder of a promise it is.
type ReminderKind string

// The two reminders of every promised update.
const (
	// ReminderSoon comes VARSEL_REMIND_BEFORE before the promised time.
	ReminderSoon ReminderKind = "soon"
	// ReminderOverdue comes at the promised time, if no update came.
	ReminderOverdue ReminderKind = "overdue"
)

// Reminder is one reminder to staff of a promise made to customers: the
// next update of an incident, due at Promise.
type Reminder struct {
	IncidentID string       `json:"incident_id"`
	Promise    time.Time    `json:"promise"`
	Kind       ReminderKind `json:"kind"`
}

// Stands reports whether the reminder is still worth sending for the
// incident as it is now: open, and still promising that update (a newer
// update with another promise, or none, cancels it).
func (r Reminder) Stands(st *IncidentState) bool {
	next := st.Incident.NextUpdateAt
	return st.ResolvedAt == nil && next != nil && next.Equal(r.Promise)
}

// Reminders keeps the timers of the promises made to customers. Intake
// tells it of every incident state it records; it schedules the reminders
// of the promise that state makes, replacing (or, without a promise,
// cancelling) the ones pending for the incident.
type Reminders interface {
	Promised(ctx context.Context, st *IncidentState) error
}
