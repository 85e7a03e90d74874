// Package notifier is Varsel's domain: incident events, subscribers, letters,
// the channel policy, the planner and dispatcher that turn one event into one
// delivery per (subscriber, channel), and the Channel interface that every
// delivery channel implements.
package notifier

import (
	"slices"
	"time"
)

// EventType names what happened. It is also the last part of the NATS subject
// the event is published on: varsel.events.<type>.
type EventType string

// The event types of the public contract (docs/events.md).
const (
	IncidentOpened       EventType = "incident.opened"
	IncidentUpdated      EventType = "incident.updated"
	IncidentResolved     EventType = "incident.resolved"
	IncidentPostmortem   EventType = "incident.postmortem"
	MaintenanceScheduled EventType = "maintenance.scheduled"
	MaintenanceStarted   EventType = "maintenance.started"
	MaintenanceCompleted EventType = "maintenance.completed"
	LetterBroadcast      EventType = "letter.broadcast"
)

// EventTypes lists every valid event type in a stable order.
var EventTypes = []EventType{
	IncidentOpened, IncidentUpdated, IncidentResolved, IncidentPostmortem,
	MaintenanceScheduled, MaintenanceStarted, MaintenanceCompleted, LetterBroadcast,
}

// IsMaintenance reports whether t is one of the maintenance.* types.
func (t EventType) IsMaintenance() bool {
	return t == MaintenanceScheduled || t == MaintenanceStarted || t == MaintenanceCompleted
}

// Valid reports whether t is a known event type.
func (t EventType) Valid() bool { return slices.Contains(EventTypes, t) }

// Status is where an incident or maintenance stands.
type Status string

// Incident and maintenance statuses.
const (
	StatusInvestigating Status = "investigating"
	StatusIdentified    Status = "identified"
	StatusMonitoring    Status = "monitoring"
	StatusResolved      Status = "resolved"
	StatusScheduled     Status = "scheduled"
	StatusInProgress    Status = "in_progress"
	StatusCompleted     Status = "completed"
)

// IncidentStatuses and MaintenanceStatuses list the valid statuses per kind.
var (
	IncidentStatuses    = []Status{StatusInvestigating, StatusIdentified, StatusMonitoring, StatusResolved}
	MaintenanceStatuses = []Status{StatusScheduled, StatusInProgress, StatusCompleted}
)

// Closed reports whether the status ends the incident or maintenance.
func (s Status) Closed() bool { return s == StatusResolved || s == StatusCompleted }

// Impact is how badly customers are affected.
type Impact string

// Impacts, from least to most severe.
const (
	ImpactNone     Impact = "none"
	ImpactMinor    Impact = "minor"
	ImpactMajor    Impact = "major"
	ImpactCritical Impact = "critical"
)

// Impacts lists every valid impact from least to most severe.
var Impacts = []Impact{ImpactNone, ImpactMinor, ImpactMajor, ImpactCritical}

// Rank orders impacts: none 0 … critical 3; an unknown impact is -1.
func (i Impact) Rank() int { return slices.Index(Impacts, i) }

// Localized maps a BCP 47 language tag ("en", "nb") to text in that language.
type Localized map[string]string

// Event is one incident event as producers publish it (docs/events.md).
type Event struct {
	ID       string    `json:"id"`
	Type     EventType `json:"type"`
	Time     time.Time `json:"time"`
	Incident *Incident `json:"incident,omitempty"`
	Letter   *Letter   `json:"letter,omitempty"`
}

// Incident is the incident (or maintenance) as of one event.
type Incident struct {
	ID         string    `json:"id"`
	Title      Localized `json:"title"`
	Status     Status    `json:"status"`
	Impact     Impact    `json:"impact"`
	Components []string  `json:"components"`
	StartedAt  time.Time `json:"started_at"`
	// NextUpdateAt is a promise to customers: the time of the next update.
	NextUpdateAt *time.Time `json:"next_update_at,omitempty"`
	// ScheduledStart and ScheduledEnd bound a maintenance window.
	ScheduledStart *time.Time `json:"scheduled_start,omitempty"`
	ScheduledEnd   *time.Time `json:"scheduled_end,omitempty"`
	// HoldingSince makes an incident.updated a holding update: the update
	// published at that time still applies. Varsel says so in each reader's
	// language and zone, so Message may be left out or add to it.
	HoldingSince *time.Time  `json:"holding_since,omitempty"`
	Message      Localized   `json:"message,omitempty"`
	Data         *DataSafety `json:"data,omitempty"`
	Contact      Localized   `json:"contact,omitempty"`
}

