package notifier

// Policy decides which channels an event goes out on.
type Policy interface {
	Channels(ev *Event, inc *IncidentState) []ChannelName
}

// DefaultPolicy sends email and webhooks for every event, and SMS only when
// it matters (Statuspage's rule, which keeps SMS cost and fatigue down): an
// incident opens or resolves, maintenance starts, or the impact rises to
// major or critical.
type DefaultPolicy struct{}

// Channels implements Policy.
func (DefaultPolicy) Channels(ev *Event, inc *IncidentState) []ChannelName {
	if smsWorthy(ev, inc) {
		return []ChannelName{Email, SMS, Webhook}
	}
	return []ChannelName{Email, Webhook}
}

func smsWorthy(ev *Event, inc *IncidentState) bool {
	switch ev.Type {
	case IncidentOpened, IncidentResolved, MaintenanceStarted:
		return true
	case IncidentUpdated:
		if ev.Incident == nil || inc == nil {
			return false
		}
		// Only the event that made the newest state counts: a late older
		// update must not page anyone.
		if inc.Incident.Impact != ev.Incident.Impact || inc.LastEventTime.After(ev.Time) {
			return false
		}
		return ev.Incident.Impact.Rank() >= ImpactMajor.Rank() && inc.PreviousImpact.Rank() < ev.Incident.Impact.Rank()
	}
	return false
}

// StartOrEnd reports whether an event is the start or the end of an
// incident or a maintenance: incident.opened, incident.resolved,
// maintenance.started and maintenance.completed. A subscriber with
// SMSStartEndOnly gets SMS for these only (and only when the policy sends
// SMS for them at all: DefaultPolicy sends none for a completed
// maintenance).
func StartOrEnd(t EventType) bool {
	switch t {
	case IncidentOpened, IncidentResolved, MaintenanceStarted, MaintenanceCompleted:
		return true
	}
	return false
}
