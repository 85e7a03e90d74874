package web

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/varsel/varsel/notifier"
)

// publish applies an event (JSON) to the store and waits for the pages.
func (f *fixture) publish(t *testing.T, raw string) {
	t.Helper()
	ev, err := notifier.DecodeEvent([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	f.update(t, ev.Incident.ID, func(s *notifier.IncidentState) error { s.Apply(ev); return nil })
}

// openedInc opens incident "inc" at 08:00Z, promising the next update by
// 10:00Z (long past: the pages say it is overdue).
const openedInc = `{"id":"e1","type":"incident.opened","time":"2019-09-17T10:00:00+02:00","incident":{"id":"inc","title":{"en":"Login problems","nb":"Problemer med innlogging"},"status":"identified","impact":"major","components":["web"],"started_at":"2019-09-16T07:50:00+02:00","next_update_at":"2019-09-17T12:00:00+02:00","message":{"en":"Still working.","nb":"Arbeidet pågår."}}}`

// resolvedInc resolves it at 14:00Z.
const resolvedInc = `{"id":"e2","type":"incident.resolved","time":"2019-09-17T16:00:00+02:00","incident":{"id":"inc","title":{"en":"Login problems","nb":"Problemer med innlogging"},"status":"resolved","impact":"none","components":["web"],"started_at":"2019-09-16T07:50:00+02:00","message":{"en":"Fixed.","nb":"Løst."}}}`

// get sends a GET (or another method) with headers, as pairs.
func (f *fixture) get(t *testing.T, method, path string, header ...string) (*http.Response, string) {
	t.Helper()
	return f.request(t, method, path, nil, header...)
}

// request sends a request with a body (nil for none) and headers, as
// pairs, and returns the response and its body.
func (f *fixture) request(t *testing.T, method, path string, body io.Reader, header ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, body)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func varies(h http.Header, name string) bool {
	for _, v := range h.Values("Vary") {
		for _, part := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), name) {
				return true
			}
		}
	}
	return false
}

// cachedPaths are the public GETs with validators whose body holds still
// (the JSON's as_of moves every second: see TestStatusJSONCaching).
var cachedPaths = []string{"/", "/incidents/inc", "/incidents/inc?lang=nb", "/feed.atom", "/feed.atom?lang=nb", "/feed.atom?component=web"}

func TestNegotiatedResponsesVaryOnAcceptLanguage(t *testing.T) {
	f := newFixture(t)
	f.publish(t, openedInc)
	for _, path := range []string{"/", "/incidents/inc", "/feed.atom", "/incidents/none-such"} {
		res, _ := f.get(t, http.MethodGet, path, "Accept-Language", "nb")
		if !varies(res.Header, "Accept-Language") {
			t.Errorf("%s (%d): Vary %q lacks Accept-Language", path, res.StatusCode, res.Header.Values("Vary"))
		}
	}
	// A shared cache must not hand the Norwegian copy to an English reader.
	_, en := f.get(t, http.MethodGet, "/incidents/inc", "Accept-Language", "en")
	_, nb := f.get(t, http.MethodGet, "/incidents/inc", "Accept-Language", "nb")
	if en == nb || !strings.Contains(nb, "Problemer med innlogging") {
		t.Error("the incident page is not negotiated by Accept-Language")
	}
	// The status JSON is the same in every language (titles carry all of
	// them), so it does not split caches by Accept-Language.
	resEN, jsEN := f.get(t, http.MethodGet, "/api/v1/status", "Accept-Language", "en")
	_, jsNB := f.get(t, http.MethodGet, "/api/v1/status", "Accept-Language", "nb")
	if varies(resEN.Header, "Accept-Language") {
		t.Error("/api/v1/status varies on Accept-Language but is not negotiated")
	}
	if dropAsOf(jsEN) != dropAsOf(jsNB) {
		t.Errorf("/api/v1/status differs by Accept-Language:\n%s\n%s", jsEN, jsNB)
	}
}

// dropAsOf blanks the JSON's as_of line, which moves every second.
func dropAsOf(js string) string {
	lines := strings.Split(js, "\n")
	return strings.Join(slices.DeleteFunc(lines, func(l string) bool { return strings.Contains(l, `"as_of"`) }), "\n")
}

