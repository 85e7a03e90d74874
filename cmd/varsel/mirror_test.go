package main

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestMirrorServedAloneWithVarselDown: serve keeps a mirror in
// VARSEL_EXPORT_DIR that follows a publish; after serve stops, `status
// export` writes one from the store alone; served by a plain static file
// server, every link of every page answers 200.
func TestMirrorServedAloneWithVarselDown(t *testing.T) {
	mirror := t.TempDir()
	dataDir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cfg := testConfig(dataDir)
	cfg.ExportDir = mirror
	svc, err := start(ctx, cfg, newLogger(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.run(ctx) }()
	t.Setenv("VARSEL_NATS_CONTEXT", filepath.Join(dataDir, "nats", "varsel.json"))
	nats := svc.conn.ClientURL()
	if out, err := varsel(t, "publish", "../../examples/styreweb/01-2019-09-16-1100-opened.json", "--nats", nats); err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	page := filepath.Join(mirror, "nb", "incidents", "styreweb-login-2019-09.html")
	waitFor(t, "the mirror to hold the incident", func() bool { _, err := os.Stat(page); return err == nil })
	if out, err := varsel(t, "publish", "../../examples/styreweb/02-2019-09-16-1127-updated.json", "--nats", nats); err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	waitFor(t, "the mirror to follow the update", func() bool {
		b, _ := os.ReadFile(page)
		return strings.Count(string(b), `class="card`) >= 2
	})
	cancel()
	<-done

	// Varsel and its NATS are down: export from the store itself.
	t.Setenv("VARSEL_NATS_CONTEXT", "")
	t.Setenv("VARSEL_DATA_DIR", dataDir)
	exported := t.TempDir()
	out, err := varsel(t, "status", "export", exported, "--nats", "nats://127.0.0.1:1")
	if err != nil || !strings.Contains(out, "wrote") {
		t.Fatalf("status export with serve stopped: %v\n%s", err, out)
	}
	for _, dir := range []string{mirror, exported} {
		static := httptest.NewServer(http.FileServer(http.Dir(dir)))
		seen := crawl(t, static.URL+"/index.html")
		static.Close()
		for _, want := range []string{"/nb/index.html", "/en/index.html", "/nb/incidents/styreweb-login-2019-09.html",
			"/en/incidents/styreweb-login-2019-09.html", "/static/status.css", "/nb/feed.atom"} {
			if !seen[static.URL+want] {
				t.Errorf("%s: the crawl from index.html never reached %s (%d pages)", dir, want, len(seen))
			}
		}
	}
}

// crawl follows every link of every HTML page reachable from start on its
// host, and fails for any answer but 200; it returns what it reached.
func crawl(t *testing.T, start string) map[string]bool {
	t.Helper()
	ref := regexp.MustCompile(`(?:href|src)="([^"]*)"`)
	seen := map[string]bool{start: true}
	queue := []string{start}
	host, _ := url.Parse(start)
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		res, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", u, res.StatusCode)
			continue
		}
		if !strings.HasSuffix(u, ".html") {
			continue
		}
		base, _ := url.Parse(u)
		for _, m := range ref.FindAllStringSubmatch(string(body), -1) {
			next, err := base.Parse(html.UnescapeString(m[1]))
			if err != nil {
				t.Errorf("%s: bad link %q", u, m[1])
				continue
			}
			if next.Host != host.Host {
				t.Errorf("%s links off the mirror: %s", u, next)
				continue
			}
			next.Fragment = ""
			if !seen[next.String()] {
				seen[next.String()] = true
				queue = append(queue, next.String())
			}
		}
	}
	return seen
}
