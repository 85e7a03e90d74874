package web

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/varsel/varsel/notifier"
)

// capture is a slog handler keeping every record, for tests that must
// see nothing at ERROR.
type capture struct {
	mu      *sync.Mutex
	records *[]slog.Record
}

func newCapture() capture { return capture{mu: &sync.Mutex{}, records: &[]slog.Record{}} }

func (c capture) Enabled(context.Context, slog.Level) bool { return true }
func (c capture) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	*c.records = append(*c.records, r.Clone())
	return nil
}
func (c capture) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c capture) WithGroup(string) slog.Handler      { return c }

// errors returns the messages of the records at ERROR or above.
func (c capture) errors() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, r := range *c.records {
		if r.Level >= slog.LevelError {
			msg := r.Message
			r.Attrs(func(a slog.Attr) bool { msg += " " + a.String(); return true })
			out = append(out, msg)
		}
	}
	return out
}

// newLoggedFixture is newFixture with every log (the store's, the read
// model's and the handlers') going to logs.
func newLoggedFixture(t *testing.T, logs capture) *fixture {
	t.Helper()
	f, _ := buildFixture(t, fixtureOpts{logger: slog.New(logs), storeLogs: true})
	return f
}

// badIDs cannot be event, incident or subscriber ids, and several are not
// even NATS KV keys: they must be refused before they reach the store.
var badIDs = []string{"a*", "a>", "a b", "..", ".", "a.b", "a%2Fb", "-a", "%00", "%1B", "%C3%A6", strings.Repeat("a", 129), strings.Repeat("x", 4000)}

// A path naming an id that cannot be one answers the normal 404, and
// nothing is logged at ERROR.
func TestMalformedIDsAreNotFoundAndLogNoError(t *testing.T) {
	logs := newCapture()
	f := newLoggedFixture(t, logs)
	if got := logs.errors(); len(got) > 0 {
		t.Fatalf("errors logged before any request: %q", got)
	}
	paths := []string{"/incidents/", "/letters/"}
	for _, base := range paths {
		for _, id := range badIDs {
			res, body := f.do(t, http.MethodGet, base+id, "", nil)
			if id == "." || id == ".." {
				// The mux sends an unclean path to its clean form
				// before any handler sees it.
				if loc := res.Header.Get("Location"); res.StatusCode != http.StatusTemporaryRedirect || strings.Contains(loc, ".") {
					t.Errorf("GET %s%s: %d to %q, want a redirect to the clean path", base, id, res.StatusCode, loc)
				}
				continue
			}
			if res.StatusCode != http.StatusNotFound {
				t.Errorf("GET %s%s: %d %q, want 404", base, id, res.StatusCode, body)
			} else if !strings.Contains(body, "Page not found") {
				t.Errorf("GET %s%s: 404 without the not-found page: %q", base, id, body)
			}
		}
		// An empty id is not the path's pattern at all.
		if res, _ := f.do(t, http.MethodGet, base, "", nil); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", base, res.StatusCode)
		}
	}
	// The admin and staff API paths taking an id answer 404 too.
	for _, id := range badIDs {
		for _, p := range []struct{ method, path string }{
			{http.MethodGet, "/api/v1/subscribers/" + id},
			{http.MethodDelete, "/api/v1/subscribers/" + id},
			{http.MethodPost, "/api/v1/subscribers/" + id + "/enable"},
			{http.MethodPost, "/api/v1/incidents/" + id + "/holding"},
			{http.MethodGet, "/api/v1/progress/" + id},
			{http.MethodPost, "/api/v1/deliveries/" + id + "/retry"},
		} {
			res, body := f.do(t, p.method, p.path, "s3cret", strings.NewReader("{}"))
			if res.StatusCode >= 500 {
				t.Errorf("%s %s: %d %q", p.method, p.path, res.StatusCode, body)
			}
		}
	}
	// Links that carry a token instead of an id: refused, never a 5xx.
	for _, id := range badIDs {
		for _, p := range []struct{ method, path string }{
			{http.MethodGet, "/confirm/" + id},
			{http.MethodGet, "/unsubscribe/" + id},
			{http.MethodPost, "/unsubscribe/" + id},
		} {
			res, body := f.do(t, p.method, p.path, "", strings.NewReader(url.Values{}.Encode()))
			if res.StatusCode >= 500 {
				t.Errorf("%s %s: %d %q", p.method, p.path, res.StatusCode, body)
			}
		}
	}
	if got := logs.errors(); len(got) > 0 {
		t.Errorf("%d records at ERROR, want none; the first: %q", len(got), got[0])
	}
}

