package web

import (
	"net/http"
	"slices"
	"time"

	"github.com/varsel/varsel/notifier"
)

// historyDays is how far back the front page's history goes by day.
const historyDays = 90

// olderShown bounds the incidents listed before the history's 90 days.
const olderShown = 10

type statusView struct {
	reader
	// Components is the catalogue with each component's state now,
	// grouped as the site file groups them.
	Groups      []componentGroup
	Ongoing     []*incidentView
	Maintenance []*incidentView // not completed: upcoming or in progress
	History     []historyDay    // the last 90 days, newest first, days with incidents
	Older       []*incidentView // before that, newest first
	PublicURL   string
	Now         time.Time
}

type componentGroup struct {
	Name       string // "" for components without a group
	Components []componentView
}

// componentView is one component and how it is now: "operational",
// "maintenance", or the worst impact of an open incident naming it.
type componentView struct {
	ID, Name string
	State    string
	Label    string
}

type historyDay struct {
	Day       string
	Incidents []*incidentView
}

func (s *server) statusPage(w http.ResponseWriter, r *http.Request) {
	if !s.synced(w) {
		return
	}
	now := s.now()
	v := statusView{reader: s.readerFor(r), PublicURL: s.cfg.PublicURL, Now: now}
	all := s.deps.Status.Incidents()
	since := now.Add(-historyDays * 24 * time.Hour)
	for _, st := range all {
		iv := newIncidentView(st, now)
		switch {
		case st.ResolvedAt == nil && st.Kind == "maintenance":
			v.Maintenance = append(v.Maintenance, iv)
		case st.ResolvedAt == nil:
			v.Ongoing = append(v.Ongoing, iv)
		}
		if st.ResolvedAt == nil {
			continue
		}
		if start := iv.Start(); start.After(since) {
			day := v.Date(start)
			if n := len(v.History); n > 0 && v.History[n-1].Day == day {
				v.History[n-1].Incidents = append(v.History[n-1].Incidents, iv)
			} else {
				v.History = append(v.History, historyDay{Day: day, Incidents: []*incidentView{iv}})
			}
		} else if len(v.Older) < olderShown {
			v.Older = append(v.Older, iv)
		}
	}
	// Upcoming maintenance soonest first.
	slices.SortStableFunc(v.Maintenance, func(a, b *incidentView) int { return a.Start().Compare(b.Start()) })
	v.Groups = s.components(v.reader, all)
	s.render(w, "status.html", v)
}

// Start is when an incident began, or when maintenance is planned to.
func (iv *incidentView) Start() time.Time {
	if iv.Kind == "maintenance" && iv.Incident.ScheduledStart != nil {
		return *iv.Incident.ScheduledStart
	}
	return iv.Incident.StartedAt
}

// Lasted is how long a closed incident lasted.
func (iv *incidentView) Lasted() time.Duration {
	if iv.ResolvedAt == nil {
		return 0
	}
	return iv.ResolvedAt.Sub(iv.Start())
}

// components lists the catalogue's components (or, without a site file,
// every component an incident named) with their state now.
func (s *server) components(rd reader, all []*notifier.IncidentState) []componentGroup {
	var ids []string
	group := map[string]string{}
	if s.cfg.Site != nil && len(s.cfg.Site.Components) > 0 {
		for _, c := range s.cfg.Site.Components {
			ids = append(ids, c.ID)
			group[c.ID] = c.Group.Pick(rd.Locale)
		}
	} else {
		for _, st := range all {
			for _, c := range st.Incident.Components {
				if !slices.Contains(ids, c) {
					ids = append(ids, c)
				}
			}
		}
		slices.Sort(ids)
	}
	var groups []componentGroup
	for _, id := range ids {
		cv := componentView{ID: id, Name: rd.ComponentName(id), State: "operational", Label: rd.T("ComponentOperational")}
		worst := notifier.ImpactNone
		for _, st := range all {
			in := st.Incident
			if st.ResolvedAt != nil || (len(in.Components) > 0 && !slices.Contains(in.Components, id)) {
				continue
			}
			switch {
			case st.Kind == "maintenance" && in.Status == notifier.StatusInProgress:
				if worst == notifier.ImpactNone {
					cv.State, cv.Label = "maintenance", rd.T("ComponentMaintenance")
				}
			case st.Kind != "maintenance" && in.Impact.Rank() > worst.Rank():
				worst = in.Impact
				cv.State, cv.Label = string(in.Impact), rd.Impact(in.Impact)
			}
		}
		name := group[id]
		if i := slices.IndexFunc(groups, func(g componentGroup) bool { return g.Name == name }); i >= 0 {
			groups[i].Components = append(groups[i].Components, cv)
		} else {
			groups = append(groups, componentGroup{Name: name, Components: []componentView{cv}})
		}
	}
	return groups
}

// notFound answers 404 with a page in the reader's language.
func (s *server) notFound(w http.ResponseWriter, r *http.Request) {
	rd := s.readerFor(r)
	var other *reader
	if m, ok := mirrorOf(r); ok && m.both {
		o := rd
		o.Locale = "nb"
		if rd.Locale == "nb" {
			o.Locale = "en"
		}
		other = &o
	}
	s.renderStatus(w, http.StatusNotFound, "notfound.html", struct {
		reader
		PublicURL string
		// Other is the page's text in the other language (the mirror's
		// root 404.html), nil for one language.
		Other *reader
	}{rd, s.cfg.PublicURL, other})
}
