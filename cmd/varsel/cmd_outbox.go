package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/varsel/varsel/channels/outbox"
	"github.com/varsel/varsel/examples"
	"github.com/varsel/varsel/notifier"
)

const outboxUsage = `Usage: varsel outbox prune [--keep D] [--data-dir DIR]

Remove from the outbox ($VARSEL_DATA_DIR/outbox) what was written more than
--keep ago: email files (and the event directories left empty), and the
lines of sms.jsonl and webhook.jsonl. serve does the same every 10 minutes
with VARSEL_OUTBOX_KEEP. Safe while serve runs.
`

// cmdOutbox is `varsel outbox prune`.
func cmdOutbox(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: varsel outbox needs a command (prune)\n\n%s", errUsage, outboxUsage)
	}
	if outboxHelpArg(args[0]) {
		fmt.Fprint(stdout, outboxUsage)
		return nil
	}
	if args[0] != "prune" {
		return fmt.Errorf("%w: unknown outbox command %q (want prune)\n\n%s", errUsage, args[0], outboxUsage)
	}
	fs := flag.NewFlagSet("varsel outbox prune", flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), outboxUsage+"\nFlags:\n")
		fs.PrintDefaults()
	}
	defKeep := cmp.Or(os.Getenv("VARSEL_OUTBOX_KEEP"), "168h")
	keepText := fs.String("keep", defKeep, "remove what is older than this, such as 168h or 30m; 0 removes nothing (VARSEL_OUTBOX_KEEP)")
	dataDir := fs.String("data-dir", cmp.Or(os.Getenv("VARSEL_DATA_DIR"), "./data"), "the data directory whose outbox is pruned (VARSEL_DATA_DIR)")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: varsel outbox prune takes no arguments, got %q", errUsage, fs.Args())
	}
	keep, err := time.ParseDuration(*keepText)
	if err != nil || keep != 0 && keep < time.Minute {
		return fmt.Errorf("%w: --keep %q: want a duration of at least 1m, such as 168h, or 0", errUsage, *keepText)
	}
	dir := filepath.Join(*dataDir, "outbox")
	if keep == 0 {
		fmt.Fprintf(stdout, "keep is 0: %s is kept for ever, nothing removed\n", dir)
		return nil
	}
	p, err := outbox.Prune(dir, keep, time.Now())
	fmt.Fprintf(stdout, "pruned %s (older than %s): %s, %s, %s, %s\n", dir, outboxDuration(keep),
		outboxPlural(p.Emails, "email file"), outboxPlural(p.EventDirs, "event directory"), outboxPlural(p.SMSLines, "SMS line"), outboxPlural(p.WebhookLines, "webhook line"))
	return err
}

func outboxHelpArg(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}

func outboxPlural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	if strings.HasSuffix(what, "y") {
		return strconv.Itoa(n) + " " + strings.TrimSuffix(what, "y") + "ies"
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// outboxDuration prints 168h rather than 168h0m0s.
func outboxDuration(d time.Duration) string {
	s := d.String()
	s = strings.TrimSuffix(s, "0s")
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	if s == "" {
		return "0s"
	}
	return s
}

// pruneOutbox prunes the service's outbox at start and every
// outbox.PruneInterval until ctx ends (VARSEL_OUTBOX_KEEP; 0: never).
func (s *service) pruneOutbox(ctx context.Context) {
	keep := s.cfg.OutboxKeep
	if keep <= 0 {
		return
	}
	dir := filepath.Join(s.cfg.DataDir, "outbox")
	tick := time.NewTicker(outbox.PruneInterval)
	defer tick.Stop()
	for {
		p, err := outbox.Prune(dir, keep, time.Now())
		if err != nil {
			s.logger.Warn("outbox prune", "dir", dir, "error", err)
		}
		if p.Total() > 0 {
			s.logger.Info("outbox pruned", "dir", dir, "keep", keep.String(), "emails", p.Emails, "event_dirs", p.EventDirs,
				"sms_lines", p.SMSLines, "webhook_lines", p.WebhookLines)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// demoWebhookPath is where Varsel's own listener receives the demo
// subscribers' webhooks (examples/subscribers.csv), so they succeed when
// webhooks are sent for real (SMTP or Twilio configured): the webhook
// channel may call exactly this URL on its own loopback listener
// (webhook.Config.Self) and no other private target.
const demoWebhookPath = "/demo/webhook"

// selfWebhookURLs are the URLs of the demo receiver on this service's own
// listener as a loopback caller reaches it, or none when the listener is
// not on loopback.
func selfWebhookURLs(l net.Listener) []string {
	a, ok := l.Addr().(*net.TCPAddr)
	if !ok || !a.IP.IsLoopback() && !a.IP.IsUnspecified() {
		return nil
	}
	port := strconv.Itoa(a.Port)
	if a.IP.To4() == nil && !a.IP.IsUnspecified() {
		return []string{"http://[::1]:" + port + demoWebhookPath}
	}
	return []string{"http://127.0.0.1:" + port + demoWebhookPath}
}

// demoWebhook receives the demo subscribers' webhooks: it answers 204 to
// a request signed with one of their secrets (from the examples, public
// in the repository), 401 to any other, and 404 to callers not on
// loopback, so it shows nothing to the world.
func demoWebhook(logger *slog.Logger) http.Handler {
	var (
		once  sync.Once
		hooks []*standardwebhooks.Webhook
	)
	load := func() {
		f, err := examples.FS.Open(examples.SubscribersFile)
		if err != nil {
			return
		}
		defer f.Close()
		subs, _, _ := notifier.ReadSubscribersCSV(f)
		for _, s := range subs {
			if !strings.HasSuffix(s.WebhookURL, demoWebhookPath) {
				continue
			}
			if wh, err := standardwebhooks.NewWebhook(s.WebhookSecret); err == nil {
				hooks = append(hooks, wh)
			}
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			http.NotFound(w, r)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		once.Do(load)
		for _, wh := range hooks {
			if wh.Verify(body, r.Header) == nil {
				logger.Debug("demo webhook received", "webhook_id", r.Header.Get("webhook-id"))
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		http.Error(w, "signature does not verify with a demo subscriber's secret", http.StatusUnauthorized)
	})
}
