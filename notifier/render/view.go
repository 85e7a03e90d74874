package render

import (
	"fmt"
	"time"

	"github.com/varsel/varsel/notifier"
)

// view is what the cached (per event) templates see. Times are already
// formatted for the reader's locale and zone; free text is already chosen
// for the reader's language.
type view struct {
	Type        string // "incident.opened"
	Kind        string // "incident" (maintenance included) or "letter"
	Maintenance bool
	Closed      bool // resolved or completed
	Locale      string
	// ContentLocale is the language of the free text; LanguageName names it
	// in the reader's language when it is not the reader's, else "".
	ContentLocale string
	LanguageName  string

	Subject string // filled in after the subject template ran
	Lead    string // the opening line of the event type, "" for none
	Title   string // incident title, or the letter's subject
	Status  string // raw: "identified"
	Impact  string // raw: "major"
	Message string
	Contact string

	StartedAt       string
	Updates         int    // updates since the incident opened, up to this event
	NextUpdateAt    string // full date and time, "" for no promise
	NextUpdateShort string // time of day when on the event's day, else full
	NextUpdateIn    string // "in 2 hours", "" when not a whole number of hours or under one
	WindowStart     string
	WindowEnd       string

	DataNotAtRisk bool
	DataAtRisk    bool
	RestoredAt    string

	WhatHappened, DataSafety, GoingForward, Apology, Body string
	SignName, SignTitle                                   string

	StatusURL   string
	IncidentURL string
	Link        string // the incident page, else the status page
}

// leads lists the event types that open with a fixed line.
var leads = map[notifier.EventType]bool{
	notifier.IncidentOpened: true, notifier.IncidentResolved: true, notifier.IncidentPostmortem: true,
	notifier.MaintenanceScheduled: true, notifier.MaintenanceStarted: true, notifier.MaintenanceCompleted: true,
}

// buildView prepares the per-event data for one locale and zone.
func (r *Renderer) buildView(ev *notifier.Event, inc *notifier.IncidentState, ls *langSet, loc *time.Location) (*view, error) {
	v := &view{
		Type:      string(ev.Type),
		Kind:      "incident",
		Locale:    ls.locale,
		StatusURL: r.cfg.PublicURL + "/",
	}
	layout, err := ls.phrase("FormatDateTime")
	if err != nil {
		return nil, err
	}
	format := func(t time.Time) string { return t.In(loc).Format(layout) }
	text := func(l notifier.Localized) (string, string) { return chooseText(l, ls.locale, r.defaultLocale) }

	if id := ev.IncidentID(); id != "" {
		v.IncidentURL = r.cfg.PublicURL + "/incidents/" + id
	}
	v.Link = v.IncidentURL
	if v.Link == "" {
		v.Link = v.StatusURL
	}
	if leads[ev.Type] {
		if v.Lead, err = ls.phrase("Lead" + camelType(v.Type)); err != nil {
			return nil, err
		}
	}

	switch {
	case ev.Letter != nil:
		l := ev.Letter
		v.Kind = "letter"
		v.Title, _ = text(l.Subject)
		if l.Sections != nil {
			v.WhatHappened, v.ContentLocale = text(l.Sections.WhatHappened)
			v.DataSafety, _ = text(l.Sections.DataSafety)
			v.GoingForward, _ = text(l.Sections.GoingForward)
			v.Apology, _ = text(l.Sections.Apology)
		} else {
			v.Body, v.ContentLocale = text(l.Body)
		}
		v.SignName = l.Signature.Name
		v.SignTitle, _ = text(l.Signature.Title)
	case ev.Incident != nil:
		in := ev.Incident
		v.Maintenance = ev.Type.IsMaintenance()
		v.Closed = in.Status.Closed()
		v.Title, _ = text(in.Title)
		v.Message, v.ContentLocale = text(in.Message)
		v.Contact, _ = text(in.Contact)
		v.Status, v.Impact = string(in.Status), string(in.Impact)
		v.StartedAt = format(in.StartedAt)
		v.Updates = updatesSince(inc, ev)
		if in.NextUpdateAt != nil {
			next := *in.NextUpdateAt
			v.NextUpdateAt = format(next)
			v.NextUpdateShort = v.NextUpdateAt
			if sameDay(next.In(loc), ev.Time.In(loc)) {
				short, err := ls.phrase("FormatTimeOfDay")
				if err != nil {
					return nil, err
				}
				v.NextUpdateShort = next.In(loc).Format(short)
			}
			if v.NextUpdateIn, err = ls.until(next.Sub(ev.Time)); err != nil {
				return nil, err
			}
		}
		if in.ScheduledStart != nil {
			v.WindowStart = format(*in.ScheduledStart)
		}
		if in.ScheduledEnd != nil {
			v.WindowEnd = format(*in.ScheduledEnd)
		}
		if d := in.Data; d != nil {
			v.DataNotAtRisk = d.AtRisk != nil && !*d.AtRisk
			v.DataAtRisk = d.AtRisk != nil && *d.AtRisk
			if d.RestoredFromBackupAt != nil {
				v.RestoredAt = format(*d.RestoredFromBackupAt)
			}
		}
	default:
		return nil, fmt.Errorf("event %s of type %s has neither incident nor letter", ev.ID, ev.Type)
	}
	if v.ContentLocale != "" && v.ContentLocale != ls.locale {
		if v.LanguageName, err = ls.languageName(v.ContentLocale); err != nil {
			return nil, err
		}
	}
	if v.ContentLocale == "" {
		v.ContentLocale = ls.locale
	}
	return v, nil
}

// updatesSince counts the updates in the incident's timeline after the first
// one and up to the event, so a late event counts only what came before it.
func updatesSince(inc *notifier.IncidentState, ev *notifier.Event) int {
	if inc == nil {
		return 0
	}
	n := 0
	for _, u := range inc.Updates {
		if !u.Time.After(ev.Time) {
			n++
		}
	}
	return max(n-1, 0)
}

func sameDay(a, b time.Time) bool {
	ay, am, ad := a.Date()
	by, bm, bd := b.Date()
	return ay == by && am == bm && ad == bd
}

// until says how far away a time is ("in 2 hours", "om 30 minutter"), or ""
// when that cannot be said exactly in whole hours or minutes.
func (ls *langSet) until(d time.Duration) (string, error) {
	switch {
	case d <= 0:
		return "", nil
	case d < time.Hour && d%time.Minute == 0:
		n := int(d / time.Minute)
		return ls.localize("InMinutes", n, map[string]any{"Count": n})
	case d%time.Hour == 0:
		n := int(d / time.Hour)
		return ls.localize("InHours", n, map[string]any{"Count": n})
	}
	return "", nil
}
