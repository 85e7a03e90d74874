package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/varsel/varsel/channels/email"
	"github.com/varsel/varsel/channels/outbox"
	"github.com/varsel/varsel/notifier"
	"github.com/varsel/varsel/notifier/render"
)

// offlineRenderer renders without a running service; its unsubscribe
// links are signed with a throwaway key, so they are for looking at only.
func offlineRenderer(logger *slog.Logger) (*render.Renderer, error) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	tokens, err := notifier.NewTokens(key)
	if err != nil {
		return nil, err
	}
	// The site's name and components, as serve names them in what it
	// sends: a preview without them showed another footer than the one sent.
	site, err := siteFromEnv()
	if err != nil {
		return nil, err
	}
	return render.New(render.Config{PublicURL: envOr("VARSEL_PUBLIC_URL", "http://localhost:8080"),
		DefaultLocale: envOr("VARSEL_DEFAULT_LOCALE", "en"), DefaultTimezone: envOr("VARSEL_TIMEZONE", "Europe/Oslo"),
		TemplatesDir: os.Getenv("VARSEL_TEMPLATES_DIR"), Site: site}, tokens, logger)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// letterGroup is `varsel letter`.
var letterGroup = group{name: "letter", about: "Write to every subscriber (letter.broadcast events): read it first, count who gets it, send it.", subs: []subcommand{
	{"preview", "FILE [--locale nb] [--channel email|sms|webhook]", "print the letter as one reader gets it, offline"},
	{"send", "FILE [--watch] [--dry-run | --test-to ADDRESS]", "send the letter; --dry-run counts who would get it and sends nothing, --test-to emails one address only"},
}}

func cmdLetter(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd, args, err := letterGroup.pick(args, stdout)
	if err != nil {
		return err
	}
	sub := cmd.name
	fs := letterGroup.flags(cmd, stdout)
	whose := "the reader"
	if sub == "send" {
		whose = "the --test-to email"
	}
	locale := fs.String("locale", "en", "language of "+whose)
	timezone := fs.String("timezone", "", "time zone of "+whose+" (default VARSEL_TIMEZONE)")
	channel := new(string)
	var natsURL *natsTarget
	dryRun, testTo, watch := new(bool), new(string), new(bool)
	if sub == "preview" {
		channel = fs.String("channel", "email", "channel to preview: email, sms or webhook")
	} else {
		natsURL = natsFlag(fs)
		dryRun = fs.Bool("dry-run", false, "count who would get the letter; send nothing")
		testTo = fs.String("test-to", "", "send the letter only to this email address, to read it first")
		watch = fs.Bool("watch", false, "follow the deliveries until they are done: counts, rate, time left")
	}
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: varsel letter %s FILE (.json or .toml, - for stdin)", errUsage, sub)
	}
	if *dryRun && *testTo != "" {
		return fmt.Errorf("%w: --dry-run sends nothing and --test-to sends one email: use one of them (nothing sent)", errUsage)
	}
	if *watch && (*dryRun || *testTo != "") {
		return fmt.Errorf("%w: --watch follows a real send: not with --dry-run or --test-to", errUsage)
	}
	raw, ev, err := readEvent(pos[0], stdin)
	if err != nil {
		return err
	}
	logger := newLogger(stderr)
	reader := &notifier.Subscriber{ID: "preview", Name: "Kari Nordmann", Locale: *locale, Timezone: *timezone}
	switch sub {
	case "preview":
		r, err := offlineRenderer(logger)
		if err != nil {
			return err
		}
		m, err := r.Render(ev, nil, reader, notifier.ChannelName(*channel))
		if err != nil {
			return err
		}
		switch notifier.ChannelName(*channel) {
		case notifier.Email:
			fmt.Fprintf(stdout, "Subject: %s\nContent-Language: %s\n\n%s\n", m.Subject, m.Locale, m.Text)
		case notifier.SMS:
			fmt.Fprintf(stdout, "%s\n(%d segment(s))\n", m.SMS, m.Segments)
		default:
			fmt.Fprintln(stdout, m.WebhookText)
		}
		return nil
	case "send":
		if ev.Type != notifier.LetterBroadcast {
			return fmt.Errorf("%s is %s event; `letter send` sends letter.broadcast (use `varsel publish` for the rest)", pos[0], withArticle(string(ev.Type)))
		}
		if *testTo != "" {
			return sendTest(ctx, ev, reader, *testTo, logger, stdout)
		}
		c, err := connect(ctx, natsURL)
		if err != nil {
			return err
		}
		defer c.Close()
		if *dryRun {
			planner := &notifier.Planner{Subscribers: c.Subscribers, Policy: notifier.DefaultPolicy{}}
			audience, err := planner.Audience(ctx, ev, nil, envOr("VARSEL_DEFAULT_LOCALE", "en"))
			if err != nil {
				return err
			}
			var keys []string
			for ch, langs := range audience {
				for lang := range langs {
					keys = append(keys, string(ch)+" "+lang)
				}
			}
			sort.Strings(keys)
			fmt.Fprintf(stdout, "dry run: letter %s would go out as:\n", ev.ID)
			for _, k := range keys {
				ch, lang, _ := strings.Cut(k, " ")
				fmt.Fprintf(stdout, "  %-12s %d\n", k, audience[notifier.ChannelName(ch)][lang])
			}
			if len(keys) == 0 {
				fmt.Fprintln(stdout, "  nobody: no subscriber follows the letter's audience")
			}
			return nil
		}
		return publishAndWatch(ctx, c, raw, *watch, stdout)
	}
	return fmt.Errorf("%w: unknown letter command %q", errUsage, sub)
}

