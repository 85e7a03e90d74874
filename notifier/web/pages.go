package web

import (
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/varsel/varsel/notifier"
)

// pageFS holds the page templates and, in pages/static, the files served
// under /static/ (the style sheet: the pages' policy allows no inline style).
//
//go:embed pages/*.html pages/static/*
var pageFS embed.FS

// staticFiles serves pages/static under /static/, files only (no listing
// of the directory).
func staticFiles() http.Handler {
	sub, err := fs.Sub(pageFS, "pages/static")
	if err != nil {
		panic(err) // the embed pattern above makes it
	}
	files := http.StripPrefix("/static", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})
}

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	// pair hands a card both the page (for language) and one incident.
	"pair": func(r any, i *incidentView) cardView { return cardView{R: r.(statusView), I: i} },
	"rank": func(i notifier.Impact) int { return i.Rank() },
}).ParseFS(pageFS, "pages/*.html"))

// reader is who a page is for: language and time zone.
type reader struct {
	Locale, Zone string
	loc          Localizer
	// StaleSince is when the page was last known current, formatted for
	// the reader, while Varsel cannot reach its store; "" when live.
	StaleSince string
	links      links
	site       *notifier.Site
}

// T is a fixed phrase in the reader's language, with key/value pairs.
func (rd reader) T(id string, kv ...any) string {
	if len(kv) == 0 {
		return rd.loc.T(rd.Locale, id, nil)
	}
	data := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		data[kv[i].(string)] = kv[i+1]
	}
	return rd.loc.T(rd.Locale, id, data)
}

// Time formats t for the reader: "17.09.2019 kl. 10:00" or "17 Sep 2019, 10:00 CEST".
func (rd reader) Time(t time.Time) string { return rd.loc.FormatTime(t, rd.Locale, rd.Zone) }

// Date is the day of t in the reader's zone: "17.09.2019" or "17 Sep 2019".
func (rd reader) Date(t time.Time) string {
	loc, err := time.LoadLocation(rd.Zone)
	if err != nil {
		loc = time.UTC
	}
	return t.In(loc).Format(rd.T("FormatDate"))
}

// Duration says how long something lasted, to the minute: "2 days 14
// hours", "45 minutter".
func (rd reader) Duration(d time.Duration) string {
	d = d.Round(time.Minute)
	days, hours, minutes := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour), int(d%time.Hour/time.Minute)
	var parts []string
	if days > 0 {
		parts = append(parts, rd.T("DurationDays", "Count", days))
	}
	if hours > 0 {
		parts = append(parts, rd.T("DurationHours", "Count", hours))
	}
	// Minutes matter for short incidents only.
	if minutes > 0 && days == 0 {
		parts = append(parts, rd.T("DurationMinutes", "Count", minutes))
	}
	if len(parts) == 0 {
		return rd.T("DurationMinutes", "Count", 0)
	}
	return strings.Join(parts, " ")
}

// Text picks the reader's language from free text, marking the language
// when it falls back to another.
func (rd reader) Text(l notifier.Localized) template.HTML {
	text, lang := rd.loc.Text(l, rd.Locale)
	return rd.wrap(template.HTMLEscapeString(text), lang, "span")
}

// Paragraphs is Text for longer free text: blank lines separate paragraphs
// and single line breaks (the seed's bullet lists) are kept.
func (rd reader) Paragraphs(l notifier.Localized) template.HTML {
	text, lang := rd.loc.Text(l, rd.Locale)
	var b strings.Builder
	for _, para := range strings.Split(strings.TrimSpace(strings.ReplaceAll(text, "\r\n", "\n")), "\n\n") {
		if para = strings.TrimSpace(para); para == "" {
			continue
		}
		lines := strings.Split(para, "\n")
		for i, line := range lines {
			lines[i] = template.HTMLEscapeString(strings.TrimSpace(line))
		}
		b.WriteString("<p>" + strings.Join(lines, "<br>\n") + "</p>\n")
	}
	return rd.wrap(b.String(), lang, "div")
}

// wrap marks escaped text with its language when it is not the reader's.
func (rd reader) wrap(escaped, lang, tag string) template.HTML {
	if lang == "" || notifier.BaseLanguage(lang) == rd.Locale {
		return template.HTML(escaped)
	}
	return template.HTML("<" + tag + ` lang="` + template.HTMLEscapeString(lang) + `">` + escaped + "</" + tag + ">")
}

// Status and Impact name an incident's status and impact; ImpactWas names
// an impact in the past tense ("Service was down").
func (rd reader) Status(s notifier.Status) string    { return rd.T("Status" + camel(string(s))) }
func (rd reader) Impact(i notifier.Impact) string    { return rd.T("Impact" + camel(string(i))) }
func (rd reader) ImpactWas(i notifier.Impact) string { return rd.T("ImpactWas" + camel(string(i))) }

