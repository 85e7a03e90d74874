package web

import (
	"encoding/xml"
	"html"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/varsel/varsel/notifier"
)

// The Atom feed (RFC 4287) of incident updates, one feed per language and,
// with ?component=ID, one per component (docs/api.md, "Feeds").

type atomLink struct {
	Href     string `xml:"href,attr"`
	Rel      string `xml:"rel,attr,omitempty"`
	Type     string `xml:"type,attr,omitempty"`
	HrefLang string `xml:"hreflang,attr,omitempty"`
}

type atomText struct {
	Type string `xml:"type,attr"`
	// Lang is set when the text falls back to another language than the
	// feed's.
	Lang string `xml:"xml:lang,attr,omitempty"`
	Body string `xml:",chardata"`
}

type atomPerson struct {
	Name string `xml:"name"`
	URI  string `xml:"uri,omitempty"`
}

type atomEntry struct {
	Title   string   `xml:"title"`
	ID      string   `xml:"id"`
	Updated string   `xml:"updated"`
	Link    atomLink `xml:"link"`
	Content atomText `xml:"content"`
	updated time.Time
}

type atomFeed struct {
	XMLName   xml.Name    `xml:"http://www.w3.org/2005/Atom feed"`
	Lang      string      `xml:"xml:lang,attr"`
	Title     string      `xml:"title"`
	ID        string      `xml:"id"`
	Updated   string      `xml:"updated"`
	Author    atomPerson  `xml:"author"`
	Generator string      `xml:"generator"`
	Links     []atomLink  `xml:"link"`
	Entries   []atomEntry `xml:"entry"`
}

// feedEntries bounds a feed: the newest 50 updates.
const feedEntries = 50

// feedIDLanguage is the language whose entries keep the ids every feed
// had before there was one feed per language (PublicURL/incidents/ID#EVENT),
// so English subscribers see no entry twice. Entries in other languages
// are PublicURL/incidents/ID?lang=LANG#EVENT: the same update in Bokmål
// is another entry, with its own id.
const feedIDLanguage = "en"

