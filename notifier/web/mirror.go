package web

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Mirror writes the status page as static files that stand alone: every
// page in both languages with relative links (see links.go for the
// layout), the feeds, the status JSON and the style sheet. Served from
// file://, any static server or an object store, with Varsel and NATS both
// down, every link resolves.
type Mirror struct {
	s *server
	h http.Handler
}

// mirrorLanguages are the languages the mirror holds.
var mirrorLanguages = []string{"en", "nb"}

// NewMirror returns a mirror of the pages the handler of New serves.
func NewMirror(cfg Config, deps Deps, logger *slog.Logger) *Mirror {
	s := newServer(cfg, deps, logger)
	return &Mirror{s: s, h: s.handler()}
}

// Write writes the mirror into dir, each file replaced whole (written
// aside, then renamed), and removes the pages of incidents that are gone.
// It returns the number of files written.
func (m *Mirror) Write(ctx context.Context, dir string) (int, error) {
	if !m.s.deps.Status.Freshness().Synced {
		return 0, fmt.Errorf("status not read yet")
	}
	def := m.s.cfg.DefaultLocale
	if !slices.Contains(mirrorLanguages, def) {
		def = "en"
	}
	type page struct {
		file, path, base, own string
		both                  bool
	}
	pages := []page{
		{"index.html", "/?lang=" + def, "", "index.html", false},
		{"404.html", "/404?lang=" + def, "", "index.html", true},
	}
	for _, lang := range mirrorLanguages {
		pages = append(pages,
			page{lang + "/index.html", "/?lang=" + lang, "../", "index.html", false},
			page{lang + "/feed.atom", "/feed.atom?lang=" + lang, "../", "feed.atom", false})
		for _, st := range m.s.deps.Status.Incidents() {
			id := st.Incident.ID
			pages = append(pages, page{lang + "/incidents/" + id + ".html", "/incidents/" + id + "?lang=" + lang, "../../", "incidents/" + id + ".html", false})
			for _, l := range st.Letters {
				pages = append(pages, page{lang + "/letters/" + l + ".html", "/letters/" + l + "?lang=" + lang, "../../", "letters/" + l + ".html", false})
			}
		}
	}
	pages = append(pages, page{"api/v1/status.json", "/api/v1/status", "../../", "", false})
	written := map[string]bool{}
	for _, p := range pages {
		if written[p.file] {
			continue // a letter about two incidents
		}
		req := httptest.NewRequestWithContext(withMirror(ctx, mirrorPage{base: p.base, file: p.own, both: p.both}), http.MethodGet, p.path, nil)
		rec := httptest.NewRecorder()
		m.h.ServeHTTP(rec, req)
		want := http.StatusOK
		if p.file == "404.html" {
			want = http.StatusNotFound
		}
		if rec.Code != want {
			return len(written), fmt.Errorf("mirror %s: %s answered %d", p.file, p.path, rec.Code)
		}
		if err := writeFileAtomic(filepath.Join(dir, filepath.FromSlash(p.file)), rec.Body.Bytes()); err != nil {
			return len(written), err
		}
		written[p.file] = true
	}
	static, _ := fs.Sub(pageFS, "pages/static")
	err := fs.WalkDir(static, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(static, path)
		if err != nil {
			return err
		}
		written["static/"+path] = true
		return writeFileAtomic(filepath.Join(dir, "static", filepath.FromSlash(path)), b)
	})
	if err != nil {
		return len(written), err
	}
	// Pages of incidents and letters no longer there.
	for _, lang := range mirrorLanguages {
		for _, sub := range []string{"incidents", "letters"} {
			entries, _ := os.ReadDir(filepath.Join(dir, lang, sub))
			for _, e := range entries {
				rel := lang + "/" + sub + "/" + e.Name()
				if !e.IsDir() && strings.HasSuffix(e.Name(), ".html") && !written[rel] {
					_ = os.Remove(filepath.Join(dir, lang, sub, e.Name()))
				}
			}
		}
	}
	return len(written), nil
}

// Follow writes the mirror now and again whenever what it shows changes,
// checking every interval, until ctx ends. Failures are logged and tried
// again at the next check.
func (m *Mirror) Follow(ctx context.Context, dir string, interval time.Duration) {
	last := ""
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if fp := m.fingerprint(); fp != last && m.s.deps.Status.Freshness().Synced {
			start := time.Now()
			if n, err := m.Write(ctx, dir); err != nil {
				m.s.logger.Warn("static mirror not written", "dir", dir, "error", err)
			} else {
				last = fp
				m.s.logger.Info("static mirror written", "dir", dir, "files", n, "took", time.Since(start).Round(time.Millisecond))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// fingerprint changes whenever what the pages show does: an incident, an
// update, a letter, a promise falling due, or the store going away or
// coming back (the pages then say since when they may be out of date).
func (m *Mirror) fingerprint() string {
	h := sha256.New()
	now := m.s.now()
	for _, st := range m.s.deps.Status.Incidents() {
		fmt.Fprintf(h, "%s|%d|%d|%s|%v|%v|%v\n", st.Incident.ID, len(st.Updates), st.LastEventTime.UnixNano(), st.Incident.Status,
			st.ResolvedAt != nil, st.Letters, st.Overdue(now))
	}
	if f := m.s.deps.Status.Freshness(); !f.Live {
		fmt.Fprintf(h, "stale since %d\n", f.AsOf.Unix())
	}
	return hex.EncodeToString(h.Sum(nil))
}

// writeFileAtomic replaces path with b, so a reader of the mirror never
// sees half a file.
func writeFileAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	return nil
}
