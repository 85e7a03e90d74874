package console

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/varsel/varsel/notifier"
)

// incidentForm is the incident (or maintenance) form, as the page shows
// it and as it comes back.
type incidentForm struct {
	Kind       string // "incident" or "maintenance"
	New        bool
	IncidentID string
	EventID    string // chosen when the form is shown: publishing twice sends once
	Type       notifier.EventType
	Types      []notifier.EventType

	TitleEN, TitleNB     string
	MessageEN, MessageNB string
	ContactEN, ContactNB string

	Status     notifier.Status
	Statuses   []notifier.Status
	Impact     notifier.Impact
	Components string // comma-separated ids
	StartedAt  string // datetime-local, in the console's zone

	Next   string // none, 1h, 2h, 4h or at
	NextAt string

	Risk         string
	RestoreState string
	RestoreFrom  string

	WindowStart, WindowEnd string

	// ConfirmOneLanguage is the staff member's yes to sending a text that
	// is in one language only.
	ConfirmOneLanguage bool
}

// Choices the form offers.
var (
	impacts       = notifier.Impacts
	risks         = append([]notifier.Risk{""}, notifier.Risks...)
	restoreStates = append([]notifier.RestoreState{""}, notifier.RestoreStates...)
	nextChoices   = []string{"none", "1h", "2h", "4h", "at"}
)

const localLayout = "2006-01-02T15:04"

func (c *console) local(t time.Time) string { return t.In(c.zone).Format(localLayout) }

func (c *console) parseLocal(s string) (time.Time, error) {
	return time.ParseInLocation(localLayout, strings.TrimSpace(s), c.zone)
}

func newEventID(incident string, now time.Time) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	if len(incident) > 100 {
		incident = incident[:100]
	}
	return incident + "-" + now.UTC().Format("20060102T1504") + "-" + hex.EncodeToString(b)
}

// typesFor returns the event types an incident in st may get next (st nil
// for a new one) and the one to preselect.
func typesFor(kind string, st *notifier.IncidentState, want notifier.EventType) ([]notifier.EventType, notifier.EventType) {
	var types []notifier.EventType
	switch {
	case kind == "maintenance" && st == nil:
		types = []notifier.EventType{notifier.MaintenanceScheduled}
	case kind == "maintenance":
		types = []notifier.EventType{notifier.MaintenanceScheduled, notifier.MaintenanceStarted, notifier.MaintenanceCompleted}
	case st == nil:
		types = []notifier.EventType{notifier.IncidentOpened}
	case st.Incident.Status.Closed():
		types = []notifier.EventType{notifier.IncidentPostmortem}
	default:
		types = []notifier.EventType{notifier.IncidentUpdated, notifier.IncidentResolved}
	}
	if !slices.Contains(types, want) {
		want = types[0]
		if st != nil && kind == "maintenance" {
			switch st.Incident.Status {
			case notifier.StatusScheduled:
				want = notifier.MaintenanceStarted
			case notifier.StatusInProgress, notifier.StatusCompleted:
				want = notifier.MaintenanceCompleted
			}
		}
	}
	return types, want
}

// statusesFor are the statuses the form offers for an event type: a choice
// for an open incident, the one the type implies otherwise.
func statusesFor(t notifier.EventType) []notifier.Status {
	switch t {
	case notifier.IncidentOpened, notifier.IncidentUpdated:
		return []notifier.Status{notifier.StatusInvestigating, notifier.StatusIdentified, notifier.StatusMonitoring}
	case notifier.IncidentResolved, notifier.IncidentPostmortem:
		return []notifier.Status{notifier.StatusResolved}
	case notifier.MaintenanceScheduled:
		return []notifier.Status{notifier.StatusScheduled}
	case notifier.MaintenanceStarted:
		return []notifier.Status{notifier.StatusInProgress}
	}
	return []notifier.Status{notifier.StatusCompleted}
}

