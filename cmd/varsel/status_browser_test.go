package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// statusScreenshotDir keeps the status page's screenshots as artifacts.
const statusScreenshotDir = "../../test-artifacts/status"

// statusInDocs are the status page screenshots kept in docs/status/
// (with -update-screenshots).
var statusInDocs = map[string]bool{"01-front-nb": true, "01-front-en": true, "02-incident-nb": true,
	"05-not-found-nb": true, "06-preferences-nb": true}

// The demo's incidents and letter, as examples/ names them.
const (
	demoIncident = "styreweb-login-2019-09"
	demoLED      = "led-outage-2019-03"
	demoLetter   = "led-letter-2019-03-06"
	demoOpening  = "styreweb-2019-09-16-1100"
)

// statusDemo is `varsel serve` with the demo's site file, its subscribers
// imported and every example scenario published with the CLI (StyreWeb's
// timeline, the Life Events Diary outage with its postmortem and letter,
// the planned maintenance), its status page caught up with all of them.
type statusDemo struct {
	svc             *service
	dir, base, nats string
}

func newStatusDemo(t *testing.T) *statusDemo {
	t.Helper()
	// The pages link absolute URLs under VARSEL_PUBLIC_URL: give the
	// service its own address as the public one, so a browser's clicks
	// stay on it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	svc, dir := testService(t, func(c *Config) {
		c.SiteFile = "../../examples/site.toml"
		c.HTTPAddr = addr
		c.PublicURL = "http://" + addr
	})
	d := &statusDemo{svc: svc, dir: dir, base: "http://" + addr, nats: svc.conn.ClientURL()}
	if out, err := varsel(t, "subscribers", "import", "../../examples/subscribers.csv", "--nats", d.nats, "--allow-private-webhooks"); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	var files []string
	for _, scenario := range []string{"styreweb", "led", "maintenance"} {
		// Numbered files sort in time order, then letter.json.
		fs, _ := filepath.Glob(filepath.Join("../../examples", scenario, "*.json"))
		files = append(files, fs...)
	}
	for _, f := range files {
		if out, err := varsel(t, "publish", f, "--nats", d.nats); err != nil {
			t.Fatalf("publish %s: %v\n%s", f, err, out)
		}
	}
	// The page follows the stream: wait until it shows the last of each.
	waitFor(t, "the status page to show every example", func() bool {
		return strings.Contains(d.get(t, "/incidents/"+demoIncident+"?lang=en"), `id="styreweb-2019-09-19-0400"`) &&
			strings.Contains(d.get(t, "/incidents/"+demoLED+"?lang=en"), `/letters/`+demoLetter) &&
			strings.Contains(d.get(t, "/incidents/styreweb-db-upgrade-2019-10?lang=en"), `class="banner ok"`)
	})
	return d
}

// get is a page's body ("" unless 200).
func (d *statusDemo) get(t *testing.T, path string) string {
	t.Helper()
	res, err := http.Get(d.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		return ""
	}
	return string(b)
}

