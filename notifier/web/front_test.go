package web

import (
	"fmt"
	"html"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/varsel/varsel/examples"
	"github.com/varsel/varsel/notifier"
	"github.com/varsel/varsel/notifier/render"
)

// recentEvent is an event of incident id at t, in the JSON producers send.
func recentEvent(evID, typ, id, status, impact string, started, at time.Time, extra string) string {
	return fmt.Sprintf(`{"id":%q,"type":%q,"time":%q,"incident":{"id":%q,"title":{"en":"Login problems in Gnist","nb":"Problemer med innlogging i Gnist"},"status":%q,"impact":%q,"components":["gnist"],"started_at":%q,"message":{"en":"We are restoring the service.","nb":"Vi gjenoppretter tjenesten."}%s}}`,
		evID, typ, at.Format(time.RFC3339), id, status, impact, started.Format(time.RFC3339), extra)
}

// TestFrontPageLikeTheBest: the site's name, every component with its
// state now, an open incident with its latest update and the promised
// next update, and the history by day with start and duration, in both
// languages; the language switch and ?tz= keep the reader on their page.
func TestFrontPageLikeTheBest(t *testing.T) {
	site, err := examples.Site()
	if err != nil {
		t.Fatal(err)
	}
	f := newFixtureWith(t, func(c *Config) { c.Site = site })
	now := time.Now().UTC().Truncate(time.Minute)
	// Closed two days ago after 2 h 30 min; open since an hour ago.
	closedStart := now.Add(-50 * time.Hour)
	f.publish(t, recentEvent("old-1", "incident.opened", "old", "investigating", "minor", closedStart, closedStart, ""))
	f.publish(t, recentEvent("old-2", "incident.resolved", "old", "resolved", "none", closedStart, closedStart.Add(150*time.Minute), ""))
	openStart := now.Add(-time.Hour)
	next := now.Add(time.Hour)
	f.publish(t, recentEvent("new-1", "incident.opened", "new", "identified", "major", openStart, openStart,
		fmt.Sprintf(`,"next_update_at":%q`, next.Format(time.RFC3339))))

	for _, c := range []struct {
		lang string
		want []string
	}{
		{"nb", []string{"Driftsmeldinger", "Tjenester", "Styreportal", "Gnist medlemsapp Store forstyrrelser", "StyreWeb I drift",
			"Life Events Diary I drift", "Vi gjenoppretter tjenesten.", "Neste oppdatering", "De siste 90 dagene", "varte i 2 timer 30 minutter", "Abonner"}},
		{"en", []string{"Service status", "Services", "Board portal", "Gnist member app Major disruption", "StyreWeb Operational",
			"We are restoring the service.", "Next update", "The last 90 days", "lasted 2 hours 30 minutes", "Subscribe"}},
	} {
		_, page := f.do(t, http.MethodGet, "/?lang="+c.lang, "", nil)
		seen := text(page)
		for _, w := range c.want {
			if !strings.Contains(seen, w) {
				t.Errorf("%s front page lacks %q:\n%s", c.lang, w, seen)
			}
		}
		if strings.Contains(seen, " gnist ") {
			t.Errorf("%s front page shows the raw id gnist:\n%s", c.lang, seen)
		}
	}

	// The switch keeps the page and the zone.
	_, page := f.do(t, http.MethodGet, "/incidents/new?lang=en&tz=America/New_York", "", nil)
	for _, want := range []string{
		`href="http://status.example.com/incidents/new?lang=nb&amp;tz=America%2FNew_York"`,
		`href="http://status.example.com/?lang=en&amp;tz=America%2FNew_York"`,
		"Gnist member app",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("incident page lacks %s", want)
		}
	}
	if !strings.Contains(text(page), "EDT") && !strings.Contains(text(page), "EST") {
		t.Errorf("incident page with ?tz=America/New_York shows no New York times:\n%s", text(page))
	}
}

// TestHistoryDuringTheOnlyIncident: while the one incident of the last 90
// days is open, the history under it says there is no other, never that
// there is none (the page showed "No incidents in the last 90 days" under
// the open one).
func TestHistoryDuringTheOnlyIncident(t *testing.T) {
	f := newFixture(t)
	now := time.Now().UTC().Truncate(time.Minute)
	cases := []struct{ lang, none, other string }{
		{"nb", "Ingen hendelser de siste 90 dagene.", "Ingen andre hendelser de siste 90 dagene."},
		{"en", "No incidents in the last 90 days.", "No other incidents in the last 90 days."},
	}
	for _, c := range cases {
		if _, page := f.do(t, http.MethodGet, "/?lang="+c.lang, "", nil); !strings.Contains(text(page), c.none) {
			t.Fatalf("%s front page with no incident lacks %q:\n%s", c.lang, c.none, text(page))
		}
	}
	f.publish(t, recentEvent("only-1", "incident.opened", "only", "investigating", "major", now.Add(-time.Hour), now.Add(-time.Hour), ""))
	for _, c := range cases {
		_, page := f.do(t, http.MethodGet, "/?lang="+c.lang, "", nil)
		if seen := text(page); !strings.Contains(seen, c.other) || strings.Contains(seen, c.none) {
			t.Errorf("%s front page during the only incident: want %q, never %q:\n%s", c.lang, c.other, c.none, seen)
		}
	}
}

