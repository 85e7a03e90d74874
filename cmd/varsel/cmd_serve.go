package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/varsel/varsel/examples"
	"github.com/varsel/varsel/notifier"
)

func cmdServe(ctx context.Context, args []string, stderr io.Writer, demo bool) error {
	name := "serve"
	if demo {
		name = "demo"
	}
	fs := flag.NewFlagSet("varsel "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	flagErrs := cfg.bindFlags(fs)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if demo {
		// The demo's webhook subscribers point at 127.0.0.1:9999, where
		// nothing listens: their webhooks go to the outbox instead.
		cfg.WebhookOutbox = "true"
	}
	if err := errors.Join(flagErrs(), cfg.Validate()); err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	logger := newLogger(stderr)
	svc, err := start(ctx, cfg, logger)
	if err != nil {
		return err
	}
	if demo {
		go func() {
			if err := replayDemo(ctx, svc, stderr); err != nil {
				logger.Error("demo", "error", err)
			}
		}()
	}
	return svc.run(ctx)
}

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
	published := 0
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
			if _, err := svc.conn.PublishEvent(ctx, raw); err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			published++
		}
	}
	// Give the pipeline a moment so the summary points at files that exist.
	select {
	case <-ctx.Done():
		return nil
	case <-time.After(2 * time.Second):
	}
	box := filepath.Join(svc.cfg.DataDir, "outbox")
	fmt.Fprintf(out, `
Varsel demo: %d subscribers, %d events from examples/ (%s).
  email     %s/email/<event>/<subscriber>.eml
  sms       %s/sms.jsonl
  webhooks  %s/webhook.jsonl
  status    %s/   (try ?lang=nb, /incidents/styreweb-login-2019-09, /feed.atom)
Ctrl-C stops it.
`, len(subs), published, strings.Join(examples.Names(), ", "), box, box, box, svc.cfg.PublicURL)
	return nil
}