// emailLink is the first link under the service's address and prefix
// ("/preferences/") in a subscriber's email about event, read from the
// outbox as the subscriber's mail program would.
func (d *statusDemo) emailLink(t *testing.T, event, subscriber, prefix string) string {
	t.Helper()
	path := filepath.Join(d.dir, "outbox", "email", event, subscriber+".eml")
	waitFor(t, "the email "+path, func() bool { _, err := os.Stat(path); return err == nil })
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	msg, err := mail.ReadMessage(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	text := mimeText(t, msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
	link := regexp.MustCompile(regexp.QuoteMeta(d.base+prefix) + `[A-Za-z0-9_.-]+`).FindString(text)
	if link == "" {
		t.Fatalf("%s has no link to %s%s…:\n%s", path, d.base, prefix, text)
	}
	return link
}

// mimeText is every text part of a MIME body, decoded.
func mimeText(t *testing.T, contentType, encoding string, body io.Reader) string {
	t.Helper()
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		t.Fatalf("email Content-Type %q: %v", contentType, err)
	}
	if strings.HasPrefix(mt, "multipart/") {
		var all strings.Builder
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				return all.String()
			}
			if err != nil {
				t.Fatal(err)
			}
			all.WriteString(mimeText(t, p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p))
		}
	}
	if !strings.HasPrefix(mt, "text/") {
		return ""
	}
	if strings.EqualFold(encoding, "quoted-printable") {
		body = quotedprintable.NewReader(body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// tabConsole gathers what a tab writes to its console: errors, uncaught
// exceptions and the browser's security messages (CSP violations).
type tabConsole struct {
	mu       sync.Mutex
	problems []string
}

func (c *tabConsole) listen(t *testing.T, ctx context.Context) {
	t.Helper()
	err := chromedp.Listen(ctx, func(ev any) {
		var p string
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				p = fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " "))
			}
		case *runtime.EventExceptionThrown:
			p = "exception: " + ev.ExceptionDetails.Text
			if ev.ExceptionDetails.Exception != nil {
				p += " " + ev.ExceptionDetails.Exception.Description
			}
		case *log.EventEntryAdded:
			e := ev.Entry
			// The browser asks for /favicon.ico on its own; the site has
			// none and answers 404, which is no page's doing.
			if strings.HasSuffix(e.URL, "/favicon.ico") {
				return
			}
			if e.Level == log.EntryLevelError || e.Level == log.EntryLevelWarning || e.Source == log.EntrySourceSecurity || e.Source == log.EntrySourceViolation {
				p = fmt.Sprintf("%s %s: %s (%s)", e.Source, e.Level, e.Text, e.URL)
			}
		}
		if p != "" {
			c.mu.Lock()
			c.problems = append(c.problems, p)
			c.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}

// take returns the problems so far and forgets them.
func (c *tabConsole) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.problems
	c.problems = nil
	return p
}

