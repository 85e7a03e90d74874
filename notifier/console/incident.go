package console

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/varsel/varsel/notifier"
)

// timelineRow is one update of an incident, with who published it.
type timelineRow struct {
	notifier.Update
	PublishedBy string
}

type incidentView struct {
	Page
	Form     incidentForm
	State    *notifier.IncidentState
	Timeline []timelineRow
	Preview  *preview
	Problems []string
	// Unknown says which components of the form the site file does not
	// name ("Unknown component: x (not in the site file)"); "" for none.
	// Such an event is accepted, but readers see the bare id.
	Unknown string

	Impacts       []notifier.Impact
	Risks         []notifier.Risk
	RestoreStates []notifier.RestoreState
	NextChoices   []string
}

func (c *console) incidentView(r *http.Request, titleID string, f incidentForm, st *notifier.IncidentState) incidentView {
	v := incidentView{Page: c.newPage(r, titleID), Form: f, State: st,
		Impacts: impacts, Risks: risks, RestoreStates: restoreStates, NextChoices: nextChoices}
	if unknown := c.cfg.Site.Unknown(componentIDs(f.Components)); len(unknown) > 0 {
		v.Unknown = v.T("ConsoleUnknownComponents", "Count", len(unknown), "IDs", strings.Join(unknown, ", "))
	}
	if st != nil {
		v.Title = v.Text(st.Incident.Title)
		for i := len(st.Updates) - 1; i >= 0; i-- {
			row := timelineRow{Update: st.Updates[i]}
			if rec, err := c.deps.Operator.Event(r.Context(), row.EventID); err == nil {
				row.PublishedBy = rec.PublishedBy
			}
			v.Timeline = append(v.Timeline, row)
		}
	}
	return v
}

// newIncident shows the form for a new incident or maintenance:
// GET /console/incidents/new[?kind=maintenance].
func (c *console) newIncident(w http.ResponseWriter, r *http.Request) {
	kind, title := "incident", "ConsoleNewIncident"
	if r.URL.Query().Get("kind") == "maintenance" {
		kind, title = "maintenance", "ConsoleNewMaintenance"
	}
	c.render(w, "incident.html", c.incidentView(r, title, c.formFor(kind, nil, ""), nil))
}

// editIncident shows an incident's timeline and the form for its next
// update, prefilled with its current state: GET /console/incidents/{id}.
func (c *console) editIncident(w http.ResponseWriter, r *http.Request) {
	st, ok := c.deps.Status.Incident(r.PathValue("id"))
	if !ok {
		http.NotFound(w, r)
		return
	}
	f := c.formFor(st.Kind, st, notifier.EventType(r.URL.Query().Get("type")))
	c.render(w, "incident.html", c.incidentView(r, "", f, st))
}

// previewIncident turns the form into an event and shows exactly what
// readers will get, with the form again to change it:
// POST /console/incidents/preview.
func (c *console) previewIncident(w http.ResponseWriter, r *http.Request) {
	f := readForm(r)
	var st *notifier.IncidentState
	if !f.New {
		var ok bool
		if st, ok = c.deps.Status.Incident(f.IncidentID); !ok {
			http.NotFound(w, r)
			return
		}
		f.Kind = st.Kind
	}
	if f.Kind != "maintenance" {
		f.Kind = "incident"
	}
	types, _ := typesFor(f.Kind, st, f.Type)
	f.Types, f.Statuses = types, statusesFor(f.Type)
	v := c.incidentView(r, "ConsolePreview", f, st)
	if st == nil {
		v.Title = v.T("ConsolePreview")
	}
	if !slices.Contains(types, f.Type) {
		v.Problems = append(v.Problems, v.T("ConsoleWrongType", "Type", string(f.Type)))
	}
	ev, problems := c.event(v.Page, &v.Form)
	v.Problems = append(v.Problems, problems...)
	if len(v.Problems) > 0 {
		w.WriteHeader(http.StatusUnprocessableEntity)
		c.render(w, "incident.html", v)
		return
	}
	v.Preview = c.preview(r, v.Page, ev, st, v.Form.missing(), v.Form.ConfirmOneLanguage)
	c.render(w, "incident.html", v)
}

// componentIDs splits the form's components field as the event gets them.
func componentIDs(field string) []string {
	return strings.FieldsFunc(field, func(r rune) bool { return r == ',' || r == ' ' || r == ';' })
}

// eventJSON is the event as the publish form carries it.
func eventJSON(ev *notifier.Event) string {
	b, _ := json.Marshal(ev)
	return string(b)
}
