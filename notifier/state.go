package notifier

import (
	"slices"
	"time"
)

// IncidentState is what Varsel knows of one incident (or maintenance): the
// newest state and the timeline of every update, for the status page, the
// feeds and the planner's channel policy.
type IncidentState struct {
	Incident Incident `json:"incident"`
	// Kind is "incident" or "maintenance".
	Kind string `json:"kind"`
	// Sequence counts the events applied; each event's deliveries carry the
	// sequence it was given so receivers can order what arrives out of order.
	Sequence int64 `json:"sequence"`
	// LastEventTime is the time of the newest event applied; an older event
	// arriving late joins the timeline but does not change the state.
	LastEventTime time.Time `json:"last_event_time"`
	FirstEventID  string    `json:"first_event_id"`
	// ResolvedAt is when the incident was resolved (the maintenance
	// completed): the time of the event that closed it. A postmortem never
	// moves it. Nil while it is open.
	ResolvedAt *time.Time `json:"resolved_at,omitempty"`
	// PreviousImpact is the impact before the newest event, for the SMS rule
	// "impact rises to major or critical".
	PreviousImpact Impact `json:"previous_impact,omitempty"`
	// PeakImpact is the worst impact of any update while it was open (not
	// counting the expected impact of planned maintenance), so a closed
	// incident can say what the impact was.
	PeakImpact Impact   `json:"peak_impact,omitempty"`
	Updates    []Update `json:"updates"`
	// Letters holds the ids of broadcast letters about this incident.
	Letters []string `json:"letters,omitempty"`
}

// Update is one entry of an incident's timeline.
type Update struct {
	EventID  string    `json:"event_id"`
	Type     EventType `json:"type"`
	Time     time.Time `json:"time"`
	Sequence int64     `json:"sequence"`
	Status   Status    `json:"status"`
	// Impact is "none" on an update that closes the incident: nothing is
	// disrupted any more, whatever the producer left in the field.
	Impact       Impact      `json:"impact"`
	Message      Localized   `json:"message,omitempty"`
	NextUpdateAt *time.Time  `json:"next_update_at,omitempty"`
	HoldingSince *time.Time  `json:"holding_since,omitempty"`
	Data         *DataSafety `json:"data,omitempty"`
	Contact      Localized   `json:"contact,omitempty"`
}

// Apply records ev in the state and reports whether it was new. An event
// already in the timeline changes nothing. An event older than the newest
// one applied joins the timeline in time order but leaves the current
// status, impact, title and promises as they are.
//
// A closed incident (resolved, completed) has no current impact: its
// impact, and that of its closing updates, is recorded as "none", and
// PeakImpact keeps the worst impact it had while open.
func (s *IncidentState) Apply(ev *Event) (changed bool) {
	in := ev.Incident
	if in == nil {
		return false
	}
	for _, u := range s.Updates {
		if u.EventID == ev.ID {
			return false
		}
	}
	s.Sequence++
	impact := in.Impact
	if in.Status.Closed() {
		impact = ImpactNone
	}
	u := Update{
		EventID: ev.ID, Type: ev.Type, Time: ev.Time, Sequence: s.Sequence,
		Status: in.Status, Impact: impact, Message: in.Message,
		NextUpdateAt: in.NextUpdateAt, HoldingSince: in.HoldingSince, Data: in.Data, Contact: in.Contact,
	}
	// Planned maintenance only expects its impact; it has not happened.
	if in.Status != StatusScheduled && impact.Rank() > s.PeakImpact.Rank() {
		s.PeakImpact = impact
	}
	i, _ := slices.BinarySearchFunc(s.Updates, u, func(a, b Update) int { return a.Time.Compare(b.Time) })
	s.Updates = slices.Insert(s.Updates, i, u)
	if s.FirstEventID == "" {
		s.FirstEventID = ev.ID
	}
	if s.Kind == "" {
		s.Kind = "incident"
		if ev.Type.IsMaintenance() {
			s.Kind = "maintenance"
		}
	}
	if !ev.Time.Before(s.LastEventTime) {
		s.PreviousImpact = s.Incident.Impact
		s.Incident = *in
		s.Incident.Impact = impact
		s.LastEventTime = ev.Time
	}
	s.ResolvedAt = s.resolvedAt()
	return true
}

// resolvedAt finds when the incident was closed: among the updates since it
// was last open, the first that closed it other than a postmortem (a
// postmortem only describes what happened); the first postmortem when
// nothing else closed it. Nil while the newest state is open.
func (s *IncidentState) resolvedAt() *time.Time {
	if !s.Incident.Status.Closed() {
		return nil
	}
	var first, firstPostmortem *Update
	for i := len(s.Updates) - 1; i >= 0 && s.Updates[i].Status.Closed(); i-- {
		u := &s.Updates[i]
		if u.Type == IncidentPostmortem {
			firstPostmortem = u
		} else {
			first = u
		}
	}
	if first == nil {
		first = firstPostmortem
	}
	if first == nil {
		// A late open update sorted after the closing one: the newest state
		// is still the closing event's.
		t := s.LastEventTime
		return &t
	}
	t := first.Time
	return &t
}

// LatestData returns the newest data statement in the timeline up to and
// including the update at time t (zero: all of it), or nil.
func (s *IncidentState) LatestData(t time.Time) *DataSafety {
	for i := len(s.Updates) - 1; i >= 0; i-- {
		u := s.Updates[i]
		if !t.IsZero() && u.Time.After(t) {
			continue
		}
		if u.Data != nil {
			return u.Data
		}
	}
	return nil
}

// UpdateFor returns the timeline entry of an event, or nil.
func (s *IncidentState) UpdateFor(eventID string) *Update {
	for i := range s.Updates {
		if s.Updates[i].EventID == eventID {
			return &s.Updates[i]
		}
	}
	return nil
}

// Overdue reports whether the newest promise of an update has passed without
// one, at time now.
func (s *IncidentState) Overdue(now time.Time) bool {
	next := s.Incident.NextUpdateAt
	return s.ResolvedAt == nil && next != nil && now.After(*next)
}
