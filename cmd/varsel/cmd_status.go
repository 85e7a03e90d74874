package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/varsel/varsel/examples"
	"github.com/varsel/varsel/notifier"
	"github.com/varsel/varsel/notifier/web"
)

// cmdStatus writes the status page, incident pages, feed and JSON as
// static files, through the same handlers the server uses.
func cmdStatus(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "export" {
		return fmt.Errorf("%w: varsel status export DIR", errUsage)
	}
	fs := flag.NewFlagSet("varsel status export", flag.ContinueOnError)
	natsURL := natsFlag(fs)
	pos, err := parse(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: varsel status export DIR", errUsage)
	}
	dir := pos[0]
	c, err := connect(ctx, natsURL)
	if err != nil {
		return err
	}
	defer c.Close()
	logger := newLogger(io.Discard)
	r, err := offlineRenderer(logger)
	if err != nil {
		return err
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	tokens, _ := notifier.NewTokens(key)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	status, err := c.WatchStatus(watchCtx, logger)
	if err != nil {
		return err
	}
	h := web.New(web.Config{PublicURL: envOr("VARSEL_PUBLIC_URL", "http://localhost:8080"), DefaultLocale: envOr("VARSEL_DEFAULT_LOCALE", "en"),
		DefaultTimezone: envOr("VARSEL_TIMEZONE", "Europe/Oslo")},
		web.Deps{Status: status, Subscribers: c.Subscribers, Operator: c, Localizer: r, Tokens: tokens, Registry: prometheus.NewRegistry()}, logger)
	files := map[string]string{
		"index.html": "/", "index.en.html": "/?lang=en", "index.nb.html": "/?lang=nb",
		"feed.atom": "/feed.atom", "feed.nb.atom": "/feed.atom?lang=nb", "api/v1/status.json": "/api/v1/status",
	}
	incidents, err := c.Incidents.List(ctx)
	if err != nil {
		return err
	}
	for _, st := range incidents {
		id := st.Incident.ID
		files["incidents/"+id+".html"] = "/incidents/" + id
		files["incidents/"+id+".nb.html"] = "/incidents/" + id + "?lang=nb"
	}
	for name, path := range files {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, path, nil))
		if rec.Code != http.StatusOK {
			return fmt.Errorf("render %s: HTTP %d", path, rec.Code)
		}
		out := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(out, rec.Body.Bytes(), 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "wrote %d files to %s (%d incidents)\n", len(files), dir, len(incidents))
	return nil
}

// cmdTemplates renders every template in every locale for every example
// event and every event type, and fails on any problem.
func cmdTemplates(args []string, stdout io.Writer) error {
	if len(args) != 1 || args[0] != "check" {
		return fmt.Errorf("%w: varsel templates check", errUsage)
	}
	r, err := offlineRenderer(newLogger(io.Discard))
	if err != nil {
		return err
	}
	var events []*notifier.Event
	for _, name := range examples.Names() {
		evs, err := examples.Scenario(name)
		if err != nil {
			return err
		}
		events = append(events, evs...)
	}
	problems := r.Check(events)
	for _, p := range problems {
		fmt.Fprintln(stdout, p.String())
	}
	if len(problems) > 0 {
		return errors.New(fmt.Sprint(len(problems), " template problems"))
	}
	fmt.Fprintf(stdout, "templates ok: %d example events, every event type, every data risk with every restore state, locales %v, channels email/sms/webhook\n", len(events), []string{"en", "nb"})
	return nil
}