// shootStatus keeps a full-page screenshot under test-artifacts/status/
// and, with -update-screenshots, the ones in statusInDocs in docs/status/.
func shootStatus(b *browser, name string) {
	b.t.Helper()
	png := value(b, "screenshot "+name, chromedp.FullScreenshot(100))
	dirs := []string{statusScreenshotDir}
	if *updateScreenshots && statusInDocs[name] {
		dirs = append(dirs, "../../docs/status")
	}
	for _, dir := range dirs {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
}

// tabLocation is the tab's URL, parsed.
func tabLocation(b *browser) *url.URL {
	b.t.Helper()
	u, err := url.Parse(value(b, "read the location", chromedp.Location()))
	if err != nil {
		b.t.Fatal(err)
	}
	return u
}

// statusLanguage is what the pages say in one language.
type statusLanguage struct {
	code, other, accept      string
	siteName, gnist, heading string
	otherHeading             string
	older, notFound          string
	prefHeading              string
	componentsHeading        string
}

var statusLanguages = []statusLanguage{
	{code: "nb", other: "en", accept: "nb-NO,nb;q=0.9,en;q=0.5", siteName: "Driftsmeldinger", gnist: "Gnist medlemsapp",
		heading: "Problemer med innlogging i StyreWeb", otherHeading: "Login problems in StyreWeb", older: "Eldre hendelser",
		notFound: "Fant ikke siden", prefHeading: "Ditt abonnement",
		componentsHeading: "Tjenester"},
	{code: "en", other: "nb", accept: "en-GB,en;q=0.9", siteName: "Service status", gnist: "Gnist member app",
		heading: "Login problems in StyreWeb", otherHeading: "Problemer med innlogging i StyreWeb", older: "Earlier incidents",
		notFound: "Page not found", prefHeading: "Your subscription",
		componentsHeading: "Services"},
}

// TestStatusPageInABrowser reads the public status page in headless
// Chromium as a subscriber would, in Norwegian and in English: the front
// page with the site's name, its services and their states and the
// history; an incident from the history, then the same page in the other
// language, also in another time zone; the styled 404; and the
// subscriber's own page, reached from the link in their email, where they
// switch to English. No page writes an error or a CSP violation to the
// console. Screenshots go to test-artifacts/status/.
func TestStatusPageInABrowser(t *testing.T) {
	path := chromium(t)
	start := time.Now()
	d := newStatusDemo(t)
	t.Logf("service up, demo published and shown: %s", time.Since(start).Round(time.Millisecond))

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(1024, 800), chromedp.UserDataDir(t.TempDir()), chromedp.Flag("disable-dev-shm-usage", true))
	alloc, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()

	var first *browser
	for _, lang := range statusLanguages {
		browserStart := time.Now()
		var b *browser
		if first == nil {
			b = newBrowser(t, alloc, d.base, lang.accept)
			first = b
		} else {
			b = newBrowser(t, first.ctx, d.base, lang.accept, chromedp.WithNewBrowserContext())
		}
		var console tabConsole
		console.listen(t, b.ctx)
		checkConsole := func(where string, ignore ...string) {
			t.Helper()
		next:
			for _, p := range console.take() {
				for _, ig := range ignore {
					if strings.Contains(p, ig) {
						continue next
					}
				}
				t.Errorf("%s (%s): the browser's console says: %s", where, lang.code, p)
			}
		}

		// The front page, in the browser's language.
		b.run("the front page", chromedp.Navigate(d.base+"/"), chromedp.WaitVisible(chromedp.CSS(`ul.components`)))
		if lang.code == "nb" {
			t.Logf("chromium up and the front page shown: %s", time.Since(browserStart).Round(time.Millisecond))
		}
		if got := value(b, "read the page language", chromedp.Evaluate[string](`document.documentElement.lang`)); got != lang.code {
			t.Errorf("front page for Accept-Language %q has lang=%q", lang.accept, got)
		}
		if h := b.text("h1"); h != lang.siteName {
			t.Errorf("front page (%s) heading %q, want the site's name %q", lang.code, h, lang.siteName)
		}
		if title := value(b, "read the title", chromedp.Evaluate[string](`document.title`)); title != lang.siteName {
			t.Errorf("front page (%s) title %q, want %q", lang.code, title, lang.siteName)
		}
		components := b.text(`section[aria-labelledby="components"]`)
		for _, want := range []string{lang.componentsHeading, lang.gnist, "StyreWeb", "Life Events Diary"} {
			if !strings.Contains(components, want) {
				t.Errorf("front page (%s): the services lack %q:\n%s", lang.code, want, components)
			}
		}
		states := value(b, "read the states", chromedp.Evaluate[[]string](`[...document.querySelectorAll("ul.components li")].map(li => li.querySelector(".name").textContent + "=" + li.querySelector(".state").textContent)`))
		if len(states) != 3 {
			t.Errorf("front page (%s) lists %d services, want the site file's 3: %q", lang.code, len(states), states)
		}
		for _, s := range states {
			if name, state, _ := strings.Cut(s, "="); name == "" || strings.TrimSpace(state) == "" {
				t.Errorf("front page (%s): service without a name or state: %q", lang.code, s)
			}
		}
		body := b.text("body")
		if m := regexp.MustCompile(`\b(gnist|styreweb)\b`).FindAllString(body, -1); m != nil {
			t.Errorf("front page (%s) shows raw component ids %q:\n%s", lang.code, m, body)
		}
		if !strings.Contains(body, lang.older) || !strings.Contains(body, lang.heading) {
			t.Errorf("front page (%s): the history lacks %q or %q:\n%s", lang.code, lang.older, lang.heading, body)
		}
		if n := value(b, "count the history", chromedp.Evaluate[int](`document.querySelectorAll("ul.history li a").length`)); n != 3 {
			t.Errorf("front page (%s) history lists %d entries, want the 3 examples", lang.code, n)
		}
		shootStatus(b, "01-front-"+lang.code)
		checkConsole("front page")

		// An incident from the history, then the same page in the other
		// language.
		b.run("click the incident in the history",
			chromedp.Click(chromedp.CSS(`ul.history a[href*="/incidents/`+demoIncident+`"]`)),
			chromedp.WaitVisible(chromedp.CSS(`.card[id="styreweb-2019-09-19-0400"]`)))
		u := tabLocation(b)
		if u.Path != "/incidents/"+demoIncident || u.Query().Get("lang") != lang.code {
			t.Errorf("the history's link (%s) led to %s", lang.code, u)
		}
		if h := b.text("h1"); h != lang.heading {
			t.Errorf("incident page (%s) heading %q, want %q", lang.code, h, lang.heading)
		}
		if body := b.text("main"); !strings.Contains(body, lang.gnist) || regexp.MustCompile(`\bgnist\b`).MatchString(body) {
			t.Errorf("incident page (%s) does not name the affected services as the site file does:\n%s", lang.code, body)
		}
		shootStatus(b, "02-incident-"+lang.code)
		b.run("switch language", chromedp.Click(chromedp.CSS(`.langs a[hreflang="`+lang.other+`"]`)),
			chromedp.WaitVisible(chromedp.CSS(`.langs span[lang="`+lang.other+`"][aria-current="true"]`)))
		if v := tabLocation(b); v.Path != u.Path || v.Query().Get("lang") != lang.other {
			t.Errorf("the language switch on %s led to %s, want the same page in %s", u, v, lang.other)
		}
		if got := value(b, "read the page language", chromedp.Evaluate[string](`document.documentElement.lang`)); got != lang.other {
			t.Errorf("after the switch to %s the page has lang=%q", lang.other, got)
		}
		if h := b.text("h1"); h != lang.otherHeading {
			t.Errorf("incident page switched to %s: heading %q, want %q", lang.other, h, lang.otherHeading)
		}
		checkConsole("incident page")

		// In New York: summer time in September, winter time in March;
		// the switch keeps the zone.
		b.run("the incident in New York", chromedp.Navigate(d.base+"/incidents/"+demoIncident+"?lang="+lang.code+"&tz=America/New_York"),
			chromedp.WaitVisible(chromedp.CSS(`.card[id="styreweb-2019-09-19-0400"]`)))
		if body := b.text("main"); !strings.Contains(body, "EDT") || strings.Contains(body, "CEST") {
			t.Errorf("incident page (%s) in New York time does not say EDT:\n%s", lang.code, body)
		}
		shootStatus(b, "03-incident-new-york-"+lang.code)
		b.run("switch language in New York", chromedp.Click(chromedp.CSS(`.langs a[hreflang="`+lang.other+`"]`)),
			chromedp.WaitVisible(chromedp.CSS(`.langs span[lang="`+lang.other+`"][aria-current="true"]`)))
		if v := tabLocation(b); v.Path != "/incidents/"+demoIncident || v.Query().Get("lang") != lang.other || v.Query().Get("tz") != "America/New_York" {
			t.Errorf("the language switch in New York led to %s, want lang=%s and tz kept", v, lang.other)
		}
		if body := b.text("main"); !strings.Contains(body, "EDT") {
			t.Errorf("incident page switched to %s lost New York time:\n%s", lang.other, body)
		}
		b.run("back home in New York", chromedp.Click(chromedp.CSS(`nav.top a.home`)), chromedp.WaitVisible(chromedp.CSS(`ul.components`)))
		if v := tabLocation(b); v.Query().Get("tz") != "America/New_York" {
			t.Errorf("the home link in New York led to %s, want tz kept", v)
		}
		b.run("the winter incident in New York", chromedp.Click(chromedp.CSS(`ul.history a[href*="/incidents/`+demoLED+`"]`)),
			chromedp.WaitVisible(chromedp.CSS(`h1`)))
		if body := b.text("main"); !strings.Contains(body, "EST") || strings.Contains(body, "EDT") {
			t.Errorf("the March incident (%s) in New York time does not say EST:\n%s", lang.other, body)
		}
		shootStatus(b, "04-incident-winter-new-york-"+lang.other)
		checkConsole("incident page in New York")

		// A page that is not there.
		resp := value(b, "an unknown page", chromedp.NavigateResponse(d.base+"/no/such/page"))
		if resp.Status != http.StatusNotFound {
			t.Errorf("unknown page (%s): status %d, want 404", lang.code, resp.Status)
		}
		if h := b.text("h1"); h != lang.notFound {
			t.Errorf("404 page (%s) heading %q, want %q", lang.code, h, lang.notFound)
		}
		styled := value(b, "read the 404's style", chromedp.Evaluate[bool](`document.styleSheets.length > 0 && document.styleSheets[0].cssRules.length > 0 && getComputedStyle(document.querySelector("nav.top")).display !== "inline"`))
		if !styled {
			t.Errorf("404 page (%s) is not styled by status.css", lang.code)
		}
		if home := value(b, "the 404's home link", chromedp.Evaluate[string](`document.querySelector("main a").href`)); home != d.base+"/?lang="+lang.code {
			t.Errorf("404 page (%s) links home to %q", lang.code, home)
		}
		shootStatus(b, "05-not-found-"+lang.code)
		// The browser reports the 404 of the page itself; nothing else.
		checkConsole("404 page", "status of 404 (Not Found) ("+d.base+"/no/such/page)")
	}

	// The subscriber's own page, from the link in her email: Kari reads
	// Norwegian and switches to English.
	link := d.emailLink(t, demoOpening, "kari-nordmann", "/preferences/")
	kari := newBrowser(t, first.ctx, d.base, "nb-NO,nb;q=0.9", chromedp.WithNewBrowserContext())
	var console tabConsole
	console.listen(t, kari.ctx)
	kari.run("the preferences page", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS(`form.prefs`)))
	if h := kari.text("h1"); h != statusLanguages[0].prefHeading {
		t.Errorf("preferences page heading %q, want Norwegian", h)
	}
	if locale := value(kari, "read the language", chromedp.Value(chromedp.CSS(`#locale`))); locale != "nb" {
		t.Errorf("preferences page shows language %q, want Kari's nb", locale)
	}
	if form := kari.text("form.prefs"); !strings.Contains(form, "Gnist medlemsapp") || regexp.MustCompile(`\bgnist\b`).MatchString(form) {
		t.Errorf("preferences page does not name the services as the site file does:\n%s", form)
	}
	shootStatus(kari, "06-preferences-nb")
	kari.run("choose English and save", chromedp.SetValue(chromedp.CSS(`#locale`), "en"),
		chromedp.Click(chromedp.CSS(`form.prefs button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.banner.ok`)))
	if banner := kari.text(".banner.ok"); banner != "Saved. Your changes apply from the next message." {
		t.Errorf("after saving English the page says %q", banner)
	}
	if h := kari.text("h1"); h != statusLanguages[1].prefHeading {
		t.Errorf("after saving English the heading is %q", h)
	}
	if got := value(kari, "read the page language", chromedp.Evaluate[string](`document.documentElement.lang`)); got != "en" {
		t.Errorf("after saving English the page has lang=%q", got)
	}
	shootStatus(kari, "07-preferences-saved-en")
	for _, p := range console.take() {
		t.Errorf("preferences page: the browser's console says: %s", p)
	}
	out, err := varsel(t, "subscribers", "show", "kari-nordmann", "--nats", d.nats)
	if err != nil {
		t.Fatalf("subscribers show: %v\n%s", err, out)
	}
	var shown struct {
		Locale string `json:"locale"`
	}
	if err := json.Unmarshal([]byte(out), &shown); err != nil || shown.Locale != "en" {
		t.Errorf("after saving English on her page, `subscribers show` says (%v):\n%s", err, out)
	}
	t.Logf("screenshots in %s; whole test %s", statusScreenshotDir, time.Since(start).Round(time.Millisecond))
}