// sendTest emails the letter to one address through VARSEL_SMTP_URL, or
// into the outbox when that is not set.
func sendTest(ctx context.Context, ev *notifier.Event, reader *notifier.Subscriber, to string, logger *slog.Logger, stdout io.Writer) error {
	reader.Email = to
	if err := reader.Validate(); err != nil {
		return fmt.Errorf("--test-to: %w", err)
	}
	r, err := offlineRenderer(logger)
	if err != nil {
		return err
	}
	m, err := r.Render(ev, nil, reader, notifier.Email)
	if err != nil {
		return err
	}
	var ch notifier.Channel
	from := envOr("VARSEL_MAIL_FROM", email.DefaultFrom)
	if url := os.Getenv("VARSEL_SMTP_URL"); url != "" {
		cfg, err := email.ParseURL(url)
		if err != nil {
			return fmt.Errorf("VARSEL_SMTP_URL: %w", err)
		}
		cfg.From = from
		ec, err := email.New(cfg, logger)
		if err != nil {
			return err
		}
		defer ec.Close()
		ch = ec
	} else {
		oc, err := outbox.New(outbox.Config{Dir: filepath.Join(envOr("VARSEL_DATA_DIR", "./data"), "outbox"), From: from}, notifier.Email, logger)
		if err != nil {
			return err
		}
		defer oc.Close()
		ch = oc
	}
	d := &notifier.Delivery{ID: notifier.DeliveryID(ev.ID+"-test", reader.ID, notifier.Email), Channel: notifier.Email,
		Event:      &notifier.Event{ID: ev.ID + "-test-" + time.Now().UTC().Format("20060102T150405"), Type: ev.Type, Time: ev.Time, Letter: ev.Letter},
		Subscriber: reader, Message: m, Attempt: 1}
	receipt, _, err := ch.Notify(ctx, d)
	if err != nil {
		return fmt.Errorf("test send: %w", err)
	}
	fmt.Fprintf(stdout, "test letter sent to %s (%s) via %s\n", to, receipt.ProviderID, ch.Name())
	return nil
}

// withArticle puts "a" or "an" before word: "an incident.updated".
func withArticle(word string) string {
	if word != "" && strings.ContainsRune("aeiouAEIOU", rune(word[0])) {
		return "an " + word
	}
	return "a " + word
}
