package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/varsel/varsel/examples"
	"github.com/varsel/varsel/notifier"
	"github.com/varsel/varsel/notifier/jetstream"
	"github.com/varsel/varsel/notifier/web"
)

// cmdStatus writes the static mirror of the status page (web.Mirror):
// every page in both languages with relative links, the feeds and the
// JSON. It reads a running serve's NATS, or, with none running, the store
// in VARSEL_DATA_DIR itself.
// statusGroup is `varsel status`.
var statusGroup = group{name: "status", about: "The public status page, away from the service.", subs: []subcommand{
	{"export", "DIR", "write the static mirror: every page in both languages, the feeds and the JSON, with relative links"},
}}

// templatesGroup is `varsel templates`.
var templatesGroup = group{name: "templates", about: "The message templates (VARSEL_TEMPLATES_DIR, else the built-in ones).", subs: []subcommand{
	{"check", "", "render every template in every locale for every example event and event type; fail on any problem"},
}}

func cmdStatus(ctx context.Context, args []string, stdout io.Writer) error {
	cmd, args, err := statusGroup.pick(args, stdout)
	if err != nil {
		return err
	}
	fs := statusGroup.flags(cmd, stdout)
	natsURL := natsFlag(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: varsel status export DIR", errUsage)
	}
	dir := pos[0]
	logger := newLogger(io.Discard)
	c, err := connect(ctx, natsURL)
	if err != nil {
		// No serve to ask: open its store, if it is here and free.
		var lerr error
		if c, lerr = openStore(ctx, logger); lerr != nil {
			return fmt.Errorf("%w; nor could the store be opened: %v", err, lerr)
		}
	}
	defer c.Close()
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
	site, err := siteFromEnv()
	if err != nil {
		return err
	}
	mirror := web.NewMirror(web.Config{PublicURL: envOr("VARSEL_PUBLIC_URL", "http://localhost:8080"), DefaultLocale: envOr("VARSEL_DEFAULT_LOCALE", "en"),
		DefaultTimezone: envOr("VARSEL_TIMEZONE", "Europe/Oslo"), Site: site},
		web.Deps{Status: status, Subscribers: c.Subscribers, Operator: c, Localizer: r, Tokens: tokens, Registry: prometheus.NewRegistry()}, logger)
	n, err := mirror.Write(ctx, dir)
	if err != nil {
		return err
	}
	incidents := status.Incidents()
	fmt.Fprintf(stdout, "wrote %d files to %s (%d incidents)\n", n, dir, len(incidents))
	return nil
}

// cmdTemplates renders every template in every locale for every example
// event and every event type, and fails on any problem.
func cmdTemplates(args []string, stdout io.Writer) error {
	cmd, args, err := templatesGroup.pick(args, stdout)
	if err != nil {
		return err
	}
	pos, err := parse(templatesGroup.flags(cmd, stdout), args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return fmt.Errorf("%w: varsel templates check takes no arguments", errUsage)
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

// siteFromEnv reads VARSEL_SITE_FILE for a command run beside serve.
func siteFromEnv() (*notifier.Site, error) {
	path := os.Getenv("VARSEL_SITE_FILE")
	if path == "" {
		return nil, nil
	}
	site, err := notifier.LoadSite(path)
	if err != nil {
		return nil, fmt.Errorf("VARSEL_SITE_FILE: %w", err)
	}
	return site, nil
}

// openStore opens the store in VARSEL_DATA_DIR with an embedded server of
// its own, for a command run while serve is not: it takes serve's lock, so
// the two never share a store.
func openStore(ctx context.Context, logger *slog.Logger) (*jetstream.Conn, error) {
	dir := envOr("VARSEL_DATA_DIR", "./data")
	if _, err := os.Stat(filepath.Join(dir, "jetstream")); err != nil {
		return nil, fmt.Errorf("no store in %s (VARSEL_DATA_DIR)", dir)
	}
	lock, err := jetstream.LockDataDir(dir)
	if err != nil {
		return nil, err
	}
	c, err := jetstream.Connect(ctx, jetstream.Config{DataDir: dir, Listen: "127.0.0.1:0",
		EncryptionKey: os.Getenv("VARSEL_ENCRYPTION_KEY")}, logger)
	if err != nil {
		_ = lock.Unlock()
		return nil, err
	}
	c.OnClose(func() { _ = lock.Unlock() })
	return c, nil
}