// Data returns the sentences of a data statement, in the tense its restore
// state needs; none for nil.
func (rd reader) Data(d *notifier.DataSafety) []string {
	return rd.loc.DataStatement(d, rd.Locale, rd.Zone)
}

// Window is a maintenance window: "8 Oct 2019, 23:00 CEST to 9 Oct 2019,
// 02:00 CEST", or its start alone.
func (rd reader) Window(in notifier.Incident) string {
	if in.ScheduledStart == nil {
		return ""
	}
	if in.ScheduledEnd == nil {
		return rd.Time(*in.ScheduledStart)
	}
	return rd.T("MaintenanceWindow", "Start", rd.Time(*in.ScheduledStart), "End", rd.Time(*in.ScheduledEnd))
}

func camel(s string) string {
	parts := strings.Split(s, "_")
	for i, p := range parts {
		if p != "" {
			parts[i] = strings.ToUpper(p[:1]) + p[1:]
		}
	}
	return strings.Join(parts, "")
}

// readerFor chooses the page language from ?lang=, then Accept-Language,
// then the default; every Norwegian variant reads Bokmål.
func (s *server) readerFor(r *http.Request) reader {
	rd := reader{Locale: notifier.RequestLanguage(r.URL.Query().Get("lang"), r.Header.Get("Accept-Language"), s.cfg.DefaultLocale),
		Zone: s.cfg.DefaultTimezone, loc: s.deps.Localizer, links: s.linksFor(r), site: s.cfg.Site}
	if tz := r.URL.Query().Get("tz"); tz != "" {
		if _, err := time.LoadLocation(tz); err == nil {
			rd.Zone = tz
		} else {
			rd.links.zone = "" // not carried on
		}
	}
	if s.deps.Status != nil {
		if f := s.deps.Status.Freshness(); f.Synced && !f.Live {
			rd.StaleSince = rd.Time(f.AsOf)
		}
	}
	return rd
}

type cardView struct {
	R statusView
	I *incidentView
}

type incidentView struct {
	*notifier.IncidentState
	Overdue bool
	// Latest is the newest update, whose text the front page shows for an
	// open incident.
	Latest *notifier.Update
}

func newIncidentView(st *notifier.IncidentState, now time.Time) *incidentView {
	iv := &incidentView{IncidentState: st, Overdue: st.Overdue(now)}
	if n := len(st.Updates); n > 0 {
		iv.Latest = &st.Updates[n-1]
	}
	return iv
}

// updateView is one entry of an incident's timeline on its page.
type updateView struct {
	notifier.Update
	// Data holds the sentences of the data statement that changed with
	// this update (the risk, the restore or both): the page shows each
	// where it changed, not under every later update.
	Data []string
}

// letterLink is a letter about an incident, linked from its page.
type letterLink struct {
	ID      string
	Subject notifier.Localized
}

// synced answers 503 while the read model has never read the store (at
// start-up): an empty page would say all is well, which is not known.
func (s *server) synced(w http.ResponseWriter) bool {
	if !s.deps.Status.Freshness().Synced {
		http.Error(w, "status unavailable, try again shortly", http.StatusServiceUnavailable)
		return false
	}
	return true
}

func (s *server) incidentPage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !notifier.ValidID(id) {
		// Names no incident, and must not reach the store, where it is
		// not even a valid key ("a*", "a>", "a b").
		s.notFound(w, r)
		return
	}
	if !s.synced(w) {
		return
	}
	st, ok := s.deps.Status.Incident(id)
	if !ok {
		s.notFound(w, r)
		return
	}
	rd := s.readerFor(r)
	// Newest update first, as on the seed page; the data statement only
	// where it changed, read oldest first.
	updates := make([]updateView, len(st.Updates))
	var said []string // the sentences of the last data statement
	for i, u := range st.Updates {
		uv := updateView{Update: u}
		if u.Data != nil {
			now := rd.Data(u.Data)
			for _, sentence := range now {
				if !slices.Contains(said, sentence) {
					uv.Data = append(uv.Data, sentence)
				}
			}
			said = now
		}
		updates[len(updates)-1-i] = uv
	}
	var letters []letterLink
	for _, id := range st.Letters {
		ev, ok, err := s.deps.Status.Letter(r.Context(), id)
		if err != nil {
			s.logger.Warn("letter of an incident not readable", "incident", st.Incident.ID, "letter", id, "error", err)
		}
		if ok {
			letters = append(letters, letterLink{ID: id, Subject: ev.Letter.Subject})
		}
	}
	s.render(w, "incident.html", struct {
		reader
		*notifier.IncidentState
		Updates     []updateView
		CurrentData *notifier.DataSafety
		Letters     []letterLink
		Overdue     bool
		PublicURL   string
	}{rd, st, updates, st.LatestData(time.Time{}), letters, st.Overdue(time.Now()), s.cfg.PublicURL})
}

