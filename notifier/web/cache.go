package web

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// HTTP caching of the public pages, feeds and status JSON (docs/api.md,
// "Caching"). Every 200 answer to GET or HEAD gets a strong ETag (the first
// 128 bits of the body's SHA-256), a Last-Modified taken from the status
// data, and Cache-Control "public, max-age=30"; If-None-Match (which takes
// precedence) or If-Modified-Since that match get 304 Not Modified. Errors
// and other methods pass untouched. None of it is used on the admin API,
// the console, the sign-up forms or the token links.
//
// Why max-age=30 and not no-cache: the load on a status page comes in a
// flood when something is down and everyone reloads it. Thirty seconds lets
// a browser or a shared cache (a CDN in front of Varsel) answer most of
// that flood, after which a revalidation costs a 304 without a body; and
// thirty seconds is short beside the cadence of incident updates (the
// promised next update is tens of minutes away), so no reader is told
// anything important late.
const publicCacheControl = "public, max-age=30"

// cacheOpts says how a route is cached.
type cacheOpts struct {
	// negotiated marks responses chosen by Accept-Language (readerFor):
	// they say Vary: Accept-Language, so a shared cache keeps a copy per
	// language and serves no Norwegian page to an English reader.
	negotiated bool
	// cors lets pages of other sites read the response (a status widget):
	// Access-Control-Allow-Origin: *, never with credentials.
	cors bool
	// modified is when the data the response shows last changed, for
	// Last-Modified; nil sends none.
	modified func(now time.Time) time.Time
	// cacheControl replaces publicCacheControl when set.
	cacheControl string
}

// cached wraps a public GET handler in the caching above. The body is
// buffered to be hashed: these responses are pages and feeds of bounded
// size rendered from memory.
func (s *server) cached(o cacheOpts, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		if o.negotiated {
			// On every answer, a 404 page in the reader's language too.
			hd.Add("Vary", "Accept-Language")
		}
		if o.cors {
			setCORS(hd)
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h(w, r)
			return
		}
		// Last-Modified is read before the page is rendered: a change
		// between the two then only makes it older than the body, and the
		// next If-Modified-Since misses (a 200) instead of matching a
		// newer time and keeping the old body (a wrong 304).
		var lm time.Time
		if o.modified != nil {
			lm = o.modified(s.now()).UTC().Truncate(time.Second)
		}
		bw := &bufferedWriter{header: hd}
		h(bw, r)
		code := bw.code
		if code == 0 {
			code = http.StatusOK
		}
		if code != http.StatusOK {
			// Errors (a 404 page, a 503 at start-up) and anything else
			// are passed on as they were written: no validators.
			w.WriteHeader(code)
			_, _ = w.Write(bw.body.Bytes())
			return
		}
		sum := sha256.Sum256(bw.body.Bytes())
		etag := `"` + hex.EncodeToString(sum[:16]) + `"`
		hd.Set("ETag", etag)
		if !lm.IsZero() {
			hd.Set("Last-Modified", lm.Format(http.TimeFormat))
		}
		cc := o.cacheControl
		if cc == "" {
			cc = publicCacheControl
		}
		hd.Set("Cache-Control", cc)
		if notModified(r, etag, lm) {
			// RFC 9110, section 15.4.5: a 304 has no body and keeps the
			// validators, Cache-Control and Vary.
			hd.Del("Content-Type")
			hd.Del("Content-Length")
			w.WriteHeader(http.StatusNotModified)
			return
		}
		hd.Set("Content-Length", strconv.Itoa(bw.body.Len()))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(bw.body.Bytes()) // discarded by net/http for HEAD
	})
}

