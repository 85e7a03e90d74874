package jetstream

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/varsel/varsel/notifier"
)

// inbox records the reminders a target got.
type inbox struct {
	mu  sync.Mutex
	got []notifier.Reminder
}

func (b *inbox) target(name string) ReminderTarget {
	return ReminderTarget{Name: name, Send: func(_ context.Context, rem notifier.Reminder, _ *notifier.IncidentState) error {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.got = append(b.got, rem)
		return nil
	}}
}

func (b *inbox) kinds() []notifier.ReminderKind {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []notifier.ReminderKind
	for _, r := range b.got {
		out = append(out, r.Kind)
	}
	return out
}

// promise records an incident state promising the next update at next and
// tells the reminders of it, as intake does.
func promise(t *testing.T, c *Conn, r *Reminders, id string, next *time.Time, closed bool) {
	t.Helper()
	st, err := c.Incidents.Update(context.Background(), id, func(s *notifier.IncidentState) error {
		status, typ := notifier.StatusIdentified, notifier.IncidentUpdated
		if closed {
			status, typ = notifier.StatusResolved, notifier.IncidentResolved
		}
		s.Apply(&notifier.Event{ID: id + "-" + time.Now().Format("150405.000000"), Type: typ, Time: time.Now(), Incident: &notifier.Incident{
			ID: id, Title: notifier.Localized{"en": "Slow"}, Status: status, Impact: notifier.ImpactMinor, Components: []string{"web"},
			StartedAt: time.Now().Add(-time.Hour), NextUpdateAt: next, Message: notifier.Localized{"en": "On it."}}})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Promised(context.Background(), st); err != nil {
		t.Fatal(err)
	}
}

// runReminders runs a reminders consumer, as each instance does, until the
// returned stop is called.
func runReminders(t *testing.T, c *Conn, targets []ReminderTarget) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.NewReminders(time.Second).Run(ctx, targets, quietLogger()) }()
	return func() { cancel(); <-done }
}

// TestRemindersOncePerPromiseAcrossInstancesAndRestarts: two instances
// take reminders from one NATS; a promise 3 s away gets its "soon" reminder
// (1 s before) and its "overdue" one, each exactly once, though the
// instance that scheduled them stopped and new ones started in between.
func TestRemindersOncePerPromiseAcrossInstancesAndRestarts(t *testing.T) {
	s := startStack(t, t.TempDir(), notifier.DispatchConfig{})
	second, err := Connect(context.Background(), Config{URL: s.conn.ClientURL(), Credentials: s.conn.Credentials()}, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	var oncall inbox
	stopA := runReminders(t, s.conn, []ReminderTarget{oncall.target("oncall")})
	stopB := runReminders(t, second, []ReminderTarget{oncall.target("oncall")})
	next := time.Now().Add(3 * time.Second)
	promise(t, s.conn, s.conn.NewReminders(time.Second), "inc", &next, false)
	// Both instances stop and start again before anything is due.
	stopA()
	stopB()
	stopA = runReminders(t, s.conn, []ReminderTarget{oncall.target("oncall")})
	defer stopA()
	stopB = runReminders(t, second, []ReminderTarget{oncall.target("oncall")})
	defer stopB()
	waitFor(t, 10*time.Second, "both reminders", func() bool { return len(oncall.kinds()) >= 2 })
	waitFor(t, 10*time.Second, "nothing left to remind of", func() bool { return remindersIdle(s.conn) })
	if got := oncall.kinds(); len(got) != 2 || got[0] != notifier.ReminderSoon || got[1] != notifier.ReminderOverdue {
		t.Errorf("reminders = %v, want soon then overdue, once each", got)
	}
}

// TestNewUpdateCancelsPendingReminders: a new update with another promise
// replaces the pending reminders; a resolution cancels them.
func TestNewUpdateCancelsPendingReminders(t *testing.T) {
	s := startStack(t, t.TempDir(), notifier.DispatchConfig{})
	var oncall inbox
	stop := runReminders(t, s.conn, []ReminderTarget{oncall.target("oncall")})
	defer stop()
	r := s.conn.NewReminders(time.Second)
	first := time.Now().Add(3 * time.Second)
	promise(t, s.conn, r, "moved", &first, false)
	later := time.Now().Add(4 * time.Second)
	promise(t, s.conn, r, "moved", &later, false) // moved: the 3 s promise is gone
	soon := time.Now().Add(3 * time.Second)
	promise(t, s.conn, r, "done", &soon, false)
	promise(t, s.conn, r, "done", nil, true) // resolved: nothing more
	waitFor(t, 10*time.Second, "the moved promise's reminders", func() bool { return len(oncall.kinds()) >= 2 })
	waitFor(t, 10*time.Second, "nothing left to remind of", func() bool { return remindersIdle(s.conn) })
	oncall.mu.Lock()
	defer oncall.mu.Unlock()
	for _, rem := range oncall.got {
		if rem.IncidentID != "moved" || !rem.Promise.Equal(later) {
			t.Errorf("reminder %+v: only the moved promise's reminders should come", rem)
		}
	}
	if len(oncall.got) != 2 {
		t.Errorf("%d reminders, want 2", len(oncall.got))
	}
}

// remindersIdle reports that no reminder is pending or being sent: the
// stream holds no schedule and no due reminder, and none is in flight.
func remindersIdle(c *Conn) bool {
	ctx := context.Background()
	st, err := c.JS.Stream(ctx, RemindersStream)
	if err != nil {
		return false
	}
	info, err := st.Info(ctx)
	if err != nil || info.State.Msgs != 0 {
		return false
	}
	cons, err := c.JS.Consumer(ctx, RemindersStream, remindConsumer)
	if err != nil {
		return false
	}
	ci, err := cons.Info(ctx)
	return err == nil && ci.NumAckPending == 0 && ci.NumPending == 0
}
