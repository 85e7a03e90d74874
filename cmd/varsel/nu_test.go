package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mmcdole/gofeed"
)

// vnuVersion is the Nu HTML checker the test runs: the npm package
// vnu-jar, whose vnu.jar runs on Java 11 and later (CI has Debian's 17).
const vnuVersion = "26.9.27"

// vnuJar installs vnu-jar with npm once into the user's cache
// (…/varsel-test/vnu/VERSION) and returns vnu.jar's path. Without java or
// npm, or with npm unable to reach its registry, the test fails in CI
// and is skipped elsewhere, saying why.
func vnuJar(t *testing.T) (java, jar string) {
	t.Helper()
	unavailable := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	java, err := exec.LookPath("java")
	if err != nil {
		unavailable("no java on PATH to run the Nu HTML checker (apt-get install -y default-jre-headless)")
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "varsel-test", "vnu", vnuVersion)
	jar = filepath.Join(dir, "node_modules", "vnu-jar", "build", "dist", "vnu.jar")
	if _, err := os.Stat(jar); err == nil {
		return java, jar
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		unavailable("no npm on PATH to install the Nu HTML checker (vnu-jar@%s)", vnuVersion)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "install-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// --ignore-scripts: its postinstall would download a Java runtime.
	// Few retries: an unreachable registry should skip in seconds.
	cmd := exec.CommandContext(ctx, npm, "install", "--prefix", tmp, "--ignore-scripts", "--no-audit", "--no-fund",
		"--loglevel", "error", "--fetch-retries", "1", "--fetch-retry-mintimeout", "1000", "--fetch-retry-maxtimeout", "3000",
		"vnu-jar@"+vnuVersion)
	cmd.Dir = tmp
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		if len(out) > 1500 {
			out = out[len(out)-1500:]
		}
		unavailable("npm install vnu-jar@%s: %v\n%s", vnuVersion, err, out)
	}
	if _, err := os.Stat(filepath.Join(tmp, "node_modules", "vnu-jar", "build", "dist", "vnu.jar")); err != nil {
		t.Fatalf("npm installed vnu-jar@%s without vnu.jar: %v", vnuVersion, err)
	}
	// Another run may have installed it meanwhile: either copy will do.
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(jar); serr != nil {
			t.Fatalf("keep vnu-jar in %s: %v", dir, err)
		}
	}
	t.Logf("installed vnu-jar@%s in %s (%s)", vnuVersion, dir, time.Since(start).Round(time.Millisecond))
	return java, jar
}

// nuPage is a page to check: where it came from and the file holding it.
type nuPage struct{ from, file string }

// savePage saves a live page's body to dir, under a name saying what it
// is, and checks its status.
func savePage(t *testing.T, dir, name string, want int, req *http.Request) nuPage {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	from := req.Method + " " + req.URL.RequestURI()
	if res.StatusCode != want {
		t.Errorf("%s: status %d, want %d", from, res.StatusCode, want)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") || !bytes.HasPrefix(bytes.ToLower(body), []byte("<!doctype html>")) {
		t.Errorf("%s: Content-Type %q, not a page:\n%.300s", from, ct, body)
	}
	file := filepath.Join(dir, name+".html")
	if err := os.WriteFile(file, body, 0o644); err != nil {
		t.Fatal(err)
	}
	return nuPage{from: from, file: file}
}

