package web

import (
	"encoding/xml"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mmcdole/gofeed"
	"github.com/mmcdole/gofeed/atom"

	"github.com/varsel/varsel/notifier"
)

// newSiteFixture is newFixture with a site file's name and catalogue.
func newSiteFixture(t *testing.T, site *notifier.Site) *fixture {
	t.Helper()
	f, _ := buildFixture(t, fixtureOpts{site: site, config: func(c *Config) { c.AdminToken = "" }})
	return f
}

var testSite = &notifier.Site{
	Name: notifier.Localized{"en": "Gnist status", "nb": "Gnist driftsstatus"},
	Components: []notifier.Component{
		{ID: "web", Name: notifier.Localized{"en": "Web app", "nb": "Nettappen"}},
		{ID: "api", Name: notifier.Localized{"en": "API", "nb": "API-et"}},
		{ID: "sms", Name: notifier.Localized{"en": "SMS", "nb": "SMS"}},
	},
}

// apiInc is a second incident, on the API only; its message is English
// only, so the Norwegian feed marks its language.
const apiInc = `{"id":"a1","type":"incident.opened","time":"2019-09-18T09:00:00Z","incident":{"id":"api-slow","title":{"en":"Slow API","nb":"Tregt API"},"status":"investigating","impact":"minor","components":["api"],"started_at":"2019-09-18T08:45:00Z","message":{"en":"Looking into it."}}}`

// fetchFeed GETs a feed and parses it with gofeed, both its universal
// parser and its Atom one.
func fetchFeed(t *testing.T, f *fixture, path string, header ...string) (*http.Response, string, *gofeed.Feed, *atom.Feed) {
	t.Helper()
	res, body := f.get(t, http.MethodGet, path, header...)
	if res.StatusCode != 200 {
		t.Fatalf("%s: %d %s", path, res.StatusCode, body)
	}
	uni, err := gofeed.NewParser().ParseString(body)
	if err != nil {
		t.Fatalf("%s: gofeed: %v\n%s", path, err, body)
	}
	if uni.FeedType != "atom" {
		t.Errorf("%s: gofeed reads a %q feed", path, uni.FeedType)
	}
	af, err := (&atom.Parser{}).Parse(strings.NewReader(body))
	if err != nil {
		t.Fatalf("%s: gofeed atom: %v", path, err)
	}
	checkRFC4287(t, path, body)
	return res, body, uni, af
}

func selfLink(af *atom.Feed) string {
	for _, l := range af.Links {
		if l.Rel == "self" {
			return l.Href
		}
	}
	return ""
}

func entryIDs(af *atom.Feed) []string {
	var ids []string
	for _, e := range af.Entries {
		ids = append(ids, e.ID)
	}
	return ids
}