// feed is an Atom feed with one entry per incident update, newest first,
// in the reader's language (?lang=, Accept-Language); ?component=ID keeps
// the incidents that name that component.
func (s *server) feed(w http.ResponseWriter, r *http.Request) {
	component := r.URL.Query().Get("component")
	if component != "" && !notifier.ValidComponent(component) {
		http.NotFound(w, r)
		return
	}
	if !s.synced(w) {
		return
	}
	all := s.deps.Status.Incidents()
	if component != "" {
		_, known := s.cfg.Site.Component(component)
		all = slices.DeleteFunc(slices.Clone(all), func(st *notifier.IncidentState) bool {
			return !slices.Contains(st.Incident.Components, component)
		})
		if !known && len(all) == 0 {
			// Neither in the site file nor named by any incident.
			http.NotFound(w, r)
			return
		}
	}
	rd := s.readerFor(r)
	base := s.cfg.PublicURL
	self := url.Values{"lang": {rd.Locale}}
	title := s.cfg.Site.SiteName(rd.Locale)
	if title == "" {
		title = rd.T("PageTitle")
	}
	author := title
	if component != "" {
		self.Set("component", component)
		title += ": " + s.cfg.Site.ComponentName(component, rd.Locale)
	}
	selfURL := base + "/feed.atom?" + self.Encode()
	f := atomFeed{Lang: rd.Locale, Title: title, ID: selfURL,
		Author:    atomPerson{Name: author, URI: base + "/"},
		Generator: "Varsel",
		Links: []atomLink{
			{Href: selfURL, Rel: "self", Type: "application/atom+xml"},
			{Href: base + "/?lang=" + url.QueryEscape(rd.Locale), Rel: "alternate", Type: "text/html", HrefLang: rd.Locale},
		}}
	if rd.Mirror() {
		// The mirror's feed (LANG/feed.atom) links its own files, relative
		// to itself (RFC 4287 §2 and RFC 3986 §5.1.3); ids stay the site's.
		f.Links[0].Href, f.Links[1].Href = "feed.atom", "index.html"
	}
	var updated time.Time
	for _, st := range all {
		page := base + "/incidents/" + url.PathEscape(st.Incident.ID)
		id := page
		if rd.Locale != feedIDLanguage {
			id += "?lang=" + url.QueryEscape(rd.Locale)
		}
		link := page + "?lang=" + url.QueryEscape(rd.Locale)
		if rd.Mirror() {
			link = "incidents/" + st.Incident.ID + ".html"
		}
		incTitle, _ := rd.loc.Text(st.Incident.Title, rd.Locale)
		for _, u := range st.Updates {
			content := feedContent(rd, u)
			label := rd.Status(u.Status)
			if u.Type == notifier.IncidentPostmortem {
				label = rd.T("LabelPostmortem")
			}
			f.Entries = append(f.Entries, atomEntry{
				Title: incTitle + " — " + label, ID: id + "#" + u.EventID,
				Updated: u.Time.UTC().Format(time.RFC3339), updated: u.Time,
				Link:    atomLink{Href: link, Rel: "alternate", Type: "text/html"},
				Content: content,
			})
			if u.Time.After(updated) {
				updated = u.Time
			}
		}
	}
	// Newest first; the same order every time, so the ETag is stable.
	slices.SortStableFunc(f.Entries, func(a, b atomEntry) int {
		if c := b.updated.Compare(a.updated); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	if len(f.Entries) > feedEntries {
		f.Entries = f.Entries[:feedEntries]
	}
	if updated.IsZero() {
		updated = time.Unix(0, 0)
	}
	f.Updated = updated.UTC().Format(time.RFC3339)
	w.Header().Set("Content-Type", "application/atom+xml; charset=utf-8")
	_, _ = w.Write([]byte(xml.Header))
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(f); err != nil {
		s.logger.Error("write feed", "error", err)
	}
}

// feedContent is an entry's text: the update as its email says it, in
// paragraphs: the holding line, the message, the data statement the
// update makes and the next update it promises (a feed reader reads each
// entry alone). A message in another language than the feed's is marked:
// the entry's xml:lang when it is all there is, else an HTML entry whose
// message paragraph has its own lang, as the fixed phrases are the
// feed's.
func feedContent(rd reader, u notifier.Update) atomText {
	msg, lang := rd.loc.Text(u.Message, rd.Locale)
	if lang != "" && notifier.BaseLanguage(lang) == rd.Locale {
		lang = ""
	}
	var before, after []string
	if u.HoldingSince != nil {
		before = append(before, rd.T("HoldingUpdate", "Time", rd.Time(*u.HoldingSince)))
	}
	if data := rd.Data(u.Data); len(data) > 0 {
		after = append(after, rd.T("LabelData")+": "+strings.Join(data, " "))
	}
	if u.NextUpdateAt != nil && !u.Status.Closed() {
		after = append(after, rd.T("NextUpdate", "Time", rd.Time(*u.NextUpdateAt)))
	}
	if lang == "" || len(before)+len(after) == 0 {
		var paras []string
		paras = append(paras, before...)
		if msg != "" {
			paras = append(paras, msg)
		}
		paras = append(paras, after...)
		return atomText{Type: "text", Lang: lang, Body: strings.Join(paras, "\n\n")}
	}
	var b strings.Builder
	para := func(lang, text string) {
		b.WriteString("<p")
		if lang != "" {
			b.WriteString(` lang="` + html.EscapeString(lang) + `"`)
		}
		b.WriteString(">")
		for i, line := range strings.Split(text, "\n") {
			if i > 0 {
				b.WriteString("<br>")
			}
			b.WriteString(html.EscapeString(line))
		}
		b.WriteString("</p>")
	}
	for _, t := range before {
		para("", t)
	}
	for p := range strings.SplitSeq(msg, "\n\n") {
		if p = strings.TrimSpace(p); p != "" {
			para(lang, p)
		}
	}
	for _, t := range after {
		para("", t)
	}
	return atomText{Type: "html", Body: b.String()}
}