// TestNotFoundIsAPageInTheReadersLanguage: an unknown incident and an
// unknown path answer 404 with a page, styled, in the reader's language.
func TestNotFoundIsAPageInTheReadersLanguage(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct{ path, want string }{
		{"/incidents/nope?lang=nb", "Fant ikke siden"},
		{"/no/such/page?lang=en", "Page not found"},
		{"/letters/nope?lang=nb", "Fant ikke siden"},
	} {
		res, page := f.do(t, http.MethodGet, c.path, "", nil)
		if res.StatusCode != http.StatusNotFound || !strings.Contains(page, c.want) || !strings.Contains(page, "status.css") {
			t.Errorf("GET %s: %d, want 404 with %q and the style sheet:\n%s", c.path, res.StatusCode, c.want, text(page))
		}
		if strings.Contains(page, "404 page not found") {
			t.Errorf("GET %s: Go's plain 404", c.path)
		}
	}
}

// TestMirrorStandsAlone: the mirror of the seeds' incidents holds every
// page in both languages, and every relative link of every page resolves
// to a file of the mirror.
func TestMirrorStandsAlone(t *testing.T) {
	f := newFixture(t)
	f.replay(t, "styreweb")
	f.replay(t, "led")
	deps, _ := fixtureDeps(t, f.conn)
	deps.Localizer = testLocalizer(t)
	m := NewMirror(Config{PublicURL: "http://status.example.com", DefaultLocale: "nb", DefaultTimezone: "Europe/Oslo"}, deps, quietTestLogger())
	dir := t.TempDir()
	n, err := m.Write(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"index.html", "404.html", "nb/index.html", "en/index.html", "nb/incidents/styreweb-login-2019-09.html",
		"en/incidents/led-outage-2019-03.html", "nb/feed.atom", "api/v1/status.json", "static/status.css"} {
		if _, err := os.Stat(filepath.Join(dir, want)); err != nil {
			t.Errorf("mirror lacks %s", want)
		}
	}
	links := checkMirrorLinks(t, dir)
	if links < 20 {
		t.Errorf("only %d links checked in %d files", links, n)
	}
	nb, _ := os.ReadFile(filepath.Join(dir, "nb", "index.html"))
	if !strings.Contains(string(nb), `lang="nb"`) || !strings.Contains(string(nb), "Driftsstatus") {
		t.Error("nb/index.html is not the Norwegian page")
	}
	root, _ := os.ReadFile(filepath.Join(dir, "index.html"))
	if !strings.Contains(string(root), `lang="nb"`) {
		t.Error("the root page is not in the default language (nb)")
	}
	// A static host serves 404.html for every missing path, whatever the
	// reader's language: it says so in both (it was in the default only).
	notFound, _ := os.ReadFile(filepath.Join(dir, "404.html"))
	for _, want := range []string{"Fant ikke siden", `<div lang="en"><h2>Page not found</h2>`, `href="en/index.html"`, `href="nb/index.html"`} {
		if !strings.Contains(string(notFound), want) {
			t.Errorf("404.html lacks %s:\n%s", want, notFound)
		}
	}
}

func testLocalizer(t *testing.T) Localizer {
	t.Helper()
	tokens, _ := notifier.NewTokens([]byte("0123456789abcdef0123456789abcdef"))
	r, err := render.New(render.Config{PublicURL: "http://status.example.com", DefaultLocale: "en", DefaultTimezone: "Europe/Oslo"}, tokens, quietTestLogger())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func quietTestLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// checkMirrorLinks follows every href and src of every HTML file under dir
// that is not absolute, and fails for one that names no file. It returns
// how many it checked.
func checkMirrorLinks(t *testing.T, dir string) int {
	t.Helper()
	ref := regexp.MustCompile(`(?:href|src)="([^"]*)"`)
	n := 0
	_ = filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || !strings.HasSuffix(path, ".html") {
			return nil
		}
		b, _ := os.ReadFile(path)
		for _, m := range ref.FindAllStringSubmatch(string(b), -1) {
			link := html.UnescapeString(m[1])
			if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
				t.Errorf("%s links outside the mirror: %s", strings.TrimPrefix(path, dir), link)
				continue
			}
			target := filepath.Join(filepath.Dir(path), filepath.FromSlash(strings.SplitN(link, "#", 2)[0]))
			if _, err := os.Stat(target); err != nil {
				t.Errorf("%s: link %s names no file of the mirror", strings.TrimPrefix(path, dir), link)
			}
			n++
		}
		return nil
	})
	return n
}

// TestMirrorFeedLinksTheMirror: the mirror's feeds link its own files
// (relative to the feed) and keep the live site's ids.
func TestMirrorFeedLinksTheMirror(t *testing.T) {
	f := newFixture(t)
	f.replay(t, "styreweb")
	deps, _ := fixtureDeps(t, f.conn)
	deps.Localizer = testLocalizer(t)
	dir := t.TempDir()
	if _, err := NewMirror(Config{PublicURL: "http://status.example.com", DefaultLocale: "en", DefaultTimezone: "Europe/Oslo"}, deps, quietTestLogger()).Write(t.Context(), dir); err != nil {
		t.Fatal(err)
	}
	feed, err := os.ReadFile(filepath.Join(dir, "nb", "feed.atom"))
	if err != nil {
		t.Fatal(err)
	}
	hrefs := regexp.MustCompile(`href="([^"]*)"`).FindAllStringSubmatch(string(feed), -1)
	if len(hrefs) < 3 {
		t.Fatalf("the mirror's feed has %d links", len(hrefs))
	}
	for _, h := range hrefs {
		if strings.Contains(h[1], "://") {
			t.Errorf("the mirror's feed links %s", h[1])
		} else if _, err := os.Stat(filepath.Join(dir, "nb", filepath.FromSlash(h[1]))); err != nil {
			t.Errorf("the mirror's feed links %s, which is not a file of the mirror", h[1])
		}
	}
	if !strings.Contains(string(feed), "<id>http://status.example.com/") {
		t.Error("the mirror's feed lost the site's ids")
	}
}