func TestETagIsStableAndIfNoneMatchGets304(t *testing.T) {
	f := newFixture(t)
	f.publish(t, openedInc)
	for _, path := range cachedPaths {
		res1, body1 := f.get(t, http.MethodGet, path)
		res2, body2 := f.get(t, http.MethodGet, path)
		etag := res1.Header.Get("ETag")
		if res1.StatusCode != 200 || !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) || len(etag) < 18 {
			t.Errorf("%s: %d, ETag %q: want a quoted strong tag", path, res1.StatusCode, etag)
			continue
		}
		if res2.Header.Get("ETag") != etag || body1 != body2 {
			t.Errorf("%s: ETag %q then %q", path, etag, res2.Header.Get("ETag"))
		}
		if cc := res1.Header.Get("Cache-Control"); cc != publicCacheControl {
			t.Errorf("%s: Cache-Control %q", path, cc)
		}
		for _, inm := range []string{etag, "W/" + etag, `"nope", ` + etag, "*"} {
			res, body := f.get(t, http.MethodGet, path, "If-None-Match", inm)
			if res.StatusCode != http.StatusNotModified || body != "" {
				t.Errorf("%s If-None-Match %s: %d with %d bytes, want 304 and no body", path, inm, res.StatusCode, len(body))
			}
			if res.Header.Get("ETag") != etag || res.Header.Get("Cache-Control") != publicCacheControl {
				t.Errorf("%s 304: ETag %q Cache-Control %q", path, res.Header.Get("ETag"), res.Header.Get("Cache-Control"))
			}
			if strings.HasPrefix(path, "/feed") || strings.HasPrefix(path, "/incidents") {
				if !varies(res.Header, "Accept-Language") {
					t.Errorf("%s 304 without Vary", path)
				}
			}
		}
		if res, _ := f.get(t, http.MethodGet, path, "If-None-Match", `"0123"`); res.StatusCode != 200 {
			t.Errorf("%s with another ETag: %d, want 200", path, res.StatusCode)
		}
		// HEAD: the same validators, no body.
		res, body := f.get(t, http.MethodHead, path)
		if res.StatusCode != 200 || res.Header.Get("ETag") != etag || body != "" {
			t.Errorf("HEAD %s: %d ETag %q, %d bytes", path, res.StatusCode, res.Header.Get("ETag"), len(body))
		}
	}
	// Each language is its own representation.
	en, _ := f.get(t, http.MethodGet, "/feed.atom?lang=en")
	nb, _ := f.get(t, http.MethodGet, "/feed.atom?lang=nb")
	if en.Header.Get("ETag") == nb.Header.Get("ETag") {
		t.Error("the English and Norwegian feeds have one ETag")
	}
}

func TestLastModifiedAndIfModifiedSince(t *testing.T) {
	f := newFixture(t)
	f.publish(t, openedInc)
	// Open and overdue: the page changed when the promised 10:00Z passed.
	res, _ := f.get(t, http.MethodGet, "/incidents/inc")
	if got, want := res.Header.Get("Last-Modified"), "Tue, 17 Sep 2019 10:00:00 GMT"; got != want {
		t.Errorf("overdue incident: Last-Modified %q, want %q (its next_update_at)", got, want)
	}
	f.publish(t, resolvedInc)
	for _, path := range cachedPaths {
		res, _ := f.get(t, http.MethodGet, path)
		lm := res.Header.Get("Last-Modified")
		// Resolved, it left the front page's 90-day history 90 days after
		// it started (16 Sep 2019 05:50Z): later than its last event.
		if want := "Sun, 15 Dec 2019 05:50:00 GMT"; lm != want {
			t.Errorf("%s: Last-Modified %q, want %q (when it left the history)", path, lm, want)
		}
		if res, body := f.get(t, http.MethodGet, path, "If-Modified-Since", lm); res.StatusCode != http.StatusNotModified || body != "" {
			t.Errorf("%s If-Modified-Since %s: %d", path, lm, res.StatusCode)
		}
		if res, _ := f.get(t, http.MethodGet, path, "If-Modified-Since", "Tue, 17 Sep 2019 13:59:59 GMT"); res.StatusCode != 200 {
			t.Errorf("%s modified since 13:59:59: %d, want 200", path, res.StatusCode)
		}
		// If-None-Match takes precedence: a wrong tag gets the page.
		if res, _ := f.get(t, http.MethodGet, path, "If-Modified-Since", lm, "If-None-Match", `"stale"`); res.StatusCode != 200 {
			t.Errorf("%s wrong If-None-Match, matching If-Modified-Since: %d, want 200", path, res.StatusCode)
		}
	}
}

