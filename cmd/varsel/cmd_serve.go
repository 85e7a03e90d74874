package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/varsel/varsel/examples"
	"github.com/varsel/varsel/notifier"
	"github.com/varsel/varsel/notifier/jetstream"
)

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer, demo bool) error {
	name, about := "serve", "Run the service: the status page, the console, the admin API and the pipeline.\nEvery flag is also an environment variable (in parentheses)."
	if demo {
		name, about = "demo", "Run the service with the demo subscribers and replay the example scenarios into the outbox\n(in ./data/demo unless VARSEL_DATA_DIR or --data-dir say otherwise)."
	}
	fs := newFlags("varsel "+name, "varsel "+name+" [flags]", about, stdout)
	var cfg Config
	flagErrs := cfg.bindFlags(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: varsel %s takes flags only, not %q (see 'varsel %s -h')", errUsage, name, pos[0], name)
	}
	ownURL := ownNATSURL(fs, &cfg)
	if demo {
		// The demo's webhook subscribers point at serve's own receiver
		// (demoWebhookPath): the outbox without SMTP or Twilio, real,
		// verified deliveries with them.
		// Its own store, so replaying the examples never mixes them into
		// a real one (and a running serve's directory lock is not hit).
		set := false
		fs.Visit(func(f *flag.Flag) { set = set || f.Name == "data-dir" })
		if !set && os.Getenv("VARSEL_DATA_DIR") == "" {
			cfg.DataDir = demoDataDir
		}
		// The example components by name, unless a site file is given.
		site, err := examples.Site()
		if err != nil {
			return err
		}
		cfg.site = site
	}
	if err := errors.Join(flagErrs(), cfg.Validate()); err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	logger := cfg.logger(stderr)
	warnPublicURL(logger, cfg.PublicURL)
	if ownURL != "" {
		logger.Info("VARSEL_NATS_URL names this serve's own VARSEL_NATS_LISTEN address: running the embedded NATS server there", "url", redactURL(ownURL))
	}
	svc, err := start(ctx, cfg, logger)
	if err != nil {
		return explainExternalNATS(err, cfg.NATSURL)
	}
	warnLinks(logger, cfg.PublicURL, svc.listener.Addr())
	if demo {
		go func() {
			if err := replayDemo(ctx, svc, stderr); err != nil {
				logger.Error("demo", "error", err)
			}
		}()
	}
	defer startMemoryLimit(ctx)()
	return svc.run(ctx)
}

// demoDataDir is where `varsel demo` keeps its store and outbox unless
// VARSEL_DATA_DIR says otherwise: beside serve's ./data, never in it.
const demoDataDir = "./data/demo"

// replayDemo imports the demo subscribers and publishes every example
// scenario (the two seeds and a maintenance window), then says where to look.
func replayDemo(ctx context.Context, svc *service, out io.Writer) error {
	f, err := examples.FS.Open(examples.SubscribersFile)
	if err != nil {
		return err
	}
	defer f.Close()
	subs, bad, err := notifier.ReadSubscribersCSV(f)
	if err != nil || len(bad) > 0 {
		return fmt.Errorf("demo subscribers: %v %v", err, bad)
	}
	for _, s := range subs {
		if err := svc.conn.Subscribers.Put(ctx, s); err != nil {
			return err
		}
	}
	var published []string
	for _, name := range examples.Names() {
		files, err := examples.Files(name)
		if err != nil {
			return err
		}
		for _, file := range files {
			raw, err := examples.FS.ReadFile(file)
			if err != nil {
				return err
			}
			ev, err := svc.conn.PublishEvent(ctx, raw)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			published = append(published, ev.ID)
		}
	}
	// Wait until the pipeline is done, so the summary points at files that exist.
	if err := waitReplayed(ctx, svc, published, demoWait); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		fmt.Fprintf(out, "\nVarsel demo: %v; the outbox may still be filling.\n", err)
	}
	box := filepath.Join(svc.cfg.DataDir, "outbox")
	fmt.Fprintf(out, `
Varsel demo: %d subscribers, %d events from examples/ (%s).
  email     %s/email/<event>/<subscriber>.eml
  sms       %s/sms.jsonl
  webhooks  %s/webhook.jsonl
  status    %s/   (try ?lang=nb, /incidents/styreweb-login-2019-09, /feed.atom)
Ctrl-C stops it.
`, len(subs), len(published), strings.Join(examples.Names(), ", "), box, box, box, svc.cfg.PublicURL)
	return nil
}

// demoWait bounds how long the demo waits for its events to be sent.
const demoWait = 30 * time.Second

// waitReplayed polls until every event is planned and no delivery job is
// left in the work queue (a job leaves it when it is acknowledged), or
// until the deadline.
func waitReplayed(ctx context.Context, svc *service, eventIDs []string, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	pending := slices.Clone(eventIDs)
	for {
		pending = slices.DeleteFunc(pending, func(id string) bool {
			rec, err := svc.conn.Events.Get(ctx, id)
			return err == nil && rec.PlannedAt != nil
		})
		if len(pending) == 0 {
			if jobs, err := queuedJobs(ctx, svc); err == nil && jobs == 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if len(pending) > 0 {
				return fmt.Errorf("%d of %d events not planned after %s", len(pending), len(eventIDs), within)
			}
			return fmt.Errorf("deliveries still queued after %s", within)
		case <-tick.C:
		}
	}
}

// queuedJobs counts the jobs on the delivery work queue: waiting, in
// flight, or waiting for a retry.
func queuedJobs(ctx context.Context, svc *service) (uint64, error) {
	st, err := svc.conn.JS.Stream(ctx, jetstream.DeliveriesStream)
	if err != nil {
		return 0, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}
