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
	ScheduledStart *time.Time  `json:"scheduled_start,omitempty"`
	ScheduledEnd   *time.Time  `json:"scheduled_end,omitempty"`
	Message        Localized   `json:"message"`
	Data           *DataSafety `json:"data,omitempty"`
	Contact        Localized   `json:"contact,omitempty"`
}

// DataSafety says what happened to customer data.
type DataSafety struct {
	// AtRisk is nil when the producer does not say.
	AtRisk *bool `json:"at_risk,omitempty"`
	// RestoredFromBackupAt is the backup point data was restored from; data
	// entered after it may need re-entering.
	RestoredFromBackupAt *time.Time `json:"restored_from_backup_at,omitempty"`
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