func TestAnUpdateChangesTheValidators(t *testing.T) {
	f := newFixture(t)
	f.publish(t, openedInc)
	before := map[string]*http.Response{}
	for _, path := range cachedPaths {
		before[path], _ = f.get(t, http.MethodGet, path)
	}
	f.publish(t, resolvedInc)
	for _, path := range cachedPaths {
		old := before[path]
		res, _ := f.get(t, http.MethodGet, path)
		if res.Header.Get("ETag") == old.Header.Get("ETag") {
			t.Errorf("%s: the ETag %s did not change with the update", path, res.Header.Get("ETag"))
		}
		if res.Header.Get("Last-Modified") == old.Header.Get("Last-Modified") {
			t.Errorf("%s: Last-Modified %s did not change with the update", path, res.Header.Get("Last-Modified"))
		}
		if res, _ := f.get(t, http.MethodGet, path, "If-None-Match", old.Header.Get("ETag")); res.StatusCode != 200 {
			t.Errorf("%s: the old ETag still gets %d", path, res.StatusCode)
		}
		if res, _ := f.get(t, http.MethodGet, path, "If-Modified-Since", old.Header.Get("Last-Modified")); res.StatusCode != 200 {
			t.Errorf("%s: the old Last-Modified still gets %d", path, res.StatusCode)
		}
	}
}

func TestStatusJSONCaching(t *testing.T) {
	f := newFixture(t)
	f.publish(t, openedInc)
	// as_of moves every second while Varsel follows its store, and the
	// body with it: within one second the tag holds.
	for try := 0; ; try++ {
		res, _ := f.get(t, http.MethodGet, "/api/v1/status")
		etag, lm := res.Header.Get("ETag"), res.Header.Get("Last-Modified")
		if etag == "" || lm == "" || res.Header.Get("Cache-Control") != publicCacheControl {
			t.Fatalf("status JSON: ETag %q Last-Modified %q Cache-Control %q", etag, lm, res.Header.Get("Cache-Control"))
		}
		if t1, err := http.ParseTime(lm); err != nil || time.Since(t1) > 10*time.Second {
			t.Errorf("Last-Modified %q: want the as_of of a live status (%v)", lm, err)
		}
		r1, _ := f.get(t, http.MethodGet, "/api/v1/status", "If-None-Match", etag)
		r2, _ := f.get(t, http.MethodGet, "/api/v1/status", "If-Modified-Since", lm)
		if r1.StatusCode == http.StatusNotModified && r2.StatusCode == http.StatusNotModified {
			break
		}
		if try == 5 {
			t.Fatalf("status JSON: If-None-Match %d, If-Modified-Since %d, want 304", r1.StatusCode, r2.StatusCode)
		}
	}
}