// TestPagesPassTheNuChecker checks every page of the status site with the
// Nu HTML checker (vnu.jar, the W3C's validator), in both languages: the
// live pages (front, incidents, the letter, sign-up with its error and
// sent states, the subscriber's page with and without errors, unsubscribe,
// bad links, the 404) and every page of the static mirror `varsel status
// export` writes. One java run checks them all. It also reads every
// Atom feed with gofeed.
func TestPagesPassTheNuChecker(t *testing.T) {
	java, jar := vnuJar(t)
	start := time.Now()
	d := newStatusDemo(t)
	dir := t.TempDir()

	// The static mirror, as `varsel status export` writes it.
	mirror := filepath.Join(dir, "mirror")
	t.Setenv("VARSEL_SITE_FILE", "../../examples/site.toml")
	t.Setenv("VARSEL_PUBLIC_URL", d.base)
	if out, err := varsel(t, "status", "export", mirror, "--nats", d.nats); err != nil || !strings.Contains(out, "wrote") {
		t.Fatalf("status export: %v\n%s", err, out)
	}
	var pages []nuPage
	err := filepath.WalkDir(mirror, func(path string, e os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(path, ".html") {
			rel, _ := filepath.Rel(mirror, path)
			pages = append(pages, nuPage{from: "mirror " + rel, file: path})
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) < 12 {
		t.Errorf("the mirror holds only %d pages", len(pages))
	}

	// The live pages.
	live := filepath.Join(dir, "live")
	if err := os.Mkdir(live, 0o755); err != nil {
		t.Fatal(err)
	}
	prefs := d.emailLink(t, demoOpening, "kari-nordmann", "/preferences/")
	unsubscribe := d.emailLink(t, demoOpening, "kari-nordmann", "/unsubscribe/")
	get := func(path string) *http.Request {
		req, err := http.NewRequest(http.MethodGet, d.base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	post := func(path string, form url.Values) *http.Request {
		req, err := http.NewRequest(http.MethodPost, d.base+path, strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", d.base)
		return req
	}
	prefsPath := strings.TrimPrefix(prefs, d.base)
	for _, lang := range []string{"nb", "en"} {
		q := "?lang=" + lang
		for _, p := range []struct {
			name, path string
			status     int
		}{
			{"front", "/" + q, 200},
			{"front-new-york", "/" + q + "&tz=America/New_York", 200},
			{"incident", "/incidents/" + demoIncident + q, 200},
			{"incident-postmortem", "/incidents/" + demoLED + q, 200},
			{"maintenance", "/incidents/styreweb-db-upgrade-2019-10" + q, 200},
			{"letter", "/letters/" + demoLetter + q, 200},
			{"subscribe", "/subscribe" + q, 200},
			{"preferences", prefsPath + q, 200},
			{"preferences-bad-link", "/preferences/not-a-token" + q, 403},
			{"unsubscribe", strings.TrimPrefix(unsubscribe, d.base) + q, 200},
			{"confirm-bad-link", "/confirm/not-a-token" + q, 400},
			{"not-found", "/no/such/page" + q, 404},
			{"no-such-incident", "/incidents/no-such-incident" + q, 404},
		} {
			pages = append(pages, savePage(t, live, lang+"-"+p.name, p.status, get(p.path)))
		}
		pages = append(pages,
			savePage(t, live, lang+"-subscribe-invalid", 400, post("/subscribe", url.Values{"locale": {lang}, "email": {"not an address"}})),
			savePage(t, live, lang+"-preferences-invalid", 400, post(prefsPath+q, url.Values{"locale": {lang}, "timezone": {"Mars/Olympus_Mons"}})),
			savePage(t, live, lang+"-preferences-saved", 200, post(prefsPath+q, url.Values{"locale": {lang}})))
	}
	pages = append(pages, savePage(t, live, "subscribe-sent", 200, post("/subscribe", url.Values{"locale": {"nb"}, "email": {"ny.abonnent@example.com"}})))
	t.Logf("%d pages from the service and its mirror: %s", len(pages), time.Since(start).Round(time.Millisecond))

	// One run of the checker for every page and the stylesheet.
	byFile := map[string]string{}
	args := []string{"-jar", jar, "--errors-only", "--format", "gnu", "--also-check-css"}
	for _, p := range pages {
		byFile[p.file] = p.from
		args = append(args, p.file)
	}
	css := filepath.Join(mirror, "static", "status.css")
	byFile[css] = "mirror static/status.css"
	args = append(args, css)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	checkStart := time.Now()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, java, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	t.Logf("the Nu HTML checker (vnu-jar@%s) read %d files in %s", vnuVersion, len(args)-6, time.Since(checkStart).Round(time.Millisecond))
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run %s: %v\n%s", java, err, stderr.String())
	}
	// "file:/tmp/…/nb-front.html":12.3-12.40: error: …
	line := regexp.MustCompile(`^"?file:([^"]+?)"?:(\S*): (error|info warning|warning|info|non-document-error): (.*)$`)
	var problems []string
	for _, l := range strings.Split(strings.TrimSpace(stderr.String()+"\n"+stdout.String()), "\n") {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		m := line.FindStringSubmatch(l)
		if m == nil {
			problems = append(problems, l)
			continue
		}
		file, _ := url.PathUnescape(m[1])
		from := byFile[file]
		if from == "" {
			from = file
		}
		problems = append(problems, fmt.Sprintf("%s (%s) %s: %s: %s", from, filepath.Base(file), m[2], m[3], m[4]))
	}
	sort.Strings(problems)
	if len(problems) > 0 || err != nil {
		t.Errorf("the Nu HTML checker finds %d problems (exit %v):\n%s", len(problems), err, strings.Join(problems, "\n"))
	}

	checkFeeds(t, d, mirror)
	t.Logf("whole test %s", time.Since(start).Round(time.Millisecond))
}

// checkFeeds reads every Atom feed with gofeed, the live ones by language
// and component and the mirror's, and follows every link they give.
func checkFeeds(t *testing.T, d *statusDemo, mirror string) {
	t.Helper()
	parser := gofeed.NewParser()
	type variant struct {
		from, lang, title string
		component         string
		feed              *gofeed.Feed
		file              string // the mirror's
	}
	var variants []variant
	for _, v := range []struct{ query, lang, title, component string }{
		{"?lang=en", "en", "Service status", ""},
		{"?lang=nb", "nb", "Driftsmeldinger", ""},
		{"", "en", "Service status", ""}, // the default language
		{"?component=styreweb", "en", "Service status: StyreWeb", "styreweb"},
		{"?component=gnist&lang=nb", "nb", "Driftsmeldinger: Gnist medlemsapp", "gnist"},
	} {
		res, err := http.Get(d.base + "/feed.atom" + v.query)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/atom+xml") {
			t.Errorf("/feed.atom%s: %d %s", v.query, res.StatusCode, res.Header.Get("Content-Type"))
			continue
		}
		f, err := parser.ParseString(string(body))
		if err != nil {
			t.Errorf("/feed.atom%s does not parse: %v\n%s", v.query, err, body)
			continue
		}
		variants = append(variants, variant{from: "/feed.atom" + v.query, lang: v.lang, title: v.title, component: v.component, feed: f})
	}
	for _, v := range []struct{ lang, title string }{{"nb", "Driftsmeldinger"}, {"en", "Service status"}} {
		file := filepath.Join(mirror, v.lang, "feed.atom")
		body, err := os.ReadFile(file)
		if err != nil {
			t.Errorf("the mirror has no %s/feed.atom: %v", v.lang, err)
			continue
		}
		f, err := parser.ParseString(string(body))
		if err != nil {
			t.Errorf("the mirror's %s/feed.atom does not parse: %v", v.lang, err)
			continue
		}
		variants = append(variants, variant{from: "mirror " + v.lang + "/feed.atom", lang: v.lang, title: v.title, feed: f, file: file})
	}

	checked := map[string]bool{}
	resolves := func(from, link string, file string) {
		t.Helper()
		if link == "" {
			t.Errorf("%s: an empty link", from)
			return
		}
		if file != "" { // the mirror's: a file beside the feed
			u, err := url.Parse(link)
			if err != nil || u.IsAbs() || strings.HasPrefix(link, "/") {
				t.Errorf("%s: link %q is not relative to the mirror", from, link)
				return
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(file), filepath.FromSlash(u.Path))); err != nil {
				t.Errorf("%s: link %q names no file of the mirror", from, link)
			}
			return
		}
		if !strings.HasPrefix(link, d.base+"/") {
			t.Errorf("%s: link %q is not under the public URL %s", from, link, d.base)
			return
		}
		if checked[link] {
			return
		}
		checked[link] = true
		res, err := http.Get(link)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("%s: link %s answers %d", from, link, res.StatusCode)
		}
	}
	for _, v := range variants {
		f := v.feed
		if f.FeedType != "atom" {
			t.Errorf("%s: feed type %q", v.from, f.FeedType)
		}
		if f.Title != v.title {
			t.Errorf("%s: title %q, want %q", v.from, f.Title, v.title)
		}
		if f.Language != "" && f.Language != v.lang {
			t.Errorf("%s: language %q, want %q", v.from, f.Language, v.lang)
		}
		site := strings.SplitN(v.title, ":", 2)[0]
		if len(f.Authors) == 0 || f.Authors[0].Name != site {
			t.Errorf("%s: author %+v, want the site %q", v.from, f.Authors, site)
		}
		if f.UpdatedParsed == nil {
			t.Errorf("%s: no updated time", v.from)
		}
		resolves(v.from+" (alternate)", f.Link, v.file)
		resolves(v.from+" (self)", f.FeedLink, v.file)
		if len(f.Items) == 0 {
			t.Errorf("%s has no entries", v.from)
			continue
		}
		ids := map[string]bool{}
		for i, it := range f.Items {
			where := fmt.Sprintf("%s entry %d (%s)", v.from, i, it.GUID)
			if it.Title == "" || it.GUID == "" || it.UpdatedParsed == nil || strings.TrimSpace(it.Content) == "" {
				t.Errorf("%s: title %q, id %q, updated %v, content %q", where, it.Title, it.GUID, it.UpdatedParsed, it.Content)
			}
			if ids[it.GUID] {
				t.Errorf("%s: the id comes twice", where)
			}
			ids[it.GUID] = true
			if i > 0 && it.UpdatedParsed != nil && f.Items[i-1].UpdatedParsed != nil && it.UpdatedParsed.After(*f.Items[i-1].UpdatedParsed) {
				t.Errorf("%s is newer than the entry before it", where)
			}
			if regexp.MustCompile(`\bgnist\b`).MatchString(it.Title) {
				t.Errorf("%s: the title names a raw component id: %q", where, it.Title)
			}
			resolves(where, it.Link, v.file)
			if v.component == "" {
				continue
			}
			// A component's feed: only incidents naming it.
			id := strings.TrimSuffix(lastSegment(it.Link), ".html")
			if !slices.Contains(componentIncidents[v.component], id) {
				t.Errorf("%s: links %s, which does not name %s", where, it.Link, v.component)
			}
		}
	}
}

// componentIncidents are the examples' incidents that name each component.
var componentIncidents = map[string][]string{
	"styreweb": {demoIncident, "styreweb-db-upgrade-2019-10"},
	"gnist":    {demoIncident},
}

// lastSegment is the last segment of a link's path.
func lastSegment(link string) string {
	u, err := url.Parse(link)
	if err != nil {
		return link
	}
	return u.Path[strings.LastIndex(u.Path, "/")+1:]
}
