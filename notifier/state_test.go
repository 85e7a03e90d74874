package notifier

import (
	"errors"
	"testing"
	"time"
)

func at(hhmm string) time.Time {
	t, err := time.Parse("2006-01-02 15:04", "2019-03-06 "+hhmm)
	if err != nil {
		panic(err)
	}
	return t
}

func incidentEvent(id string, typ EventType, when time.Time, status Status, impact Impact) *Event {
	return &Event{ID: id, Type: typ, Time: when, Incident: &Incident{
		ID: "led", Title: Localized{"en": "LED"}, Status: status, Impact: impact,
		Components: []string{"led"}, StartedAt: at("07:20"), Message: Localized{"en": id},
	}}
}

func TestResolvedAtIsTheResolutionsTime(t *testing.T) {
	opened := incidentEvent("opened", IncidentOpened, at("07:20"), StatusInvestigating, ImpactMajor)
	updated := incidentEvent("updated", IncidentUpdated, at("09:30"), StatusIdentified, ImpactCritical)
	resolved := incidentEvent("resolved", IncidentResolved, at("20:45"), StatusResolved, ImpactCritical)
	postmortem := incidentEvent("postmortem", IncidentPostmortem, at("22:15"), StatusResolved, ImpactMajor)

	tests := []struct {
		name   string
		events []*Event
		want   string // "" for open
	}{
		{"resolved", []*Event{opened, updated, resolved}, "20:45"},
		{"postmortem keeps the resolution's time", []*Event{opened, updated, resolved, postmortem}, "20:45"},
		{"resolution arriving after the postmortem", []*Event{opened, updated, postmortem, resolved}, "20:45"},
		{"postmortem without a resolution", []*Event{opened, updated, postmortem}, "22:15"},
		{"open", []*Event{opened, updated}, ""},
		{"late open update does not reopen", []*Event{opened, resolved, updated}, "20:45"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &IncidentState{}
			for _, ev := range tt.events {
				s.Apply(ev)
			}
			switch {
			case tt.want == "" && s.ResolvedAt != nil:
				t.Errorf("ResolvedAt = %v, want nil", s.ResolvedAt)
			case tt.want != "" && (s.ResolvedAt == nil || !s.ResolvedAt.Equal(at(tt.want))):
				t.Errorf("ResolvedAt = %v, want %s", s.ResolvedAt, tt.want)
			}
		})
	}
}

func TestClosedIncidentHasNoCurrentImpact(t *testing.T) {
	s := &IncidentState{}
	s.Apply(incidentEvent("opened", IncidentOpened, at("07:20"), StatusInvestigating, ImpactMajor))
	s.Apply(incidentEvent("updated", IncidentUpdated, at("09:30"), StatusIdentified, ImpactCritical))
	// The producer left the impact at critical on the resolution.
	s.Apply(incidentEvent("resolved", IncidentResolved, at("20:45"), StatusResolved, ImpactCritical))
	if s.Incident.Impact != ImpactNone {
		t.Errorf("impact of the resolved incident = %q, want none", s.Incident.Impact)
	}
	if u := s.UpdateFor("resolved"); u == nil || u.Impact != ImpactNone {
		t.Errorf("resolution's timeline entry = %+v, want impact none", u)
	}
	if u := s.UpdateFor("updated"); u == nil || u.Impact != ImpactCritical {
		t.Errorf("open update's timeline entry = %+v, want its own impact", u)
	}
	if s.PeakImpact != ImpactCritical {
		t.Errorf("PeakImpact = %q, want critical", s.PeakImpact)
	}
}

func TestLatestData(t *testing.T) {
	s := &IncidentState{}
	low := &DataSafety{Risk: RiskLow}
	s.Apply(incidentEvent("opened", IncidentOpened, at("07:20"), StatusInvestigating, ImpactMajor))
	up := incidentEvent("updated", IncidentUpdated, at("09:30"), StatusIdentified, ImpactMajor)
	up.Incident.Data = low
	s.Apply(up)
	s.Apply(incidentEvent("later", IncidentUpdated, at("12:00"), StatusIdentified, ImpactMajor))
	if got := s.LatestData(time.Time{}); got != low {
		t.Errorf("LatestData() = %+v, want the 09:30 statement", got)
	}
	if got := s.LatestData(at("08:00")); got != nil {
		t.Errorf("LatestData(08:00) = %+v, want nil", got)
	}
}

func TestHoldingUpdateRefersToTheLastRealUpdate(t *testing.T) {
	s := &IncidentState{}
	s.Apply(incidentEvent("opened", IncidentOpened, at("07:20"), StatusInvestigating, ImpactMajor))
	s.Apply(incidentEvent("two", IncidentUpdated, at("14:00"), StatusIdentified, ImpactMajor))
	first, err := HoldingUpdate(s, at("16:00"), at("18:00"))
	if err != nil {
		t.Fatal(err)
	}
	if first.Incident.HoldingSince == nil || !first.Incident.HoldingSince.Equal(at("14:00")) || first.Incident.Message != nil ||
		!first.Incident.NextUpdateAt.Equal(at("18:00")) || first.Incident.Status != StatusIdentified {
		t.Errorf("first holding update = %+v", first.Incident)
	}
	s.Apply(first)
	second, err := HoldingUpdate(s, at("18:00"), at("20:00"))
	if err != nil {
		t.Fatal(err)
	}
	if !second.Incident.HoldingSince.Equal(at("14:00")) || second.ID == first.ID {
		t.Errorf("second holding update refers to %s (id %s), want the 14:00 update", second.Incident.HoldingSince, second.ID)
	}
	if _, err := HoldingUpdate(s, at("19:00"), at("18:30")); err == nil {
		t.Error("a promise in the past was accepted")
	}
	s.Apply(incidentEvent("done", IncidentResolved, at("21:00"), StatusResolved, ImpactMajor))
	if _, err := HoldingUpdate(s, at("22:00"), at("23:00")); !errors.Is(err, ErrNoHolding) {
		t.Errorf("holding update of a resolved incident: %v", err)
	}
}
