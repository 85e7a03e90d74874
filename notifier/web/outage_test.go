package web

import (
	"context"
	"encoding/json"
	"go/parser"
	"go/token"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/varsel/varsel/notifier"
	"github.com/varsel/varsel/notifier/jetstream"
	"github.com/varsel/varsel/notifier/render"
)

// TestPagesOutliveNATS: with the NATS server stopped under a running page,
// the status page, an incident page, the feed and the status JSON still
// answer 200 with the last known state and say since when it is known;
// /readyz says the truth. When NATS is back the pages follow it again.
func TestPagesOutliveNATS(t *testing.T) {
	dir := t.TempDir()
	logger := slog.New(slog.DiscardHandler)
	srv, err := jetstream.StartServer(dir, "127.0.0.1:0", logger)
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(srv.ClientURL(), "nats://")
	conn, err := jetstream.Connect(context.Background(), jetstream.Config{URL: srv.ClientURL()}, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	tokens, _ := notifier.NewTokens([]byte("0123456789abcdef0123456789abcdef"))
	r, err := render.New(render.Config{PublicURL: "http://status.example.com", DefaultLocale: "en", DefaultTimezone: "Europe/Oslo"}, tokens, logger)
	if err != nil {
		t.Fatal(err)
	}
	deps, status := fixtureDeps(t, conn)
	deps.Localizer, deps.Tokens = r, tokens
	h := New(Config{PublicURL: "http://status.example.com", DefaultLocale: "en", DefaultTimezone: "Europe/Oslo"}, deps, logger)
	f := &fixture{srv: httptest.NewServer(h), conn: conn, status: status, tokens: tokens}
	t.Cleanup(f.srv.Close)

	ev, err := notifier.DecodeEvent([]byte(`{"id":"o1","type":"incident.opened","time":"2019-09-17T10:00:00+02:00","incident":{"id":"inc","title":{"en":"Login problems"},"status":"identified","impact":"major","components":["web"],"started_at":"2019-09-16T07:50:00+02:00","message":{"en":"Still working."}}}`))
	if err != nil {
		t.Fatal(err)
	}
	f.update(t, "inc", func(s *notifier.IncidentState) error { s.Apply(ev); return nil })

	srv.Shutdown()
	srv.WaitForShutdown()
	waitUntil(t, "the pages to notice NATS is gone", func() bool { return !status.Freshness().Live })

	for _, path := range []string{"/", "/incidents/inc", "/feed.atom", "/api/v1/status"} {
		start := time.Now()
		res, body := f.do(t, http.MethodGet, path, "", nil)
		if res.StatusCode != 200 || !strings.Contains(body, "Login problems") {
			t.Errorf("%s with NATS down: %d %q", path, res.StatusCode, body[:min(len(body), 200)])
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("%s took %s with NATS down", path, took)
		}
	}
	_, page := f.do(t, http.MethodGet, "/", "", nil)
	if !strings.Contains(page, "This page may not be up to date: it was last brought up to date at") {
		t.Errorf("the page does not say it may be out of date:\n%s", page)
	}
	_, js := f.do(t, http.MethodGet, "/api/v1/status", "", nil)
	var st struct {
		Stale bool      `json:"stale"`
		AsOf  time.Time `json:"as_of"`
	}
	if err := json.Unmarshal([]byte(js), &st); err != nil || !st.Stale || st.AsOf.IsZero() {
		t.Errorf("status JSON with NATS down: %s", js)
	}
	if res, _ := f.do(t, http.MethodGet, "/readyz", "", nil); res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("readyz with NATS down: %d, want 503", res.StatusCode)
	}

	// NATS comes back on the same address and store: the pages follow it.
	srv2, err := jetstream.StartServer(dir, addr, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv2.Shutdown(); srv2.WaitForShutdown() })
	waitUntil(t, "the pages to follow NATS again", func() bool { return status.Freshness().Live })
	up, err := notifier.DecodeEvent([]byte(`{"id":"o2","type":"incident.resolved","time":"2019-09-17T12:00:00+02:00","incident":{"id":"inc","title":{"en":"Login problems"},"status":"resolved","impact":"none","components":["web"],"started_at":"2019-09-16T07:50:00+02:00","message":{"en":"Fixed."}}}`))
	if err != nil {
		t.Fatal(err)
	}
	f.update(t, "inc", func(s *notifier.IncidentState) error { s.Apply(up); return nil })
	_, page = f.do(t, http.MethodGet, "/incidents/inc", "", nil)
	if !strings.Contains(page, "Fixed.") || strings.Contains(page, "may not be up to date") {
		t.Errorf("after NATS came back the page is not current:\n%s", page)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWebKnowsNoBroker: the HTTP layer reads the status through
// notifier.StatusReader and acts through notifier.Operator; none of its
// files imports the NATS layer.
func TestWebKnowsNoBroker(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		parsed, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range parsed.Imports {
			if strings.Contains(imp.Path.Value, "notifier/jetstream") || strings.Contains(imp.Path.Value, "nats-io") {
				t.Errorf("%s imports %s", f, imp.Path.Value)
			}
		}
	}
}
