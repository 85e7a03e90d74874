package console

import (
	"net/http"
	"strings"
	"time"

	"github.com/varsel/varsel/notifier"
)

// incidentRow is one incident on the dashboard.
type incidentRow struct {
	*notifier.IncidentState
	Latest      notifier.Update
	PublishedBy string
	Overdue     bool
	// DueIn is how long until the promised update, "" without one.
	DueSoon bool
	// HoldingID is the id its holding button publishes (see Stamp).
	HoldingID string
}

type dashboardView struct {
	Page
	Open, Closed []incidentRow
	// Stamp ends the id of every holding update this page can publish
	// (ID-holding-STAMP): a second click on the same button is the same
	// event and is sent once; a page loaded again makes new ones.
	Stamp string
}

// stampLayout is the time layout of a dashboard's Stamp (its dot taken
// out, since ids have none).
const stampLayout = "20060102T150405.000Z"

// stampFor is how long a dashboard's holding buttons keep their ids: a
// second click comes within it; a page left open, or brought back from the
// browser's cache, for longer makes a new update of its click.
const stampFor = 2 * time.Minute

// stampTime reads the time of a Stamp, ok false for none.
func stampTime(stamp string) (time.Time, bool) {
	if len(stamp) != len(stampLayout)-1 {
		return time.Time{}, false
	}
	t, err := time.Parse(stampLayout, stamp[:15]+"."+stamp[15:])
	return t, err == nil
}

// dashboard lists what is open, with its promise, and what closed lately:
// GET /console/.
func (c *console) dashboard(w http.ResponseWriter, r *http.Request) {
	p := c.newPage(r, "ConsoleDashboard")
	p.Notice = noticeFrom(p, r)
	now := c.now()
	v := dashboardView{Page: p, Stamp: strings.Replace(now.UTC().Format(stampLayout), ".", "", 1)}
	for _, st := range c.deps.Status.Incidents() {
		if len(st.Updates) == 0 {
			continue
		}
		row := incidentRow{IncidentState: st, Latest: st.Updates[len(st.Updates)-1], Overdue: st.Overdue(now),
			HoldingID: notifier.HoldingPrefix(st.Incident.ID) + v.Stamp}
		if next := st.Incident.NextUpdateAt; next != nil && !row.Overdue && next.Sub(now) < 15*time.Minute {
			row.DueSoon = true
		}
		if rec, err := c.deps.Operator.Event(r.Context(), row.Latest.EventID); err == nil {
			row.PublishedBy = rec.PublishedBy
		}
		if st.ResolvedAt == nil {
			v.Open = append(v.Open, row)
		} else if len(v.Closed) < 10 {
			v.Closed = append(v.Closed, row)
		}
	}
	c.render(w, "dashboard.html", v)
}

// noticeFrom turns the ?done= of a redirect into a sentence.
func noticeFrom(p Page, r *http.Request) string {
	switch r.URL.Query().Get("done") {
	case "published":
		return p.T("ConsoleNoticePublished")
	}
	return ""
}
