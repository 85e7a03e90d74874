package render

import (
	"fmt"
	"strings"
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
	Postmortem  bool
	Locale      string
	// ContentLocale is the language of the free text; LanguageName names it
	// in the reader's language when it is not the reader's, else "".
	ContentLocale string
	LanguageName  string

	Subject string // filled in after the subject template ran
	Lead    string // the opening line of the event type, "" for none
	Title   string // incident title, or the letter's subject
	Status  string // raw: "identified"
	// Impact is raw ("major") and "none" once closed: a resolved incident
	// disrupts nothing, whatever the event's field says. ShowImpact is
	// false then, and PeakImpact says what the impact was at its worst
	// ("" when unknown or none). Expected marks the impact of maintenance
	// not yet started, which is a forecast, not a fact.
	Impact     string
	ShowImpact bool
	Expected   bool
	// SMSImpact is the impact an SMS names after the status: that of an
	// open incident ("" otherwise, and when the SMS has no room).
	SMSImpact  string
	PeakImpact string
	// Components names the components the incident concerns, by their
	// names from the site file in the reader's language (the id of one the
	// file does not name), joined by ", "; "" for none and when there is
	// no site file.
	// SMSComponents is the same for an SMS, "" when the title already
	// names them all or the SMS has no room.
	Components    string
	SMSComponents string
	Message       string
	Contact       string
	// TitleLocale and ContactLocale are the languages the title and the
	// contact text are in (each may have fewer languages than the
	// message); ContactLanguageName names the contact's in the reader's
	// language when it is not the reader's, else "".
	TitleLocale         string
	ContactLocale       string
	ContactLanguageName string

	StartedAt    string
	ResolvedAt   string // when it closed; "" while open
	Updates      int    // updates since the incident opened, up to this event
	NextUpdateAt string // full date and time, "" for no promise
	NextUpdateIn string // "in 2 hours", "" when not a whole number of hours or under one
	WindowStart  string
	WindowEnd    string
	// Holding is the time of the update that still applies (a holding
	// update), "" otherwise; HoldingShort is its SMS form.
	Holding      string
	HoldingShort string

	// SMS forms of the times (see smsClock): no year, no zone name unless
	// the reader's zone is not the default one. NextUpdateShort is "" when
	// the next update is promised for the end of the maintenance window the
	// SMS already shows.
	NextUpdateShort string // "12:00", "kl. 12:00", "9 Oct 02:00"
	WindowShort     string // "8 Oct 23:00-02:00", "8.10. kl. 23:00-02:00"
	// windowShortStart is WindowShort without its end, for an SMS that
	// has no room for it.
	windowShortStart string

	// The data statement of the event: Risk is "", "none", "low",
	// "unknown" or "confirmed"; Restore is "", "planned", "in_progress" or
	// "done", from the backup taken at RestoreFrom.
	Risk        string
	Restore     string
	RestoreFrom string

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
	named := loc.String() != r.defaultZone.String()
	layout, err := ls.timeLayout("FormatDateTime", named)
	if err != nil {
		return nil, err
	}
	dayLayout, err := ls.timeLayout("FormatTimeOfDay", named)
	if err != nil {
		return nil, err
	}
	format := func(t time.Time) string { return t.In(loc).Format(layout) }
	// sameDayFormat leaves out the date of a time on the event's day.
	sameDayFormat := func(t time.Time) string {
		if sameDay(t.In(loc), ev.Time.In(loc)) {
			return t.In(loc).Format(dayLayout)
		}
		return format(t)
	}
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
		v.Postmortem = ev.Type == notifier.IncidentPostmortem
		v.Title, v.TitleLocale = text(in.Title)
		v.Message, v.ContentLocale = text(in.Message)
		v.Contact, v.ContactLocale = text(in.Contact)
		if v.ContactLocale != "" && v.ContactLocale != ls.locale {
			if v.ContactLanguageName, err = ls.languageName(v.ContactLocale); err != nil {
				return nil, err
			}
		}
		v.Status, v.Impact = string(in.Status), string(in.Impact)
		if r.cfg.Site != nil && len(r.cfg.Site.Components) > 0 {
			// Without a catalogue there are only ids, which are keys,
			// not names: the message stays as it was.
			names := r.componentNames(in.Components, ls.locale)
			v.Components = strings.Join(names, ", ")
			if !allIn(names, v.Title) {
				v.SMSComponents = v.Components
			}
		}
		v.ShowImpact = !v.Closed
		if v.ShowImpact && !v.Maintenance {
			v.SMSImpact = v.Impact
		}
		v.Expected = in.Status == notifier.StatusScheduled
		if v.Closed {
			v.Impact = string(notifier.ImpactNone)
			resolved := ev.Time
			if inc != nil && inc.ResolvedAt != nil {
				resolved = *inc.ResolvedAt
			}
			v.ResolvedAt = format(resolved)
			if !v.Maintenance && inc != nil && inc.PeakImpact.Rank() > notifier.ImpactNone.Rank() {
				v.PeakImpact = string(inc.PeakImpact)
			}
		}
		v.StartedAt = format(in.StartedAt)
		v.Updates = updatesSince(inc, ev)
		clock, err := r.smsClock(ls, loc, ev.Time)
		if err != nil {
			return nil, err
		}
		if in.HoldingSince != nil {
			v.Holding = sameDayFormat(*in.HoldingSince)
			v.HoldingShort = clock.when(*in.HoldingSince)
		}
		window := v.Maintenance && !v.Closed && in.ScheduledStart != nil
		if in.NextUpdateAt != nil {
			next := *in.NextUpdateAt
			v.NextUpdateAt = format(next)
			// An SMS that shows the window does not promise an update at
			// its end a second time.
			if !window || in.ScheduledEnd == nil || !next.Equal(*in.ScheduledEnd) {
				v.NextUpdateShort = clock.when(next)
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
		if window {
			if v.WindowShort, v.windowShortStart, err = clock.window(*in.ScheduledStart, in.ScheduledEnd); err != nil {
				return nil, err
			}
		}
		risk, restore := in.Data.Current()
		v.Risk = string(risk)
		if restore != nil {
			v.Restore, v.RestoreFrom = string(restore.State), format(restore.FromBackupAt)
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
	if v.TitleLocale == "" {
		v.TitleLocale = ls.locale
	}
	return v, nil
}

// componentNames names ids in locale from the site file, in their order.
func (r *Renderer) componentNames(ids []string, locale string) []string {
	names := make([]string, 0, len(ids))
	for _, id := range ids {
		names = append(names, r.cfg.Site.ComponentName(id, locale))
	}
	return names
}

// allIn reports whether text names every one of names already, as an
// incident's title often does ("Login problems in StyreWeb"): an SMS has no
// room to say it twice.
func allIn(names []string, text string) bool {
	text = strings.ToLower(text)
	for _, n := range names {
		if !strings.Contains(text, strings.ToLower(n)) {
			return false
		}
	}
	return true
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

// timeLayout returns a time layout from the catalogue; with named set, the
// form that names the zone ("FormatDateTimeZone"), for a reader whose zone
// is not the default one that every unnamed time is read in.
func (ls *langSet) timeLayout(id string, named bool) (string, error) {
	if named {
		id += "Zone"
	}
	return ls.phrase(id)
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

// smsClock formats times for an SMS, where every character counts: a date
// without the year (unless it is not the event's year), a time of day alone
// on the event's day, and the zone's name only when the reader's zone is not
// the default one, which is the zone readers assume. Times are always in the
// reader's zone.
type smsClock struct {
	ls       *langSet
	loc      *time.Location
	day      time.Time // the event's time in loc
	zone     bool
	dateTime string // "2 Jan 15:04"
	timeOnly string // "15:04", "kl. 15:04"
	full     string // FormatDateTime, for another year
}

func (r *Renderer) smsClock(ls *langSet, loc *time.Location, eventTime time.Time) (*smsClock, error) {
	c := &smsClock{ls: ls, loc: loc, day: eventTime.In(loc), zone: loc.String() != r.defaultZone.String()}
	var err error
	if c.dateTime, err = ls.phrase("FormatShortDateTime"); err != nil {
		return nil, err
	}
	if c.timeOnly, err = ls.phrase("FormatShortTime"); err != nil {
		return nil, err
	}
	if c.full, err = ls.timeLayout("FormatDateTime", c.zone); err != nil {
		return nil, err
	}
	return c, nil
}

// at formats t with its date ("8 Oct 23:00") or, when the event's day is
// enough, without ("23:00"); it never names the zone.
func (c *smsClock) at(t time.Time, date bool) string {
	t = t.In(c.loc)
	switch {
	case !date && sameDay(t, c.day):
		return t.Format(c.timeOnly)
	case t.Year() != c.day.Year():
		return t.Format(c.full)
	}
	return t.Format(c.dateTime)
}

// zoneOf returns " CEST" when the zone must be named and the layout used
// for t did not already name it, else "".
func (c *smsClock) zoneOf(t time.Time, formatted string) string {
	t = t.In(c.loc)
	name := t.Format("MST")
	if !c.zone || strings.HasSuffix(formatted, name) {
		return ""
	}
	return " " + name
}

// when formats a single time: "12:00" on the event's day, else "9 Oct 02:00".
func (c *smsClock) when(t time.Time) string {
	s := c.at(t, false)
	return s + c.zoneOf(t, s)
}

// window formats a maintenance window, and its start alone: "8 Oct
// 22:00-23:30" within a day, "8 Oct 23:00-9 Oct 02:00" past midnight, and
// "8 Oct 23:00 to 10 Oct 02:00" when it is longer than a day.
func (c *smsClock) window(start time.Time, end *time.Time) (full, startOnly string, err error) {
	s := c.at(start, true)
	startOnly = s + c.zoneOf(start, s)
	if end == nil || !end.After(start) {
		return startOnly, startOnly, nil
	}
	e := end.In(c.loc)
	if start.In(c.loc).Format("MST") != e.Format("MST") {
		s = startOnly // the zone changes within the window: name both
	}
	if sameDay(e, start.In(c.loc)) {
		es := e.Format("15:04")
		return s + "-" + es + c.zoneOf(e, es), startOnly, nil
	}
	if e.Sub(start) < 24*time.Hour {
		// Past midnight: "23:00-02:00" would read as ending before it
		// starts. Within a day of the start its year goes without saying.
		es := e.Format(c.dateTime)
		return s + "-" + es + c.zoneOf(e, es), startOnly, nil
	}
	es := c.at(e, true)
	full, err = c.ls.localize("MaintenanceWindow", nil, map[string]any{"Start": s, "End": es + c.zoneOf(e, es)})
	return full, startOnly, err
}
