package console

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/varsel/varsel/notifier"
)

// holding publishes a holding update in one click, composed by Varsel in
// every language ("the update from 14:00 still applies"), with the next
// promise 1, 2 or 4 hours ahead: POST /console/incidents/{id}/holding.
func (c *console) holding(w http.ResponseWriter, r *http.Request) {
	p := c.newPage(r, "ConsoleHolding")
	st, ok := c.deps.Status.Incident(r.PathValue("id"))
	if !ok {
		http.NotFound(w, r)
		return
	}
	in := map[string]time.Duration{"1h": time.Hour, "2h": 2 * time.Hour, "4h": 4 * time.Hour}[r.PostFormValue("next")]
	if in == 0 {
		in = 2 * time.Hour
	}
	now := c.now()
	ev, err := notifier.HoldingUpdate(st, now, now.Add(in).Truncate(time.Minute))
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, notifier.ErrNoHolding) {
			status = http.StatusConflict
		}
		c.problem(w, p, status, err.Error())
		return
	}
	if id, prefix := r.PostFormValue("event_id"), notifier.HoldingPrefix(st.Incident.ID); strings.HasPrefix(id, prefix) && notifier.ValidID(id) {
		// The button's, so a second click sends nothing twice; from a
		// page older than stampFor it is a new update.
		if at, ok := stampTime(strings.TrimPrefix(id, prefix)); ok && now.Sub(at) >= 0 && now.Sub(at) < stampFor {
			ev.ID = id
		}
	}
	raw, _ := json.Marshal(ev)
	_, duplicate, err := c.deps.Operator.PublishEventAs(r.Context(), raw, who(r))
	if err != nil {
		c.log.Error("holding update from the console", "incident", st.Incident.ID, "error", err)
		c.problem(w, p, http.StatusServiceUnavailable, p.T("ConsoleUnavailable"))
		return
	}
	if duplicate {
		// A second click: the same promise is the same event.
		c.problem(w, p, http.StatusConflict, p.T("ConsoleAlreadyPublished", "Event", ev.ID))
		return
	}
	c.log.Info("holding update published from the console", "incident", st.Incident.ID, "event", ev.ID)
	http.Redirect(w, r, Prefix+"/progress/"+ev.ID, http.StatusSeeOther)
}
