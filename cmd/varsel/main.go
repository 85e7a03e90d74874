// Command varsel tells a company's customers about outages and recovery:
// it takes incident events from NATS JetStream and sends localized email,
// SMS and webhooks, and serves the public status page.
//
// Run `varsel help` for the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/varsel/varsel/notifier/jetstream"
)

const usage = `varsel — incident notifications by email, SMS and webhook

Usage:
  varsel serve                               run the service (embedded NATS unless VARSEL_NATS_URL)
  varsel demo                                serve + demo subscribers + replay the seed scenarios into the outbox
  varsel publish FILE|- [--watch]            validate an event (.json or .toml) and publish it; --watch follows its deliveries
  varsel subscribers add|import FILE.csv|list|show ID|remove ID|enable ID --channel C
  varsel letter preview FILE --locale nb [--channel email|sms|webhook]
  varsel letter send FILE [--watch] [--dry-run | --test-to ADDRESS]
  varsel deliveries list [--event ID [--summary]] [--status failed]  |  varsel deliveries retry ID
  varsel staff add --email E --name N [--locale nb] --password-stdin | staff list | staff remove EMAIL
  varsel rejected list                       invalid events and why they were rejected
  varsel status export DIR                   write the status page and feeds as static files
  varsel templates check                     every template renders in every locale
  varsel outbox prune [--keep D]             remove outbox files and lines older than D (default VARSEL_OUTBOX_KEEP, 168h)
  varsel bench [--subscribers N] [--channels email,webhook,sms] [--events N] [--json]
                                             fan out through the real pipeline to in-process sinks; rate as % of their raw capacity

Every command that talks to NATS takes --nats URL (default VARSEL_NATS_URL, else nats://127.0.0.1:4222).
Run 'varsel serve -h' for every setting and its environment variable.
`

// errUsage marks a command line that could not be understood (exit 2).
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "varsel:", err)
		os.Exit(1)
	}
}

// run executes one command line; it is main without the process around it.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: no command", errUsage)
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return cmdServe(ctx, rest, stderr, false)
	case "demo":
		return cmdServe(ctx, rest, stderr, true)
	case "publish":
		return cmdPublish(ctx, rest, stdin, stdout)
	case "subscribers":
		return cmdSubscribers(ctx, rest, stdout)
	case "deliveries":
		return cmdDeliveries(ctx, rest, stdout)
	case "rejected":
		return cmdRejected(ctx, rest, stdout)
	case "letter":
		return cmdLetter(ctx, rest, stdin, stdout, stderr)
	case "staff":
		return cmdStaff(ctx, rest, stdin, stdout)
	case "status":
		return cmdStatus(ctx, rest, stdout)
	case "templates":
		return cmdTemplates(rest, stdout)
	case "bench":
		return cmdBench(ctx, rest, stdout, stderr)
	case "outbox":
		return cmdOutbox(rest, stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("%w: unknown command %q", errUsage, cmd)
}

// newLogger writes JSON logs to w at VARSEL_LOG_LEVEL (serve: --log-level).
func newLogger(w io.Writer) *slog.Logger {
	return (&Config{LogLevel: os.Getenv("VARSEL_LOG_LEVEL")}).logger(w)
}

// parse parses flags that may come before or after positional arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// natsTarget is where a command finds the service's NATS and who it is
// there: --nats and --context, or their defaults.
type natsTarget struct {
	fs      *flag.FlagSet
	url     string
	context string
}

func natsFlag(fs *flag.FlagSet) *natsTarget {
	t := &natsTarget{fs: fs}
	def := os.Getenv("VARSEL_NATS_URL")
	if def == "" {
		def = "nats://127.0.0.1:4222"
	}
	fs.StringVar(&t.url, "nats", def, "NATS URL (VARSEL_NATS_URL; default the context's url, else nats://127.0.0.1:4222)")
	fs.StringVar(&t.context, "context", os.Getenv("VARSEL_NATS_CONTEXT"),
		"nats context file or .creds file to connect with (VARSEL_NATS_CONTEXT; default $VARSEL_DATA_DIR/nats/varsel.json when it exists)")
	return t
}

// resolve returns the URL and credentials: the context file given, or the
// embedded server's own (varsel.json in the data directory) when there is
// one; the URL given, or VARSEL_NATS_URL, or the context's.
func (t *natsTarget) resolve() (string, jetstream.Credentials, error) {
	path := t.context
	if path == "" {
		dir := os.Getenv("VARSEL_DATA_DIR")
		if dir == "" {
			dir = "data"
		}
		if p := filepath.Join(dir, jetstream.CredentialsDir, "varsel.json"); fileExists(p) {
			path = p
		}
	}
	explicit := os.Getenv("VARSEL_NATS_URL") != ""
	t.fs.Visit(func(f *flag.Flag) {
		if f.Name == "nats" {
			explicit = true
		}
	})
	if path == "" {
		return t.url, jetstream.Credentials{}, nil
	}
	url, creds, err := jetstream.LoadContext(path)
	if err != nil {
		return "", jetstream.Credentials{}, fmt.Errorf("%w (--context or VARSEL_NATS_CONTEXT)", err)
	}
	if explicit || url == "" {
		url = t.url
	}
	return url, creds, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
