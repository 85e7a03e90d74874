package console

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/varsel/varsel/notifier"
)

// preview is what the staff member checks before publishing: every
// message an nb and an en reader would get, and whom it reaches.
type preview struct {
	EventJSON string
	EventID   string
	Letter    bool
	Readers   []readerPreview
	Audience  []audienceRow
	Total     int
	// Missing names the texts in one language only; Confirmed is the
	// staff member's yes to that, needed before publishing.
	Missing   []string
	Confirmed bool
	Error     string
	// NoSMS says no SMS is sent for this update.
	NoSMS bool
}

type readerPreview struct {
	Locale, Label   string
	Subject, Email  string
	SMS             string
	Segments        int
	Webhook         string
	ContentLanguage string
}

type audienceRow struct {
	Channel notifier.ChannelName
	EN, NB  int
}

// previewReaders are the readers a preview is rendered for.
var previewReaders = []*notifier.Subscriber{
	{ID: "preview-nb", Name: "Kari Nordmann", Locale: "nb", Email: "kari@example.com", Phone: "+4799999999", WebhookURL: "https://example.com/hook"},
	{ID: "preview-en", Name: "Alex Smith", Locale: "en", Email: "alex@example.com", Phone: "+447700900000", WebhookURL: "https://example.com/hook"},
}

// after returns a copy of st with ev applied, as intake will leave it.
func after(st *notifier.IncidentState, ev *notifier.Event) *notifier.IncidentState {
	next := &notifier.IncidentState{}
	if st != nil {
		b, _ := json.Marshal(st)
		_ = json.Unmarshal(b, next)
	}
	if ev.Incident != nil {
		next.Apply(ev)
	}
	return next
}

func (c *console) preview(r *http.Request, p Page, ev *notifier.Event, st *notifier.IncidentState, missing []string, confirmed bool) *preview {
	pv := &preview{EventJSON: eventJSON(ev), EventID: ev.ID, Letter: ev.Letter != nil, Confirmed: confirmed}
	for _, name := range missing {
		// By the form's labels, in the staff member's language.
		if l := p.label(name); l != "" {
			name = l
		}
		pv.Missing = append(pv.Missing, name)
	}
	var inc *notifier.IncidentState
	if ev.Incident != nil {
		inc = after(st, ev)
	}
	for _, sub := range previewReaders {
		rp := readerPreview{Locale: sub.Locale, Label: p.T("ConsoleReader" + camel(sub.Locale))}
		for _, ch := range notifier.ChannelNames {
			if ch == notifier.SMS && ev.Letter != nil {
				continue // letters are not sent by SMS
			}
			m, err := c.deps.Renderer.Preview(ev, inc, sub, ch)
			if err != nil {
				pv.Error = err.Error()
				continue
			}
			switch ch {
			case notifier.Email:
				rp.Subject, rp.Email, rp.ContentLanguage = m.Subject, m.Text, m.ContentLocale
			case notifier.SMS:
				rp.SMS, rp.Segments = m.SMS, m.Segments
			case notifier.Webhook:
				rp.Webhook = m.WebhookText
			}
		}
		pv.Readers = append(pv.Readers, rp)
	}
	audience, err := c.deps.Planner.Audience(r.Context(), ev, inc, c.cfg.DefaultLocale)
	if err != nil {
		pv.Error = err.Error()
	}
	for _, ch := range notifier.ChannelNames {
		row := audienceRow{Channel: ch, EN: audience[ch]["en"], NB: audience[ch]["nb"]}
		pv.Total += row.EN + row.NB
		pv.Audience = append(pv.Audience, row)
	}
	if ev.Letter == nil && c.deps.Planner != nil && c.deps.Planner.Policy != nil && !slices.Contains(c.deps.Planner.Policy.Channels(ev, inc), notifier.SMS) {
		// The policy sends no SMS for this update (only an opening, a
		// resolution, a rise in impact): the preview shows none, where
		// it showed an SMS no one would get.
		for i := range pv.Readers {
			pv.Readers[i].SMS = ""
		}
		pv.NoSMS = true
	}
	return pv
}