// formFor fills the form for a new incident (st nil) or the next update of
// st, with the current state and a promise two hours ahead.
func (c *console) formFor(kind string, st *notifier.IncidentState, want notifier.EventType) incidentForm {
	now := c.now()
	f := incidentForm{Kind: kind, New: st == nil, Next: "2h", Impact: notifier.ImpactMajor, StartedAt: c.local(now)}
	if kind == "maintenance" {
		f.Impact, f.Next = notifier.ImpactMinor, "none"
		f.WindowStart, f.WindowEnd = c.local(now.Add(24*time.Hour).Truncate(time.Hour)), c.local(now.Add(26*time.Hour).Truncate(time.Hour))
	}
	f.Types, f.Type = typesFor(kind, st, want)
	f.Statuses = statusesFor(f.Type)
	f.Status = f.Statuses[0]
	if st != nil {
		in := st.Incident
		f.Kind, f.IncidentID = st.Kind, in.ID
		f.TitleEN, f.TitleNB = in.Title["en"], in.Title["nb"]
		f.ContactEN, f.ContactNB = in.Contact["en"], in.Contact["nb"]
		if slices.Contains(f.Statuses, in.Status) {
			f.Status = in.Status
		}
		if in.Impact.Rank() > notifier.ImpactNone.Rank() {
			f.Impact = in.Impact
		} else if st.PeakImpact != "" {
			f.Impact = st.PeakImpact
		}
		f.Components = strings.Join(in.Components, ", ")
		f.StartedAt = c.local(in.StartedAt)
		if in.ScheduledStart != nil {
			f.WindowStart = c.local(*in.ScheduledStart)
		}
		if in.ScheduledEnd != nil {
			f.WindowEnd = c.local(*in.ScheduledEnd)
		}
		if risk, restore := st.LatestData(time.Time{}).Current(); risk != "" || restore != nil {
			f.Risk = string(risk)
			if restore != nil {
				f.RestoreState, f.RestoreFrom = string(restore.State), c.local(restore.FromBackupAt)
			}
		}
		if f.Type.IsMaintenance() || f.Type == notifier.IncidentResolved || f.Type == notifier.IncidentPostmortem {
			f.Next = "none"
		}
	}
	f.EventID = newEventID(cmpOr(f.IncidentID, "incident"), now)
	return f
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// readForm reads the form's fields from a POST.
func readForm(r *http.Request) incidentForm {
	v := func(k string) string { return strings.TrimSpace(r.PostFormValue(k)) }
	return incidentForm{
		Kind: v("kind"), New: v("new") == "true", IncidentID: v("incident_id"), EventID: v("event_id"),
		Type:    notifier.EventType(v("type")),
		TitleEN: v("title_en"), TitleNB: v("title_nb"),
		MessageEN: strings.TrimSpace(r.PostFormValue("message_en")), MessageNB: strings.TrimSpace(r.PostFormValue("message_nb")),
		ContactEN: v("contact_en"), ContactNB: v("contact_nb"),
		Status: notifier.Status(v("status")), Impact: notifier.Impact(v("impact")),
		Components: v("components"), StartedAt: v("started_at"),
		Next: v("next"), NextAt: v("next_at"),
		Risk: v("risk"), RestoreState: v("restore_state"), RestoreFrom: v("restore_from"),
		WindowStart: v("window_start"), WindowEnd: v("window_end"),
		ConfirmOneLanguage: v("confirm_one_language") == "yes",
	}
}

// event builds the event the form describes, validated as a producer's
// would be. The problems name the form's fields where they can.
func (c *console) event(p Page, f *incidentForm) (*notifier.Event, []string) {
	now := c.now()
	var problems []string
	said := map[string]bool{} // fields with a problem already, by the event's path
	add := func(s string) { problems = append(problems, s) }
	at := func(field, path, s string) *time.Time {
		if s == "" {
			return nil
		}
		t, err := c.parseLocal(s)
		if err != nil {
			add(p.problem(field, "ConsoleErrNotATime", "Value", s))
			said[path] = true
			return nil
		}
		return &t
	}
	if f.IncidentID == "" {
		f.IncidentID = slug(cmpOr(f.TitleEN, f.TitleNB)) + "-" + now.In(c.zone).Format("2006-01-02")
	}
	if f.EventID == "" {
		f.EventID = newEventID(f.IncidentID, now)
	}
	in := &notifier.Incident{ID: f.IncidentID, Status: f.Status, Impact: f.Impact,
		Title: localized(f.TitleEN, f.TitleNB), Message: localized(f.MessageEN, f.MessageNB), Contact: localized(f.ContactEN, f.ContactNB)}
	if statuses := statusesFor(f.Type); !slices.Contains(statuses, in.Status) {
		in.Status = statuses[0]
	}
	in.Components = append(in.Components, componentIDs(f.Components)...)
	if t := at("started_at", "incident.started_at", f.StartedAt); t != nil {
		in.StartedAt = *t
	}
	if f.Next == "" && f.NextAt != "" {
		f.Next = "at"
	}
	switch f.Next {
	case "1h", "2h", "4h", "none", "":
		if f.NextAt != "" && f.Next != "" {
			// A time typed beside another choice: which one is meant is
			// not for Varsel to guess (it took the choice, silently).
			add(p.problem("next_at", "ConsoleErrNextTwice", "Choice", p.Next(f.Next), "At", p.Next("at")))
			said["incident.next_update_at"] = true
			break
		}
		if f.Next != "none" && f.Next != "" {
			d, _ := time.ParseDuration(f.Next)
			next := now.Add(d).Truncate(time.Minute)
			in.NextUpdateAt = &next
		}
	case "at":
		if f.NextAt == "" {
			add(p.problem("next_at", "ConsoleErrNextAtRequired"))
			said["incident.next_update_at"] = true
		}
		in.NextUpdateAt = at("next_at", "incident.next_update_at", f.NextAt)
	}
	if in.NextUpdateAt != nil && !in.NextUpdateAt.After(now) {
		add(p.problem("next_at", "ConsoleErrNextPassed", "Time", p.Time(*in.NextUpdateAt)))
		said["incident.next_update_at"] = true
	}
	if in.NextUpdateAt != nil && !f.Type.IsMaintenance() && in.NextUpdateAt.After(now.Add(31*24*time.Hour)) {
		add(p.problem("next_at", "ConsoleErrNextTooFar", "Time", p.Time(*in.NextUpdateAt)))
		said["incident.next_update_at"] = true
	}
	if !f.Type.IsMaintenance() && !in.StartedAt.IsZero() && in.StartedAt.After(now.Add(5*time.Minute)) {
		add(p.problem("started_at", "ConsoleErrStartedLater", "Time", p.Time(in.StartedAt)))
		said["incident.started_at"] = true
	}
	if f.Type.IsMaintenance() {
		in.ScheduledStart, in.ScheduledEnd = at("window_start", "incident.scheduled_start", f.WindowStart), at("window_end", "incident.scheduled_end", f.WindowEnd)
	}
	if f.Risk != "" || f.RestoreState != "" {
		in.Data = &notifier.DataSafety{Risk: notifier.Risk(f.Risk)}
		if f.RestoreState != "" {
			in.Data.Restore = &notifier.Restore{State: notifier.RestoreState(f.RestoreState)}
			if t := at("restore_from", "incident.data.restore.from_backup_at", f.RestoreFrom); t != nil {
				in.Data.Restore.FromBackupAt = *t
			}
		}
	}
	ev := &notifier.Event{ID: f.EventID, Type: f.Type, Time: now.Truncate(time.Second), Incident: in}
	raw, err := json.Marshal(ev)
	if err != nil {
		add(err.Error())
		return nil, problems
	}
	// The producer's rules, exactly: the console is one more producer.
	decoded, err := notifier.DecodeEvent(raw)
	var ve *notifier.ValidationError
	if errors.As(err, &ve) {
		for _, fe := range ve.Problems {
			if !said[fe.Field] {
				add(p.problemOf(fe))
			}
		}
	} else if err != nil {
		add(err.Error())
	}
	if len(problems) > 0 {
		return nil, problems
	}
	return decoded, nil
}

// localized builds a text map of the languages given.
func localized(en, nb string) notifier.Localized {
	l := notifier.Localized{}
	if en != "" {
		l["en"] = en
	}
	if nb != "" {
		l["nb"] = nb
	}
	if len(l) == 0 {
		return nil
	}
	return l
}

// missingTranslations names the texts given in one language only.
func missingTranslations(pairs map[string][2]string) []string {
	var out []string
	for _, name := range []string{"title", "message", "contact", "subject", "what_happened", "data_safety", "going_forward", "apology", "signature_title", "body"} {
		p, ok := pairs[name]
		if ok && (p[0] == "") != (p[1] == "") {
			out = append(out, name)
		}
	}
	return out
}

func (f *incidentForm) missing() []string {
	return missingTranslations(map[string][2]string{
		"title": {f.TitleEN, f.TitleNB}, "message": {f.MessageEN, f.MessageNB}, "contact": {f.ContactEN, f.ContactNB},
	})
}

// slug makes an id from a title: "Login problems in StyreWeb" →
// "login-problems-in-styreweb".
func slug(s string) string {
	s = strings.NewReplacer("æ", "ae", "ø", "o", "å", "a", "Æ", "ae", "Ø", "o", "Å", "a").Replace(strings.ToLower(s))
	var b strings.Builder
	dash := false
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
		if b.Len() >= 60 {
			break
		}
	}
	out := strings.Trim(b.String(), "-")
	if out == "" {
		return "incident"
	}
	return out
}
