package console

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/varsel/varsel/notifier"
)

// letterForm is the apology letter's form: the four sections and the
// signature in both languages.
type letterForm struct {
	EventID    string
	IncidentID string
	Audience   string // "all" or "components"
	Components string

	SubjectEN, SubjectNB           string
	WhatHappenedEN, WhatHappenedNB string
	DataSafetyEN, DataSafetyNB     string
	GoingForwardEN, GoingForwardNB string
	ApologyEN, ApologyNB           string
	SignName                       string
	SignTitleEN, SignTitleNB       string
}

type letterView struct {
	Page
	Form      letterForm
	Incidents []*notifier.IncidentState
	Preview   *preview
	Problems  []string
	// Unknown names the audience's components the site file does not
	// name: a letter to them reaches only who subscribed to that id (a
	// typo sent the apology to 2 people instead of 6, unsaid).
	Unknown string
}

func (c *console) letterView(r *http.Request, f letterForm) letterView {
	v := letterView{Page: c.newPage(r, "ConsoleNewLetter"), Form: f}
	if f.Audience == "components" {
		if unknown := c.cfg.Site.Unknown(componentIDs(f.Components)); len(unknown) > 0 {
			v.Unknown = v.T("ConsoleUnknownComponents", "Count", len(unknown), "IDs", strings.Join(unknown, ", "))
		}
	}
	for _, st := range c.deps.Status.Incidents() {
		if st.Kind == "incident" && len(v.Incidents) < 30 {
			v.Incidents = append(v.Incidents, st)
		}
	}
	return v
}

// newLetter shows the letter form, about an incident when ?incident= names
// one (its components become the audience): GET /console/letters/new.
func (c *console) newLetter(w http.ResponseWriter, r *http.Request) {
	f := letterForm{Audience: "all", EventID: "letter-" + newEventID("", c.now())[1:]}
	if st, ok := c.deps.Status.Incident(r.URL.Query().Get("incident")); ok {
		f.IncidentID, f.Audience, f.Components = st.Incident.ID, "components", strings.Join(st.Incident.Components, ", ")
		f.SubjectEN, f.SubjectNB = st.Incident.Title["en"], st.Incident.Title["nb"]
	}
	if _, a, ok := staffAccount(r); ok {
		f.SignName = a.Name
	}
	c.render(w, "letter.html", c.letterView(r, f))
}

func readLetterForm(r *http.Request) letterForm {
	v := func(k string) string { return strings.TrimSpace(r.PostFormValue(k)) }
	return letterForm{EventID: v("event_id"), IncidentID: v("incident_id"), Audience: v("audience"), Components: v("components"),
		SubjectEN: v("subject_en"), SubjectNB: v("subject_nb"),
		WhatHappenedEN: v("what_happened_en"), WhatHappenedNB: v("what_happened_nb"),
		DataSafetyEN: v("data_safety_en"), DataSafetyNB: v("data_safety_nb"),
		GoingForwardEN: v("going_forward_en"), GoingForwardNB: v("going_forward_nb"),
		ApologyEN: v("apology_en"), ApologyNB: v("apology_nb"),
		SignName: v("sign_name"), SignTitleEN: v("sign_title_en"), SignTitleNB: v("sign_title_nb")}
}

func (f letterForm) event(p Page, now time.Time) (*notifier.Event, []string) {
	l := &notifier.Letter{IncidentID: f.IncidentID, Subject: localized(f.SubjectEN, f.SubjectNB),
		Sections: &notifier.LetterSections{
			WhatHappened: localized(f.WhatHappenedEN, f.WhatHappenedNB), DataSafety: localized(f.DataSafetyEN, f.DataSafetyNB),
			GoingForward: localized(f.GoingForwardEN, f.GoingForwardNB), Apology: localized(f.ApologyEN, f.ApologyNB)},
		Signature: notifier.Signature{Name: f.SignName, Title: localized(f.SignTitleEN, f.SignTitleNB)}}
	if f.Audience == "components" {
		l.Audience.Components = strings.FieldsFunc(f.Components, func(r rune) bool { return r == ',' || r == ' ' || r == ';' })
	} else {
		l.Audience.All = true
	}
	ev := &notifier.Event{ID: f.EventID, Type: notifier.LetterBroadcast, Time: now.Truncate(time.Second), Letter: l}
	raw, _ := json.Marshal(ev)
	decoded, err := notifier.DecodeEvent(raw)
	var ve *notifier.ValidationError
	if errors.As(err, &ve) {
		var out []string
		for _, fe := range ve.Problems {
			out = append(out, p.problemOf(fe))
		}
		return nil, out
	}
	if err != nil {
		return nil, []string{err.Error()}
	}
	return decoded, nil
}

// previewLetter shows the letter as readers get it and whom it reaches,
// with a test send to the signed-in staff member (action=test) and the
// confirmation step before sending: POST /console/letters/preview.
func (c *console) previewLetter(w http.ResponseWriter, r *http.Request) {
	f := readLetterForm(r)
	v := c.letterView(r, f)
	v.Title = v.T("ConsolePreview")
	ev, problems := f.event(v.Page, c.now())
	if len(problems) > 0 {
		v.Problems = problems
		w.WriteHeader(http.StatusUnprocessableEntity)
		c.render(w, "letter.html", v)
		return
	}
	var st *notifier.IncidentState
	if f.IncidentID != "" {
		st, _ = c.deps.Status.Incident(f.IncidentID)
	}
	v.Preview = c.preview(r, v.Page, ev, st, eventMissing(ev), false)
	if r.PostFormValue("action") == "test" {
		v.Notice, v.Error = c.sendTest(r, v.Page, ev)
	}
	c.render(w, "letter.html", v)
}

// sendTest emails the letter to the signed-in staff member only.
func (c *console) sendTest(r *http.Request, p Page, ev *notifier.Event) (notice, problem string) {
	if c.deps.SendTest == nil {
		return "", p.T("ConsoleTestOff")
	}
	sub := &notifier.Subscriber{ID: "console-test", Name: p.Account.Name, Email: p.Account.Email, Locale: p.Account.Locale}
	m, err := c.deps.Renderer.Preview(ev, nil, sub, notifier.Email)
	if err != nil {
		return "", err.Error()
	}
	m.Subject = "[" + p.T("ConsoleTest") + "] " + m.Subject
	if err := c.deps.SendTest(r.Context(), p.Account.Email, m); err != nil {
		c.log.Warn("test letter not sent", "error", err)
		return "", p.T("ConsoleTestFailed", "Error", err.Error())
	}
	return p.T("ConsoleTestSent", "To", p.Account.Email), ""
}