func TestFeedVariants(t *testing.T) {
	f := newSiteFixture(t, testSite)
	f.publish(t, openedInc)
	f.publish(t, resolvedInc)
	f.publish(t, apiInc)
	const base = "http://status.example.com"
	for _, tc := range []struct {
		path, acceptLanguage string
		lang, title, author  string
		id                   string
		entries              int
	}{
		{"/feed.atom", "", "en", "Gnist status", "Gnist status", base + "/feed.atom?lang=en", 3},
		{"/feed.atom?lang=en", "nb", "en", "Gnist status", "Gnist status", base + "/feed.atom?lang=en", 3},
		{"/feed.atom?lang=nb", "", "nb", "Gnist driftsstatus", "Gnist driftsstatus", base + "/feed.atom?lang=nb", 3},
		{"/feed.atom", "nb-NO,nb;q=0.9", "nb", "Gnist driftsstatus", "Gnist driftsstatus", base + "/feed.atom?lang=nb", 3},
		{"/feed.atom?component=web", "", "en", "Gnist status: Web app", "Gnist status", base + "/feed.atom?component=web&lang=en", 2},
		{"/feed.atom?component=web&lang=nb", "", "nb", "Gnist driftsstatus: Nettappen", "Gnist driftsstatus", base + "/feed.atom?component=web&lang=nb", 2},
		{"/feed.atom?component=api&lang=nb", "", "nb", "Gnist driftsstatus: API-et", "Gnist driftsstatus", base + "/feed.atom?component=api&lang=nb", 1},
		// In the catalogue, named by no incident yet: an empty feed.
		{"/feed.atom?component=sms", "", "en", "Gnist status: SMS", "Gnist status", base + "/feed.atom?component=sms&lang=en", 0},
	} {
		var hdr []string
		if tc.acceptLanguage != "" {
			hdr = []string{"Accept-Language", tc.acceptLanguage}
		}
		_, _, uni, af := fetchFeed(t, f, tc.path, hdr...)
		if af.Title != tc.title || af.ID != tc.id || selfLink(af) != tc.id || uni.FeedLink != tc.id {
			t.Errorf("%s: title %q id %q self %q (gofeed %q), want %q and %q", tc.path, af.Title, af.ID, selfLink(af), uni.FeedLink, tc.title, tc.id)
		}
		if uni.Language != tc.lang {
			t.Errorf("%s: language %q, want %q", tc.path, uni.Language, tc.lang)
		}
		if len(af.Authors) != 1 || af.Authors[0].Name != tc.author || len(uni.Authors) != 1 || uni.Authors[0].Name != tc.author {
			t.Errorf("%s: authors %v, want %q", tc.path, af.Authors, tc.author)
		}
		if len(af.Entries) != tc.entries {
			t.Errorf("%s: %d entries, want %d: %v", tc.path, len(af.Entries), tc.entries, entryIDs(af))
		}
		for _, e := range af.Entries {
			// Entry links open the incident in the feed's language.
			if len(e.Links) != 1 || !strings.HasSuffix(e.Links[0].Href, "?lang="+tc.lang) {
				t.Errorf("%s: entry %s links %v", tc.path, e.ID, e.Links)
			}
			if strings.HasPrefix(tc.path, "/feed.atom?component=web") && !strings.Contains(e.ID, "/incidents/inc") {
				t.Errorf("%s: entry %s is not about the web app", tc.path, e.ID)
			}
		}
	}

	// The same update is another entry in each language.
	_, _, _, en := fetchFeed(t, f, "/feed.atom?lang=en")
	_, nbBody, _, nb := fetchFeed(t, f, "/feed.atom?lang=nb")
	enIDs := map[string]bool{}
	for _, id := range entryIDs(en) {
		enIDs[id] = true
	}
	for _, id := range entryIDs(nb) {
		if enIDs[id] {
			t.Errorf("entry id %s is in both the English and the Norwegian feed", id)
		}
	}
	// English keeps the ids it always had, so its subscribers see nothing twice.
	if !enIDs[base+"/incidents/inc#e1"] || !enIDs[base+"/incidents/api-slow#a1"] {
		t.Errorf("English entry ids changed: %v", entryIDs(en))
	}
	if !strings.Contains(nbBody, `<content type="text" xml:lang="en">Looking into it.</content>`) {
		t.Errorf("the Norwegian feed does not mark English text:\n%s", nbBody)
	}
	// A component feed's entry is the same entry as in the whole feed.
	_, _, _, web := fetchFeed(t, f, "/feed.atom?component=web")
	for _, id := range entryIDs(web) {
		if !enIDs[id] {
			t.Errorf("component feed entry %s is not in the whole feed", id)
		}
	}

	for _, path := range []string{"/feed.atom?component=none-such", "/feed.atom?component=a%2Ab", "/feed.atom?component=" + strings.Repeat("x", 200)} {
		if res, _ := f.get(t, http.MethodGet, path); res.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, res.StatusCode)
		}
	}
}