// eventMissing names the texts of an event given in one language only.
func eventMissing(ev *notifier.Event) []string {
	pair := func(l notifier.Localized) [2]string { return [2]string{l["en"], l["nb"]} }
	m := map[string][2]string{}
	if in := ev.Incident; in != nil {
		m["title"], m["message"], m["contact"] = pair(in.Title), pair(in.Message), pair(in.Contact)
	}
	if l := ev.Letter; l != nil {
		m["subject"], m["body"], m["signature_title"] = pair(l.Subject), pair(l.Body), pair(l.Signature.Title)
		if s := l.Sections; s != nil {
			m["what_happened"], m["data_safety"] = pair(s.WhatHappened), pair(s.DataSafety)
			m["going_forward"], m["apology"] = pair(s.GoingForward), pair(s.Apology)
		}
	}
	return missingTranslations(m)
}

// publish publishes a previewed event: POST /console/publish. A text in
// one language only needs the staff member's yes; a letter needs the
// confirmation step. The event id was chosen with the form, so a second
// click sends nothing twice.
func (c *console) publish(w http.ResponseWriter, r *http.Request) {
	p := c.newPage(r, "ConsolePublish")
	ev, err := notifier.DecodeEvent([]byte(r.PostFormValue("event")))
	var ve *notifier.ValidationError
	switch {
	case errors.As(err, &ve):
		c.problem(w, p, http.StatusUnprocessableEntity, ve.Error())
		return
	case err != nil:
		c.problem(w, p, http.StatusBadRequest, err.Error())
		return
	}
	if len(eventMissing(ev)) > 0 && r.PostFormValue("confirm_one_language") != "yes" {
		c.problem(w, p, http.StatusUnprocessableEntity, p.T("ConsoleConfirmLanguageFirst"))
		return
	}
	if ev.Letter != nil && r.PostFormValue("confirm_send") != "yes" {
		c.problem(w, p, http.StatusUnprocessableEntity, p.T("ConsoleConfirmSendFirst"))
		return
	}
	// The preview fixed the update's time and its promise ("in 2 hours")
	// when it was made: one left open too long would publish a time that
	// is no longer true, or a promise already broken.
	if in := ev.Incident; in != nil {
		now := c.now()
		if in.NextUpdateAt != nil && !in.NextUpdateAt.After(now) {
			c.problem(w, p, http.StatusUnprocessableEntity, p.T("ConsolePromisePassed", "Time", p.Time(*in.NextUpdateAt)))
			return
		}
		if age := now.Sub(ev.Time); age > previewFor {
			c.problem(w, p, http.StatusUnprocessableEntity, p.T("ConsolePreviewStale", "Minutes", int(age/time.Minute)))
			return
		}
	}
	_, duplicate, err := c.deps.Operator.PublishEventAs(r.Context(), []byte(r.PostFormValue("event")), who(r))
	if err != nil {
		c.log.Error("publish from the console", "event", ev.ID, "error", err)
		c.problem(w, p, http.StatusServiceUnavailable, p.T("ConsoleUnavailable"))
		return
	}
	if duplicate {
		c.log.Info("publish from the console: already published, nothing sent", "event", ev.ID, "by", p.Account.Name)
		c.problem(w, p, http.StatusConflict, p.T("ConsoleAlreadyPublished", "Event", ev.ID))
		return
	}
	c.log.Info("published from the console", "event", ev.ID, "type", ev.Type, "by", p.Account.Name)
	http.Redirect(w, r, Prefix+"/progress/"+ev.ID, http.StatusSeeOther)
}

// previewFor is how long a preview of an incident update may be published
// from: its time and its promise were fixed when it was made.
const previewFor = 15 * time.Minute

func (c *console) problem(w http.ResponseWriter, p Page, status int, msg string) {
	p.Error = msg
	w.WriteHeader(status)
	c.render(w, "problem.html", p)
}
