package render

import (
	"fmt"
	"strings"
	"time"

	"github.com/varsel/varsel/notifier"
)

// reminderView is what the reminder templates see.
type reminderView struct {
	Title, Promise, In, ConsoleURL string
	Overdue                        bool
}

// StaffReminder renders a reminder of a promise to staff in locale, at
// now: the email's subject and text, and (as WebhookText) one line for a
// chat room. The message is marked Staff: it has no unsubscribe link.
func (r *Renderer) StaffReminder(rem notifier.Reminder, st *notifier.IncidentState, locale string, now time.Time) (*notifier.Message, error) {
	ls := r.set(locale)
	wrap := func(err error) error { return fmt.Errorf("render reminder for %s: %w", ls.locale, err) }
	layout, err := ls.phrase("FormatDateTime")
	if err != nil {
		return nil, wrap(err)
	}
	v := reminderView{Promise: rem.Promise.In(r.defaultZone).Format(layout), Overdue: rem.Kind == notifier.ReminderOverdue,
		ConsoleURL: r.cfg.PublicURL + "/console/incidents/" + rem.IncidentID}
	v.Title, _ = chooseText(st.Incident.Title, ls.locale, r.defaultLocale)
	if !v.Overdue {
		d := rem.Promise.Sub(now).Round(time.Minute)
		if v.In, err = ls.until(max(d, time.Minute)); err != nil {
			return nil, wrap(err)
		}
	}
	m := &notifier.Message{Locale: ls.locale, ContentLocale: ls.locale, Staff: true, StatusURL: r.cfg.PublicURL + "/"}
	subject, err := ls.execText("subject.reminder", v)
	if err != nil {
		return nil, wrap(err)
	}
	m.Subject = strings.Join(strings.Fields(subject), " ")
	text, err := ls.execText("text.reminder", v)
	if err != nil {
		return nil, wrap(err)
	}
	m.Text = tidy(text) + "\n"
	chat, err := ls.execText("chat.reminder", v)
	if err != nil {
		return nil, wrap(err)
	}
	m.WebhookText = strings.TrimSpace(chat)
	return m, nil
}