// notModified evaluates If-None-Match, or, only when there is none,
// If-Modified-Since (RFC 9110, section 13.2.2).
//
// If-Modified-Since matches only the exact Last-Modified sent, not every
// later time as RFC 9110 allows (nginx's "if_modified_since exact"): the
// time is derived from the data, and it can go back, when Varsel reaches
// its store again and the pages drop the note that they may be out of
// date. A client holding the page with the note then sends the newer
// time, which must not match.
func notModified(r *http.Request, etag string, lm time.Time) bool {
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		for _, tag := range strings.Split(inm, ",") {
			tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/") // weak comparison
			if tag == "*" || tag == etag {
				return true
			}
		}
		return false
	}
	if lm.IsZero() {
		return false
	}
	since, err := http.ParseTime(r.Header.Get("If-Modified-Since"))
	return err == nil && since.Equal(lm)
}

// bufferedWriter keeps what a handler writes; headers go straight to the
// real response's.
type bufferedWriter struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (b *bufferedWriter) Header() http.Header { return b.header }

func (b *bufferedWriter) WriteHeader(code int) {
	if b.code == 0 {
		b.code = code
	}
}

func (b *bufferedWriter) Write(p []byte) (int, error) {
	if b.code == 0 {
		b.code = http.StatusOK
	}
	return b.body.Write(p)
}

// setCORS lets any site read a public response: no cookies or other
// credentials are used by these paths, so none are allowed.
func setCORS(hd http.Header) {
	hd.Set("Access-Control-Allow-Origin", "*")
	// ETag is not among the headers a script may read by default; a
	// widget needs it for its own If-None-Match.
	hd.Set("Access-Control-Expose-Headers", "ETag")
}

// preflight answers a CORS preflight (OPTIONS) for the public JSON and
// feeds: GET and HEAD from any origin, with the headers a widget may send,
// remembered for a day.
func preflight(w http.ResponseWriter, _ *http.Request) {
	hd := w.Header()
	setCORS(hd)
	hd.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
	hd.Set("Access-Control-Allow-Headers", "Accept, Accept-Language, Cache-Control, If-Modified-Since, If-None-Match")
	hd.Set("Access-Control-Max-Age", "86400")
	hd.Set("Allow", "GET, HEAD, OPTIONS")
	w.WriteHeader(http.StatusNoContent)
}

// statusModified is when the status data the public pages show last
// changed, as the data itself says (never the clock): the newest event of
// any incident; the moment an open incident's promised update fell due
// (the pages then say it is late); and, while Varsel cannot reach its
// store, when it was last current (the pages then say so). It errs late:
// one page's Last-Modified may name a change shown on another. A late
// event dated before the newest joins a timeline without moving it; the
// ETag, which browsers and caches send first, still catches that.
func (s *server) statusModified(now time.Time) time.Time {
	var t time.Time
	later := func(u time.Time) {
		if u.After(t) {
			t = u
		}
	}
	if s.deps.Status == nil || !s.deps.Status.Freshness().Synced {
		return t // the page is a 503
	}
	for _, st := range s.deps.Status.Incidents() {
		later(st.LastEventTime)
		for _, u := range st.Updates {
			later(u.Time)
		}
		if st.Overdue(now) {
			later(*st.Incident.NextUpdateAt)
		}
		// The front page's history drops an incident once it started
		// more than historyDays ago: that moment changed the page.
		if st.ResolvedAt != nil {
			if edge := (&incidentView{IncidentState: st}).Start().Add(historyDays * 24 * time.Hour); !edge.After(now) {
				later(edge)
			}
		}
	}
	if f := s.deps.Status.Freshness(); f.Synced && !f.Live {
		later(f.AsOf)
	}
	if t.After(now) {
		// An event dated ahead of this clock: never a time to come.
		t = now
	}
	return t
}

// statusJSONModified is statusModified, or the status's as_of when later:
// the JSON says until when it was known current, which moves every
// second while Varsel follows its store.
func (s *server) statusJSONModified(now time.Time) time.Time {
	t := s.statusModified(now)
	if s.deps.Status != nil {
		if asOf := s.deps.Status.Freshness().AsOf.Truncate(time.Second); asOf.After(t) && !asOf.After(now) {
			t = asOf
		}
	}
	return t
}
