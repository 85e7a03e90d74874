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
	LastEventTime time.Time  `json:"last_event_time"`
	FirstEventID  string     `json:"first_event_id"`
	ResolvedAt    *time.Time `json:"resolved_at,omitempty"`
	// PreviousImpact is the impact before the newest event, for the SMS rule
	// "impact rises to major or critical".
	PreviousImpact Impact   `json:"previous_impact,omitempty"`
	Updates        []Update `json:"updates"`
	// Letters holds the ids of broadcast letters about this incident.
	Letters []string `json:"letters,omitempty"`
}

// Update is one entry of an incident's timeline.
type Update struct {
	EventID      string      `json:"event_id"`
	Type         EventType   `json:"type"`
	Time         time.Time   `json:"time"`
	Sequence     int64       `json:"sequence"`
	Status       Status      `json:"status"`
	Impact       Impact      `json:"impact"`
	Message      Localized   `json:"message"`
	NextUpdateAt *time.Time  `json:"next_update_at,omitempty"`
	Data         *DataSafety `json:"data,omitempty"`
}

// Apply records ev in the state and reports whether it was new. An event
// already in the timeline changes nothing. An event older than the newest
// one applied joins the timeline in time order but leaves the current
// status, impact, title and promises as they are.
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
	u := Update{
		EventID: ev.ID, Type: ev.Type, Time: ev.Time, Sequence: s.Sequence,
		Status: in.Status, Impact: in.Impact, Message: in.Message,
		NextUpdateAt: in.NextUpdateAt, Data: in.Data,
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
		s.LastEventTime = ev.Time
		if in.Status.Closed() {
			t := ev.Time
			s.ResolvedAt = &t
		} else {
			s.ResolvedAt = nil
		}
	}
	return true
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