// DataSafety says what happened to customer data, in words that stay true
// while it is still happening: how the risk to the data stands, and the
// backup point a restore is planned from, running from or was done from.
//
// AtRisk and RestoredFromBackupAt are the older forms of Risk and Restore;
// DecodeEvent accepts either and fills in both, so readers of stored events
// of either age can use Current.
type DataSafety struct {
	// Risk is "" when the producer does not say.
	Risk    Risk     `json:"risk,omitempty"`
	Restore *Restore `json:"restore,omitempty"`
	// AtRisk is the older form of Risk: false is RiskNone, true
	// RiskConfirmed. It is set from Risk when Risk is one of those two.
	AtRisk *bool `json:"at_risk,omitempty"`
	// RestoredFromBackupAt is the older form of a Restore in state done.
	RestoredFromBackupAt *time.Time `json:"restored_from_backup_at,omitempty"`
}

// Risk is how the risk to customer data stands.
type Risk string

// Risks, as the producer states them.
const (
	// RiskNone: checked, and the data was not at risk.
	RiskNone Risk = "none"
	// RiskLow: assessed as low; not a statement that nothing happened.
	RiskLow Risk = "low"
	// RiskUnknown: not known yet.
	RiskUnknown Risk = "unknown"
	// RiskConfirmed: data was exposed or lost.
	RiskConfirmed Risk = "confirmed"
)

// Risks lists every valid risk.
var Risks = []Risk{RiskNone, RiskLow, RiskUnknown, RiskConfirmed}

// RestoreState says whether a restore from backup is planned, running or done.
type RestoreState string

// Restore states, in the order a restore goes through them.
const (
	RestorePlanned    RestoreState = "planned"
	RestoreInProgress RestoreState = "in_progress"
	RestoreDone       RestoreState = "done"
)

// RestoreStates lists every valid restore state.
var RestoreStates = []RestoreState{RestorePlanned, RestoreInProgress, RestoreDone}

// Restore is a restore of customer data from a backup: data entered after
// the backup point may need entering again.
type Restore struct {
	FromBackupAt time.Time    `json:"from_backup_at"`
	State        RestoreState `json:"state"`
}

// Current returns the risk and restore, reading the older fields where the
// newer ones are missing (a record stored before they existed). d may be nil.
func (d *DataSafety) Current() (Risk, *Restore) {
	if d == nil {
		return "", nil
	}
	risk, restore := d.Risk, d.Restore
	if risk == "" && d.AtRisk != nil {
		risk = RiskNone
		if *d.AtRisk {
			risk = RiskConfirmed
		}
	}
	if restore == nil && d.RestoredFromBackupAt != nil {
		restore = &Restore{FromBackupAt: *d.RestoredFromBackupAt, State: RestoreDone}
	}
	return risk, restore
}

// normalize fills in both forms of each field from whichever was given.
func (d *DataSafety) normalize() {
	risk, restore := d.Current()
	d.Risk, d.Restore = risk, restore
	switch risk {
	case RiskNone, RiskConfirmed:
		b := risk == RiskConfirmed
		d.AtRisk = &b
	default:
		d.AtRisk = nil
	}
	d.RestoredFromBackupAt = nil
	if restore != nil && restore.State == RestoreDone {
		t := restore.FromBackupAt
		d.RestoredFromBackupAt = &t
	}
}

// Letter is a broadcast letter from support staff, typically an apology after
// an incident.
type Letter struct {
	IncidentID string          `json:"incident_id,omitempty"`
	Audience   Audience        `json:"audience"`
	Subject    Localized       `json:"subject"`
	Sections   *LetterSections `json:"sections,omitempty"`
	Body       Localized       `json:"body,omitempty"`
	Signature  Signature       `json:"signature"`
}

// Audience says who receives a letter: everyone, or the subscribers of some
// components.
type Audience struct {
	All        bool     `json:"all,omitempty"`
	Components []string `json:"components,omitempty"`
}

// LetterSections are the four parts of an apology letter.
type LetterSections struct {
	WhatHappened Localized `json:"what_happened"`
	DataSafety   Localized `json:"data_safety"`
	GoingForward Localized `json:"going_forward"`
	Apology      Localized `json:"apology"`
}

// Signature names the person who signs a letter.
type Signature struct {
	Name  string    `json:"name"`
	Title Localized `json:"title,omitempty"`
}

// Components returns the components an event concerns; nil means all.
func (e *Event) Components() []string {
	switch {
	case e.Letter != nil:
		if e.Letter.Audience.All {
			return nil
		}
		return e.Letter.Audience.Components
	case e.Incident != nil:
		return e.Incident.Components
	}
	return nil
}

// IncidentID returns the incident the event belongs to, or "".
func (e *Event) IncidentID() string {
	switch {
	case e.Incident != nil:
		return e.Incident.ID
	case e.Letter != nil:
		return e.Letter.IncidentID
	}
	return ""
}