func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	f := newFixture(t)
	for _, p := range []struct{ method, path, token string }{
		{http.MethodGet, "/", ""},
		{http.MethodGet, "/incidents/none-such", ""},
		{http.MethodGet, "/letters/none-such", ""},
		{http.MethodGet, "/feed.atom", ""},
		{http.MethodGet, "/api/v1/status", ""},
		{http.MethodGet, "/api/v1/subscribers", ""},
		{http.MethodGet, "/api/v1/subscribers", "s3cret"},
		{http.MethodGet, "/subscribe", ""},
		{http.MethodPost, "/subscribe", ""},
		{http.MethodGet, "/unsubscribe/x", ""},
		{http.MethodGet, "/static/status.css", ""},
		{http.MethodGet, "/static/", ""},
		{http.MethodGet, "/healthz", ""},
		{http.MethodGet, "/metrics", ""},
		{http.MethodGet, "/no/such/page", ""},
		{http.MethodPut, "/", ""},
	} {
		res, _ := f.do(t, p.method, p.path, p.token, nil)
		h := res.Header
		for name, want := range map[string]string{
			"Content-Security-Policy": ContentSecurityPolicy,
			"X-Frame-Options":         "DENY",
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "same-origin",
		} {
			if got := h.Get(name); got != want {
				t.Errorf("%s %s (%d): %s is %q, want %q", p.method, p.path, res.StatusCode, name, got, want)
			}
		}
	}
	for _, want := range []string{"default-src 'self'", "frame-ancestors 'none'", "base-uri 'self'", "form-action 'self'", "object-src 'none'"} {
		if !strings.Contains(ContentSecurityPolicy, want) {
			t.Errorf("the policy %q lacks %q", ContentSecurityPolicy, want)
		}
	}
	if strings.Contains(ContentSecurityPolicy, "unsafe-inline") {
		t.Errorf("the policy allows inline script or style: %q", ContentSecurityPolicy)
	}
}

// The policy allows no inline script or style: the pages must have none,
// and their style sheet must be served.
func TestPagesNeedNoInlineScriptOrStyle(t *testing.T) {
	f := newFixture(t)
	for _, path := range []string{"/", "/subscribe", "/subscribe?lang=nb", "/unsubscribe/x"} {
		_, body := f.do(t, http.MethodGet, path, "", nil)
		for _, bad := range []string{"<script", "<style", " style=", " onclick=", " onload=", " onsubmit=", "javascript:"} {
			if strings.Contains(body, bad) {
				t.Errorf("GET %s has %q, which the policy blocks", path, bad)
			}
		}
		if path == "/" && !strings.Contains(body, `<link rel="stylesheet" href="/static/status.css">`) {
			t.Errorf("GET / does not link its style sheet")
		}
	}
	for _, name := range []string{"incident.html", "layout.html", "letter.html", "status.html", "subscribe.html", "unsubscribe.html"} {
		b, err := pageFS.ReadFile("pages/" + name)
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{"<script", "<style", "style=", "onclick=", "onload=", "onsubmit=", "javascript:"} {
			if strings.Contains(string(b), bad) {
				t.Errorf("template %s has %q, which the policy blocks", name, bad)
			}
		}
	}
	res, css := f.do(t, http.MethodGet, "/static/status.css", "", nil)
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/css") || !strings.Contains(css, ".banner{") {
		t.Errorf("GET /static/status.css: %d %s %.80q", res.StatusCode, res.Header.Get("Content-Type"), css)
	}
	for _, path := range []string{"/static/", "/static/../pages.go", "/static/layout.html", "/static/nothing.css"} {
		if res, _ := f.do(t, http.MethodGet, path, "", nil); res.StatusCode != http.StatusNotFound && res.StatusCode/100 != 3 {
			t.Errorf("GET %s: %d, want 404", path, res.StatusCode)
		}
	}
}

// A flood of sign-ups from more client addresses than the limiter keeps
// (4,100 measured locking everyone out for two minutes) must not refuse the
// next new visitor, while a client over its limit stays refused. Every
// address is a loopback one.
func TestSignupFloodLocksNoNewVisitorOut(t *testing.T) {
	var mu sync.Mutex
	sent := map[string]int{}
	f, _ := buildFixture(t, fixtureOpts{send: func(_ context.Context, to string, _ *notifier.Message) error {
		mu.Lock()
		defer mu.Unlock()
		sent[to]++
		return nil
	}, config: func(c *Config) { c.AdminToken = "" }})
	h := f.h
	signUp := func(client, email string) int {
		req := httptest.NewRequest(http.MethodPost, "/subscribe", strings.NewReader(url.Values{"email": {email}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.RemoteAddr = client + ":40000"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	abuser := "127.0.0.2"
	for i := 0; ; i++ {
		if code := signUp(abuser, "abuser"+strconv.Itoa(i)+"@example.com"); code == http.StatusTooManyRequests {
			break
		} else if i > 100 {
			t.Fatalf("the client limit never refused: %d", code)
		}
	}
	const flood = 5000
	for i := range flood {
		client := "127.1." + strconv.Itoa(i/250) + "." + strconv.Itoa(i%250+1)
		if code := signUp(client, "flood"+strconv.Itoa(i)+"@example.com"); code != http.StatusOK {
			t.Fatalf("sign-up %d of the flood, a client never seen: %d", i, code)
		}
		if i%500 == 0 && signUp(abuser, "again@example.com") != http.StatusTooManyRequests {
			t.Fatalf("the refused client got through after %d other clients", i)
		}
	}
	if code := signUp("127.2.0.1", "new.visitor@example.com"); code != http.StatusOK {
		t.Errorf("a new visitor after %d other clients: %d, want 200", flood, code)
	}
	mu.Lock()
	defer mu.Unlock()
	if sent["new.visitor@example.com"] != 1 {
		t.Errorf("the new visitor's confirmation was not sent")
	}
	if sent["again@example.com"] != 0 {
		t.Errorf("the refused client's sign-up was sent")
	}
}