func TestCORSOnTheFeedsAndJSON(t *testing.T) {
	f := newFixture(t)
	f.publish(t, openedInc)
	for _, path := range []string{"/api/v1/status", "/feed.atom", "/feed.atom?lang=nb&component=web", "/api/v1/openapi.json"} {
		res, _ := f.get(t, http.MethodGet, path, "Origin", "https://widget.example.org")
		if res.StatusCode != 200 || res.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s: %d, Access-Control-Allow-Origin %q", path, res.StatusCode, res.Header.Get("Access-Control-Allow-Origin"))
		}
		if res.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("%s allows credentials", path)
		}
		if !strings.Contains(res.Header.Get("Access-Control-Expose-Headers"), "ETag") {
			t.Errorf("%s: a widget cannot read the ETag", path)
		}
		p := strings.Split(path, "?")[0]
		res, body := f.get(t, http.MethodOptions, p, "Origin", "https://widget.example.org",
			"Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "if-none-match")
		if res.StatusCode != http.StatusNoContent || body != "" || res.Header.Get("Access-Control-Allow-Origin") != "*" ||
			!strings.Contains(res.Header.Get("Access-Control-Allow-Methods"), "GET") ||
			!strings.Contains(res.Header.Get("Access-Control-Allow-Headers"), "If-None-Match") ||
			res.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("preflight %s: %d %v", p, res.StatusCode, res.Header)
		}
	}
	// The pages, the sign-up form and the admin API are not for other sites.
	for _, path := range []string{"/", "/incidents/inc", "/subscribe", "/api/v1/subscribers"} {
		res, _ := f.get(t, http.MethodGet, path, "Origin", "https://widget.example.org")
		if res.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s: Access-Control-Allow-Origin %q", path, res.Header.Get("Access-Control-Allow-Origin"))
		}
	}
}

func TestErrorsAndPrivatePathsGetNoValidators(t *testing.T) {
	f := newFixture(t)
	f.publish(t, openedInc)
	tok := f.tokens.Sign(notifier.TokenClaims{Purpose: notifier.PurposeUnsubscribe, SubscriberID: "kari", Channel: notifier.Email})
	for _, p := range []struct {
		path, token string
		status      int
	}{
		{"/incidents/none-such", "", 404},
		{"/incidents/a*b", "", 404},
		{"/letters/none-such", "", 404},
		{"/feed.atom?component=none-such", "", 404},
		{"/feed.atom?component=a*b", "", 404},
		{"/no/such/page", "", 404},
		{"/api/v1/subscribers", "", 401},
		{"/api/v1/subscribers", "s3cret", 200},
		{"/api/v1/deliveries", "s3cret", 200},
		{"/subscribe", "", 200},
		{"/unsubscribe/" + tok, "", 200},
		{"/confirm/garbage", "", 400},
	} {
		res, _ := f.do(t, http.MethodGet, p.path, p.token, nil)
		if res.StatusCode != p.status {
			t.Errorf("%s: %d, want %d", p.path, res.StatusCode, p.status)
		}
		for _, h := range []string{"ETag", "Last-Modified"} {
			if v := res.Header.Get(h); v != "" {
				t.Errorf("%s (%d): %s %q", p.path, res.StatusCode, h, v)
			}
		}
		if strings.Contains(res.Header.Get("Cache-Control"), "public") {
			t.Errorf("%s (%d): Cache-Control %q", p.path, res.StatusCode, res.Header.Get("Cache-Control"))
		}
	}
	// A sign-up is a POST: never answered from a cache.
	res, _ := f.do(t, http.MethodPost, "/subscribe", "", strings.NewReader("email=kari%40example.com"))
	if res.Header.Get("ETag") != "" || strings.Contains(res.Header.Get("Cache-Control"), "public") {
		t.Errorf("POST /subscribe: ETag %q Cache-Control %q", res.Header.Get("ETag"), res.Header.Get("Cache-Control"))
	}
}

// unsynced is a read model that has not read the store yet.
type unsynced struct{ notifier.StatusReader }

func (unsynced) Freshness() notifier.Freshness { return notifier.Freshness{} }

func TestStartUp503GetsNoValidators(t *testing.T) {
	h := New(Config{PublicURL: "http://status.example.com", DefaultLocale: "en"}, Deps{Status: unsynced{}},
		slog.New(slog.DiscardHandler))
	for _, path := range []string{"/", "/incidents/inc", "/feed.atom", "/api/v1/status"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusServiceUnavailable {
			t.Errorf("%s: %d, want 503", path, rec.Code)
		}
		if rec.Header().Get("ETag") != "" || rec.Header().Get("Last-Modified") != "" || rec.Header().Get("Cache-Control") != "" {
			t.Errorf("%s 503: %v", path, rec.Header())
		}
	}
}
