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
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/varsel/varsel/notifier/jetstream"
)

const usage = `varsel — incident notifications by email, SMS and webhook

Usage:
  varsel serve                               run the service (embedded NATS unless VARSEL_NATS_URL)
  varsel demo                                serve + demo subscribers + replay the seed scenarios into the outbox
  varsel publish FILE|- [--watch]            validate an event (.json or .toml) and publish it; --watch follows its deliveries
  varsel subscribers add|import FILE.csv|list|show ID|export ID|remove ID|enable ID --channel C
  varsel letter preview FILE --locale nb [--channel email|sms|webhook]
  varsel letter send FILE [--watch] [--dry-run | --test-to ADDRESS]
  varsel deliveries list [--event ID [--summary]] [--status failed]  |  varsel deliveries retry ID
  varsel staff add --email E --name N [--locale nb] --password-stdin | staff list | staff remove EMAIL
  varsel rejected list                       invalid events and why they were rejected
  varsel status export DIR                   write the static mirror: every page in both languages, feeds, JSON
  varsel templates check                     every template renders in every locale
  varsel outbox prune [--keep D]             remove outbox files and lines older than D (default VARSEL_OUTBOX_KEEP, 168h)
  varsel bench [--subscribers N] [--channels email,webhook,sms] [--events N] [--repeat N] [--json]
                                             fan out through the real pipeline to in-process sinks; rate as % of their raw capacity
  varsel version                             version, commit, Go and NATS server versions
  varsel healthcheck [--url URL]             exit 0 when the local serve answers /readyz (for containers without a shell)

Every command and subcommand answers -h with its own arguments and flags ('varsel help COMMAND' too).
The commands that talk to NATS find a serve on this machine by itself ($VARSEL_DATA_DIR/nats/varsel.json,
else VARSEL_NATS_LISTEN); --nats URL or VARSEL_NATS_URL, and --context FILE or VARSEL_NATS_CONTEXT, say otherwise.
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
	err := dispatch(ctx, args, stdin, stdout, stderr)
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}

func dispatch(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: no command", errUsage)
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return cmdServe(ctx, rest, stdout, stderr, false)
	case "demo":
		return cmdServe(ctx, rest, stdout, stderr, true)
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
	case "version":
		return cmdVersion(rest, stdout)
	case "healthcheck":
		return cmdHealthcheck(ctx, rest, stdout)
	case "help", "-h", "-help", "--help":
		if cmd == "help" && len(rest) > 0 && !isHelp(rest[0]) {
			// varsel help COMMAND [SUBCOMMAND]: that command's own -h.
			return dispatch(ctx, append(slices.Clone(rest), "-h"), stdin, stdout, stderr)
		}
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
	if len(args) == 1 && args[0] == "help" {
		fs.Usage()
		return nil, errHelp
	}
	// The flag package would print its errors and the usage itself: help
	// goes to the flag set's output (stdout), errors to the caller.
	out := fs.Output()
	fs.SetOutput(io.Discard)
	defer fs.SetOutput(out)
	var pos []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(out)
			fs.Usage()
			return nil, errHelp
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v (see '%s -h')", errUsage, err, fs.Name())
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

// defaultNATS is where a serve on this machine listens when nothing says otherwise.
const defaultNATS = "nats://127.0.0.1:4222"

func natsFlag(fs *flag.FlagSet) *natsTarget {
	t := &natsTarget{fs: fs}
	fs.StringVar(&t.url, "nats", os.Getenv("VARSEL_NATS_URL"),
		"NATS URL of the running serve (VARSEL_NATS_URL; default the context file's url, else VARSEL_NATS_LISTEN's address, else "+defaultNATS+")")
	fs.StringVar(&t.context, "context", os.Getenv("VARSEL_NATS_CONTEXT"),
		"nats context file or .creds file to connect with (VARSEL_NATS_CONTEXT; default $VARSEL_DATA_DIR/nats/varsel.json when it exists)")
	return t
}

// resolve returns the URL, where it came from ("" for the default), and the credentials: the
// context file given, or the embedded server's own (varsel.json in the
// data directory) when there is one. The URL is the first of --nats,
// VARSEL_NATS_URL, the context file's url, VARSEL_NATS_LISTEN's address
// and nats://127.0.0.1:4222.
func (t *natsTarget) resolve() (url, from string, creds jetstream.Credentials, err error) {
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
	given := false
	t.fs.Visit(func(f *flag.Flag) { given = given || f.Name == "nats" })
	switch {
	case given:
		url, from = t.url, "--nats"
	case t.url != "":
		url, from = t.url, "VARSEL_NATS_URL"
	}
	if path != "" {
		var ctxURL string
		if ctxURL, creds, err = jetstream.LoadContext(path); err != nil {
			return "", "", jetstream.Credentials{}, fmt.Errorf("%w (--context or VARSEL_NATS_CONTEXT)", err)
		}
		if from == "" && ctxURL != "" {
			url, from = ctxURL, path
		}
	}
	if from == "" {
		if u := listenURL(os.Getenv("VARSEL_NATS_LISTEN")); u != "" {
			url, from = u, "VARSEL_NATS_LISTEN"
		} else {
			url = defaultNATS
		}
	}
	return url, from, creds, nil
}

// listenURL is the URL a client on this machine reaches a server
// listening on addr (host:port) at: an unspecified host is 127.0.0.1.
// It is empty when addr is empty, malformed or has port 0.
func listenURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" || port == "0" {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "nats://" + net.JoinHostPort(host, port)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