func TestFeedWithoutSiteFile(t *testing.T) {
	f := newFixture(t)
	f.publish(t, openedInc)
	_, _, uni, af := fetchFeed(t, f, "/feed.atom?lang=nb")
	if af.Title != "Driftsstatus" || len(uni.Authors) != 1 || uni.Authors[0].Name != "Driftsstatus" {
		t.Errorf("without a site file: title %q authors %v, want the page title phrase", af.Title, uni.Authors)
	}
	// Without a catalogue, a component is known once an incident names it.
	_, _, _, web := fetchFeed(t, f, "/feed.atom?component=web")
	if af.Title == web.Title || len(web.Entries) != 1 || web.Title != "Service status: web" {
		t.Errorf("component feed without a site file: title %q, %d entries", web.Title, len(web.Entries))
	}
	if res, _ := f.get(t, http.MethodGet, "/feed.atom?component=api"); res.StatusCode != http.StatusNotFound {
		t.Errorf("a component no incident names: %d, want 404", res.StatusCode)
	}
	// An empty store still makes a valid feed.
	empty := newFixture(t)
	_, _, _, af = fetchFeed(t, empty, "/feed.atom")
	if len(af.Entries) != 0 {
		t.Errorf("empty store: %d entries", len(af.Entries))
	}
}

// checkRFC4287 checks by hand what RFC 4287 requires of a feed, section
// 4.1.1 and 4.1.2: the Atom namespace; exactly one id (an absolute IRI),
// title and updated (a date-time); an author on the feed (or on every
// entry); a rel="self" link; and on every entry exactly one id, title and
// updated, ids unique in the feed.
func checkRFC4287(t *testing.T, path, body string) {
	t.Helper()
	type link struct {
		Rel  string `xml:"rel,attr"`
		Href string `xml:"href,attr"`
	}
	type person struct {
		Name []string `xml:"name"`
	}
	type entry struct {
		ID      []string `xml:"id"`
		Title   []string `xml:"title"`
		Updated []string `xml:"updated"`
		Authors []person `xml:"author"`
		Links   []link   `xml:"link"`
	}
	var feed struct {
		XMLName xml.Name
		Lang    string   `xml:"http://www.w3.org/XML/1998/namespace lang,attr"`
		ID      []string `xml:"id"`
		Title   []string `xml:"title"`
		Updated []string `xml:"updated"`
		Authors []person `xml:"author"`
		Links   []link   `xml:"link"`
		Entries []entry  `xml:"entry"`
	}
	if err := xml.Unmarshal([]byte(body), &feed); err != nil {
		t.Fatalf("%s: not XML: %v", path, err)
	}
	bad := func(format string, args ...any) { t.Errorf(path+": RFC 4287: "+format, args...) }
	if feed.XMLName.Space != "http://www.w3.org/2005/Atom" || feed.XMLName.Local != "feed" {
		bad("root %v is not atom:feed", feed.XMLName)
	}
	if feed.Lang == "" {
		bad("no xml:lang")
	}
	one := func(what string, v []string) string {
		if len(v) != 1 || strings.TrimSpace(v[0]) == "" {
			bad("%s: %d of them (%q), want exactly one", what, len(v), v)
			return ""
		}
		return v[0]
	}
	iri := func(what, s string) {
		if u, err := url.Parse(s); err != nil || !u.IsAbs() {
			bad("%s %q is not an absolute IRI", what, s)
		}
	}
	date := func(what, s string) {
		if _, err := time.Parse(time.RFC3339, s); err != nil {
			bad("%s %q is not an RFC 3339 date-time", what, s)
		}
	}
	iri("feed id", one("feed id", feed.ID))
	one("feed title", feed.Title)
	date("feed updated", one("feed updated", feed.Updated))
	feedAuthor := len(feed.Authors) > 0
	for _, a := range feed.Authors {
		one("feed author name", a.Name)
	}
	self := 0
	for _, l := range feed.Links {
		if l.Rel == "self" {
			self++
			iri("self link", l.Href)
		}
	}
	if self != 1 {
		bad("%d rel=self links, want 1", self)
	}
	seen := map[string]bool{}
	for i, e := range feed.Entries {
		id := one("entry id", e.ID)
		iri("entry id", id)
		if seen[id] {
			bad("entry id %s twice", id)
		}
		seen[id] = true
		one("entry title", e.Title)
		date("entry updated", one("entry updated", e.Updated))
		if !feedAuthor && len(e.Authors) == 0 {
			bad("entry %d has no author and neither has the feed", i)
		}
		if len(e.Links) == 0 {
			bad("entry %d has no link and its content is not elsewhere", i)
		}
	}
}