// letterPage shows a broadcast letter in the reader's language, so the
// status page holds what customers were sent.
func (s *server) letterPage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !notifier.ValidID(id) {
		s.notFound(w, r)
		return
	}
	ev, ok, err := s.deps.Status.Letter(r.Context(), id)
	if err != nil {
		s.logger.Warn("read letter", "letter", id, "error", err)
		http.Error(w, "letter unavailable, try again shortly", http.StatusServiceUnavailable)
		return
	}
	if !ok {
		s.notFound(w, r)
		return
	}
	s.render(w, "letter.html", struct {
		reader
		*notifier.Letter
		SentAt    time.Time
		PublicURL string
	}{s.readerFor(r), ev.Letter, ev.Time, s.cfg.PublicURL})
}

func (s *server) render(w http.ResponseWriter, name string, v any) {
	s.renderStatus(w, http.StatusOK, name, v)
}

// renderStatus renders a page with an HTTP status other than 200.
func (s *server) renderStatus(w http.ResponseWriter, code int, name string, v any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if code != http.StatusOK {
		w.WriteHeader(code)
	}
	if err := pages.ExecuteTemplate(w, name, v); err != nil {
		s.logger.Error("render page", "page", name, "error", err)
	}
}

// statusJSON is the public machine-readable status.
func (s *server) statusJSON(w http.ResponseWriter, r *http.Request) {
	fresh := s.deps.Status.Freshness()
	if !fresh.Synced {
		writeError(w, http.StatusServiceUnavailable, "status unavailable")
		return
	}
	all := s.deps.Status.Incidents()
	type item struct {
		ID     string             `json:"id"`
		Kind   string             `json:"kind"`
		Title  notifier.Localized `json:"title"`
		Status notifier.Status    `json:"status"`
		// Impact is the current impact: "none" once resolved or completed.
		Impact notifier.Impact `json:"impact"`
		// PeakImpact is the worst impact while it was open.
		PeakImpact     notifier.Impact `json:"peak_impact,omitempty"`
		Components     []string        `json:"components"`
		StartedAt      time.Time       `json:"started_at"`
		UpdatedAt      time.Time       `json:"updated_at"`
		ResolvedAt     *time.Time      `json:"resolved_at,omitempty"`
		ScheduledStart *time.Time      `json:"scheduled_start,omitempty"`
		ScheduledEnd   *time.Time      `json:"scheduled_end,omitempty"`
		NextUpdateAt   *time.Time      `json:"next_update_at,omitempty"`
		Overdue        bool            `json:"next_update_overdue"`
		URL            string          `json:"url"`
	}
	out := struct {
		Indicator string `json:"indicator"` // none, minor, major, critical: the worst open impact
		// AsOf is when this status was last known current; Stale is true
		// while Varsel cannot reach its store and serves what it last knew.
		AsOf   time.Time `json:"as_of"`
		Stale  bool      `json:"stale"`
		Open   []item    `json:"open"`
		Recent []item    `json:"recent"`
	}{Indicator: "none", AsOf: fresh.AsOf.UTC().Truncate(time.Second), Stale: !fresh.Live, Open: []item{}, Recent: []item{}}
	now := time.Now()
	for _, st := range all {
		in := st.Incident
		it := item{ID: in.ID, Kind: st.Kind, Title: in.Title, Status: in.Status, Impact: in.Impact, PeakImpact: st.PeakImpact,
			Components: in.Components, StartedAt: in.StartedAt, UpdatedAt: st.LastEventTime, ResolvedAt: st.ResolvedAt,
			ScheduledStart: in.ScheduledStart, ScheduledEnd: in.ScheduledEnd, NextUpdateAt: in.NextUpdateAt,
			Overdue: st.Overdue(now), URL: s.cfg.PublicURL + "/incidents/" + in.ID}
		if in.Status.Closed() {
			// A state stored before closed incidents were given no impact.
			it.Impact = notifier.ImpactNone
		}
		if st.ResolvedAt == nil {
			out.Open = append(out.Open, it)
			// Maintenance that has not started disrupts nothing yet.
			if in.Status != notifier.StatusScheduled && in.Impact.Rank() > notifier.Impact(out.Indicator).Rank() {
				out.Indicator = string(in.Impact)
			}
		} else if len(out.Recent) < 20 {
			out.Recent = append(out.Recent, it)
		}
	}
	writeJSON(w, http.StatusOK, out)
}
