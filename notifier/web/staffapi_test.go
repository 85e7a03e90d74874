package web

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/varsel/varsel/notifier"
	js "github.com/varsel/varsel/notifier/jetstream"
)

func TestHoldingUpdateThroughTheAPI(t *testing.T) {
	f := newFixture(t)
	for _, raw := range []string{
		`{"id":"h1","type":"incident.opened","time":"2019-09-17T12:00:00+02:00","incident":{"id":"inc","title":{"en":"Login problems","nb":"Innlogging"},"status":"identified","impact":"major","components":["web"],"started_at":"2019-09-16T07:50:00+02:00","message":{"en":"Still working.","nb":"Arbeidet pågår."}}}`,
		`{"id":"h2","type":"incident.updated","time":"2019-09-17T14:00:00+02:00","incident":{"id":"inc","title":{"en":"Login problems","nb":"Innlogging"},"status":"identified","impact":"major","components":["web"],"started_at":"2019-09-16T07:50:00+02:00","message":{"en":"Still working.","nb":"Arbeidet pågår."}}}`,
	} {
		ev, err := notifier.DecodeEvent([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		f.update(t, "inc", func(s *notifier.IncidentState) error { s.Apply(ev); return nil })
	}
	promise := time.Now().Add(2 * time.Hour).Truncate(time.Minute)
	next := `{"next_update_at":"` + promise.Format(time.RFC3339) + `"}`
	for _, tc := range []struct {
		name, path, token, body string
		status                  int
	}{
		{"no token", "/api/v1/incidents/inc/holding", "", next, http.StatusUnauthorized},
		{"unknown incident", "/api/v1/incidents/nope/holding", "s3cret", next, http.StatusNotFound},
		{"no time", "/api/v1/incidents/inc/holding", "s3cret", `{}`, http.StatusBadRequest},
		{"a time in the past", "/api/v1/incidents/inc/holding", "s3cret", `{"next_update_at":"2001-01-01T00:00:00Z"}`, http.StatusBadRequest},
		{"holding update", "/api/v1/incidents/inc/holding", "s3cret", next, http.StatusAccepted},
		// A retried request: the same update, sent once; 200 says so.
		{"the same again", "/api/v1/incidents/inc/holding", "s3cret", next, http.StatusOK},
	} {
		res, out := f.do(t, http.MethodPost, tc.path, tc.token, strings.NewReader(tc.body))
		if res.StatusCode != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, res.StatusCode, out, tc.status)
		}
		if tc.status == http.StatusOK && !strings.Contains(out, `"duplicate": true`) {
			t.Errorf("%s: %s, want duplicate true", tc.name, out)
		}
	}
	st, err := f.conn.JS.Stream(context.Background(), js.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(context.Background(), "varsel.events.incident.updated")
	if err != nil {
		t.Fatal(err)
	}
	ev, err := notifier.DecodeEvent(m.Data)
	if err != nil {
		t.Fatalf("the holding update is not a valid event: %v", err)
	}
	if h := ev.Incident.HoldingSince; h == nil || h.Hour() != 14 || ev.Incident.Message != nil || !ev.Incident.NextUpdateAt.Equal(promise) {
		t.Errorf("holding update = %+v", ev.Incident)
	}
	if by := m.Header.Get(js.PublishedByHeader); by != "admin API" {
		t.Errorf("published by %q", by)
	}
	res, out := f.do(t, http.MethodGet, "/api/v1/progress/"+ev.ID, "s3cret", nil)
	var p struct {
		Done bool `json:"done"`
	}
	// Nothing runs the pipeline here: the event is not yet taken in.
	if res.StatusCode != http.StatusNotFound || json.Unmarshal([]byte(out), &p) != nil {
		t.Errorf("progress of an event not taken in yet: %d %s", res.StatusCode, out)
	}
}