// TestFeedEntriesSayWhatTheEmailSays: a feed entry carries its update's
// data statement and promised next update, as the email of it does (the
// seeds' entries had only the free text), in the feed's language; a
// message in another language keeps its own lang beside the fixed phrases.
func TestFeedEntriesSayWhatTheEmailSays(t *testing.T) {
	f := newFixture(t)
	f.replay(t, "styreweb")
	_, _, _, nb := fetchFeed(t, f, "/feed.atom?lang=nb")
	content := map[string]string{}
	for _, e := range nb.Entries {
		content[e.ID[strings.LastIndex(e.ID, "#")+1:]] = e.Content.Value
	}
	for id, want := range map[string][]string{
		"styreweb-2019-09-17-1000": {"Neste oppdatering kommer senest 17.09.2019 kl. 12:00."},
		"styreweb-2019-09-18-0740": {"Dataene dine: Vi har vurdert risikoen for dataene dine som lav.", "Vi planlegger å gjenopprette dataene fra sikkerhetskopien fra 15.09.2019 kl. 03:00"},
		"styreweb-2019-09-18-2200": {"Vi gjenoppretter nå dataene fra sikkerhetskopien fra 15.09.2019 kl. 03:00"},
		"styreweb-2019-09-19-0400": {"Dataene er gjenopprettet fra sikkerhetskopien fra 15.09.2019 kl. 03:00"},
		"styreweb-2019-09-17-1600": {"Statusen fra 17.09.2019 kl. 14:00 gjelder fortsatt.", "Neste oppdatering kommer senest 17.09.2019 kl. 18:00."},
	} {
		got, ok := content[id]
		if !ok {
			t.Errorf("no entry %s in the Norwegian feed", id)
			continue
		}
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("entry %s lacks %q:\n%s", id, w, got)
			}
		}
	}
	if strings.Contains(content["styreweb-2019-09-19-0400"], "Neste oppdatering") {
		t.Errorf("the resolution promises an update:\n%s", content["styreweb-2019-09-19-0400"])
	}

	// English text in the Norwegian feed beside Norwegian phrases.
	next := time.Date(2019, 9, 18, 12, 0, 0, 0, time.UTC).Format(time.RFC3339)
	f.publish(t, `{"id":"a2","type":"incident.updated","time":"2019-09-18T10:00:00Z","incident":{"id":"api-slow","title":{"en":"Slow API","nb":"Tregt API"},"status":"identified","impact":"minor","components":["api"],"started_at":"2019-09-18T08:45:00Z","message":{"en":"Found it.\n\nFixing it."},"next_update_at":"`+next+`"}}`)
	_, body, _, nb := fetchFeed(t, f, "/feed.atom?lang=nb")
	for _, e := range nb.Entries {
		if strings.HasSuffix(e.ID, "#a2") {
			want := `<p lang="en">Found it.</p><p lang="en">Fixing it.</p><p>Neste oppdatering kommer senest 18.09.2019 kl. 14:00.</p>`
			if e.Content.Type != "html" || e.Content.Value != want {
				t.Errorf("entry a2: %s %q, want html %q\n%s", e.Content.Type, e.Content.Value, want, body)
			}
			return
		}
	}
	t.Errorf("no entry a2:\n%s", body)
}
