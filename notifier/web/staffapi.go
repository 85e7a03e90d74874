package web

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/varsel/varsel/notifier"
	"github.com/varsel/varsel/notifier/staff"
)

// adminOrStaff guards a handler with the bearer token or a staff session
// (with its CSRF token on writes). who is the publisher the audit trail
// records.
func (s *server) adminOrStaff(h func(w http.ResponseWriter, r *http.Request, who string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.deps.Staff != nil {
			if a, ok := s.deps.Staff.Session(r); ok {
				h(w, r, staff.Publisher(a, "console"))
				return
			}
		}
		s.admin(func(w http.ResponseWriter, r *http.Request) { h(w, r, "admin API") }).ServeHTTP(w, r)
	})
}

// holding publishes a holding update of an incident:
// POST /api/v1/incidents/{id}/holding {"next_update_at": TIME}.
func (s *server) holding(w http.ResponseWriter, r *http.Request, who string) {
	id := r.PathValue("id")
	st, ok := s.deps.Status.Incident(id)
	if !notifier.ValidID(id) || !ok {
		writeError(w, http.StatusNotFound, "no incident "+strconv.Quote(id))
		return
	}
	var body struct {
		NextUpdateAt time.Time `json:"next_update_at"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || body.NextUpdateAt.IsZero() {
		writeError(w, http.StatusBadRequest, `want {"next_update_at": "2019-09-17T16:00:00+02:00"}`,
			notifier.FieldError{Field: "next_update_at", Problem: "required: an RFC 3339 time"})
		return
	}
	ev, err := notifier.HoldingUpdate(st, s.now(), body.NextUpdateAt)
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, notifier.ErrNoHolding) {
			status = http.StatusConflict
		}
		writeError(w, status, err.Error())
		return
	}
	raw, err := json.Marshal(ev)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	_, duplicate, err := s.deps.Operator.PublishEventAs(r.Context(), raw, who)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	status := http.StatusAccepted
	if duplicate {
		// The same holding update (same update it holds to, same promise)
		// was published already: nothing is sent again, and a script can
		// tell.
		status = http.StatusOK
	} else {
		s.logger.Info("holding update published", "incident", id, "event", ev.ID, "next_update_at", body.NextUpdateAt)
	}
	writeJSON(w, status, map[string]any{"id": ev.ID, "type": ev.Type, "holding_since": ev.Incident.HoldingSince,
		"next_update_at": ev.Incident.NextUpdateAt, "duplicate": duplicate, "progress": s.cfg.PublicURL + "/api/v1/progress/" + ev.ID})
}

// progress says how far an event's deliveries have got:
// GET /api/v1/progress/{event}.
func (s *server) progress(w http.ResponseWriter, r *http.Request, _ string) {
	id := r.PathValue("event")
	if !notifier.ValidID(id) {
		writeError(w, http.StatusNotFound, "no event "+strconv.Quote(id))
		return
	}
	p, err := s.deps.Operator.Progress(r.Context(), id)
	switch {
	case errors.Is(err, notifier.ErrNotFound):
		writeError(w, http.StatusNotFound, "no event "+strconv.Quote(id)+" (published events appear here once intake has taken them)")
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		total := p.Total()
		writeJSON(w, http.StatusOK, struct {
			*notifier.Progress
			Total notifier.ChannelProgress `json:"total"`
			Done  bool                     `json:"done"`
		}{p, total, p.Done()})
	}
}
