package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/varsel/varsel/notifier"
	"github.com/varsel/varsel/notifier/jetstream"
)

// testService starts `varsel serve` in-process on free loopback ports
// with its data in a temporary directory.
func testService(t *testing.T, edit func(*Config)) (*service, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := testConfig(dir)
	if edit != nil {
		edit(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	svc, err := start(ctx, cfg, newLogger(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	// The CLI on the same machine reads the service's own credentials.
	t.Setenv("VARSEL_NATS_CONTEXT", filepath.Join(dir, "nats", "varsel.json"))
	return svc, dir
}

// testConfig is a valid configuration on loopback with free ports, storing in dir.
func testConfig(dir string) Config {
	return Config{NATSListen: "127.0.0.1:0", NATSReplicas: 1, DataDir: dir, HTTPAddr: "127.0.0.1:0", PublicURL: "http://localhost:8080",
		MailFrom: "Status <status@example.com>", SMSRate: 1, DefaultLocale: "en", Timezone: "Europe/Oslo",
		TwilioAPIURL: "https://api.twilio.com", EmailBounceLimit: 3, WebhookFailureLimit: 5, AdminToken: "test-admin-token", WebhookOutbox: "auto", Secret: "0123456789abcdef0123",
		RemindBefore: 10 * time.Minute, DeliveryRetention: 720 * time.Hour}
}

func varsel(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(""), &out, &errOut)
	return out.String() + errOut.String(), err
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNewUserTour is the README's tour: serve, import the demo
// subscribers, publish an example, and find the messages in the outbox.
func TestNewUserTour(t *testing.T) {
	svc, dir := testService(t, nil)
	nats := svc.conn.ClientURL()
	out, err := varsel(t, "subscribers", "import", "../../examples/subscribers.csv", "--nats", nats, "--allow-private-webhooks")
	if err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	if !strings.Contains(out, "imported 8 subscribers") {
		t.Fatalf("import said %q", out)
	}
	// Importing again updates instead of duplicating.
	if out, err := varsel(t, "subscribers", "import", "../../examples/subscribers.csv", "--nats", nats, "--allow-private-webhooks"); err != nil {
		t.Fatalf("re-import: %v\n%s", err, out)
	}
	out, err = varsel(t, "publish", "../../examples/styreweb/01-2019-09-16-1100-opened.json", "--nats", nats)
	if err != nil || !strings.Contains(out, "published styreweb-2019-09-16-1100") {
		t.Fatalf("publish: %v %s", err, out)
	}
	emails := filepath.Join(dir, "outbox", "email", "styreweb-2019-09-16-1100")
	// Subscribers of styreweb with an email address in the demo file. An
	// email being written is a hidden temporary file beside them until
	// it is renamed: only the finished ones count.
	waitFor(t, "outbox email", func() bool {
		entries, _ := os.ReadDir(emails)
		done := 0
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".eml") && !strings.HasPrefix(e.Name(), ".") {
				done++
			}
		}
		return done >= 5
	})
	waitFor(t, "sms and webhook lines", func() bool {
		sms, _ := os.ReadFile(filepath.Join(dir, "outbox", "sms.jsonl"))
		hooks, _ := os.ReadFile(filepath.Join(dir, "outbox", "webhook.jsonl"))
		return bytes.Count(sms, []byte("\n")) >= 2 && bytes.Count(hooks, []byte("\n")) >= 1
	})
	eml, err := os.ReadFile(filepath.Join(emails, "kari-nordmann.eml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(eml, []byte("Content-Language: nb")) || !bytes.Contains(eml, []byte("List-Unsubscribe-Post")) {
		t.Errorf("outbox email lacks language or unsubscribe headers:\n%s", eml[:400])
	}
	// The delivery log stores settled records in batches (at most 10 ms
	// behind the send), so the list may trail the outbox by a moment.
	waitFor(t, "deliveries list to show sent", func() bool {
		out, err = varsel(t, "deliveries", "list", "--event", "styreweb-2019-09-16-1100", "--nats", nats)
		return err == nil && strings.Contains(out, "sent")
	})

	// The status page shows it, in Norwegian when asked.
	res, err := http.Get("http://" + svc.listener.Addr().String() + "/?lang=nb")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !bytes.Contains(page, []byte("Problemer med innlogging i StyreWeb")) {
		t.Errorf("status page does not show the incident in Norwegian")
	}
}

func TestPublishRejectsInvalidFileWithReason(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"id":"x","type":"incident.opened","time":"2019-09-16T08:00:00+02:00","incident":{"id":"i","status":"on fire"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	// No NATS is needed to refuse a bad file.
	out, err := varsel(t, "publish", bad, "--nats", "nats://127.0.0.1:1")
	if err == nil || !strings.Contains(err.Error(), "incident.status") || !strings.Contains(err.Error(), "on fire") {
		t.Fatalf("publish of a bad event: err=%v out=%s", err, out)
	}
}

func TestConfigValidateListsEveryProblem(t *testing.T) {
	cfg := Config{NATSListen: "nope", HTTPAddr: "x", PublicURL: "ftp://x", SMSRate: 0, DefaultLocale: "de",
		Timezone: "Mars/Olympus", TwilioAccountSID: "AC1", Secret: "short"}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"VARSEL_NATS_LISTEN", "VARSEL_DATA_DIR", "VARSEL_HTTP_ADDR", "VARSEL_PUBLIC_URL", "VARSEL_SECRET",
		"VARSEL_TWILIO_AUTH_TOKEN", "VARSEL_SMS_RATE", "VARSEL_DEFAULT_LOCALE", "VARSEL_TIMEZONE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
}

func TestTemplatesCheck(t *testing.T) {
	out, err := varsel(t, "templates", "check")
	if err != nil {
		t.Fatalf("templates check: %v\n%s", err, out)
	}
}

// TestRejectedListNamesTheEvent: each rejection names the event by its id
// when that can be read, with its size, so a producer finds its own.
func TestRejectedListNamesTheEvent(t *testing.T) {
	svc, _ := testService(t, nil)
	msg := []byte(`{"id":"rv-bad-1","type":"incident.opened"}`)
	if err := svc.conn.NC.Publish("varsel.events.incident.updated", msg); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`varsel.events.incident.updated event "rv-bad-1" (%d bytes)`, len(msg))
	var out string
	waitFor(t, "the rejection listed", func() bool {
		out, _ = varsel(t, "rejected", "list", "--nats", svc.conn.ClientURL())
		return strings.Contains(out, want)
	})
	if !strings.Contains(out, `type: "incident.opened" does not match the subject varsel.events.incident.updated`) {
		t.Errorf("the reason leaves out the mismatch:\n%s", out)
	}
}

// TestLetterPreviewNamesTheSite: with VARSEL_SITE_FILE the preview's
// footer names the site as the letter serve sends does (it said
// "driftsmeldinger" where the sent letter said «Driftsmeldinger»).
func TestLetterPreviewNamesTheSite(t *testing.T) {
	t.Setenv("VARSEL_SITE_FILE", filepath.Join("..", "..", "examples", "site.toml"))
	out, err := varsel(t, "letter", "preview", filepath.Join("..", "..", "examples", "led", "letter.json"), "--locale", "nb")
	if err != nil {
		t.Fatalf("letter preview: %v\n%s", err, out)
	}
	if want := "Du får denne e-posten fordi du abonnerer på «Driftsmeldinger»."; !strings.Contains(out, want) {
		t.Errorf("preview lacks %q:\n%s", want, out)
	}
	t.Setenv("VARSEL_SITE_FILE", filepath.Join(t.TempDir(), "missing.toml"))
	if out, err = varsel(t, "letter", "preview", filepath.Join("..", "..", "examples", "led", "letter.json")); err == nil || !strings.Contains(err.Error(), "VARSEL_SITE_FILE") {
		t.Errorf("preview with a missing site file: %v, want an error naming VARSEL_SITE_FILE\n%s", err, out)
	}
}

// TestDemoSummaryWaitsForThePipeline: the demo prints its summary only
// once every example event is planned and every delivery is recorded.
func TestDemoSummaryWaitsForThePipeline(t *testing.T) {
	svc, dir := testService(t, func(c *Config) { c.WebhookOutbox = "true" })
	var out bytes.Buffer
	if err := replayDemo(context.Background(), svc, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "Varsel demo: 8 subscribers") || strings.Contains(out.String(), "may still be filling") {
		t.Errorf("summary = %q", out.String())
	}
	total, unfinished := 0, 0
	err := svc.conn.Deliveries.List(context.Background(), jetstream.DeliveryFilter{}, func(r *notifier.DeliveryRecord) error {
		total++
		if !r.Status.Done() {
			unfinished++
		}
		return nil
	})
	if err != nil || total == 0 || unfinished > 0 {
		t.Errorf("at the summary: %d deliveries, %d unfinished (%v)", total, unfinished, err)
	}
	if emails, _ := filepath.Glob(filepath.Join(dir, "outbox", "email", "*", "*.eml")); len(emails) == 0 {
		t.Error("no email in the outbox at the summary")
	}
}

// TestCommandLineMistakesFailBeforeConnecting: nothing listens on the
// --nats given, so each of these must be refused (exit 2) on its own.
func TestCommandLineMistakesFailBeforeConnecting(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"deliveries", "list", "--status", "bogus"}, "--status"},
		{[]string{"deliveries", "list", "--status", "bogus"}, "undelivered"},
		{[]string{"deliveries", "list", "--event", "a.>"}, "--event"},
		{[]string{"deliveries", "foo"}, "unknown deliveries command"},
		{[]string{"deliveries", "retry"}, "retry ID"},
		{[]string{"subscribers", "foo"}, "unknown subscribers command"},
		{[]string{"subscribers", "show"}, "show ID"},
		{[]string{"subscribers", "enable", "kari"}, "--channel"},
		{[]string{"letter", "foo", "x.json"}, "unknown letter command"},
	} {
		out, err := varsel(t, append(tc.args, "--nats", "nats://127.0.0.1:1")...)
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("varsel %s: err=%v out=%s, want a usage error mentioning %q", strings.Join(tc.args, " "), err, out, tc.want)
		}
	}
}

// TestCLIDoesNotChangeStreams: CLI commands bind to the service's streams
// (jetstream.Dial) and leave their settings alone.
func TestCLIDoesNotChangeStreams(t *testing.T) {
	svc, _ := testService(t, nil)
	ctx := context.Background()
	st, err := svc.conn.JS.Stream(ctx, jetstream.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.MaxAge = 48 * time.Hour // as an operator might have set it
	if _, err := svc.conn.JS.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if out, err := varsel(t, "deliveries", "list", "--nats", svc.conn.ClientURL()); err != nil {
		t.Fatalf("deliveries list: %v\n%s", err, out)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxAge != 48*time.Hour {
		t.Errorf("a CLI command reset the events stream's MaxAge to %s", info.Config.MaxAge)
	}
}

func TestConfigReplicasAndLimits(t *testing.T) {
	base := func() Config {
		return Config{NATSListen: "127.0.0.1:0", NATSReplicas: 1, DataDir: "x", HTTPAddr: ":8080", PublicURL: "http://localhost:8080",
			SMSRate: 1, DefaultLocale: "en", Timezone: "Europe/Oslo", WebhookOutbox: "auto", RemindBefore: 10 * time.Minute, DeliveryRetention: 720 * time.Hour}
	}
	for name, tc := range map[string]struct {
		edit func(*Config)
		want string
	}{
		"zero replicas":      {func(c *Config) { c.NATSReplicas = 0 }, "VARSEL_NATS_REPLICAS"},
		"six replicas":       {func(c *Config) { c.NATSURL = "nats://n:4222"; c.NATSReplicas = 6 }, "VARSEL_NATS_REPLICAS"},
		"replicas embedded":  {func(c *Config) { c.NATSReplicas = 3 }, "VARSEL_NATS_REPLICAS"},
		"negative bounce":    {func(c *Config) { c.EmailBounceLimit = -1 }, "VARSEL_EMAIL_BOUNCE_LIMIT: -1: want a whole number, 0 or more"},
		"negative webhook":   {func(c *Config) { c.WebhookFailureLimit = -2 }, "VARSEL_WEBHOOK_FAILURE_LIMIT: -2: want a whole number, 0 or more"},
		"three on a cluster": {func(c *Config) { c.NATSURL = "nats://n:4222"; c.NATSReplicas = 3 }, ""},
		"no remind before":   {func(c *Config) { c.RemindBefore = 0 }, "VARSEL_REMIND_BEFORE"},
		"bad staff email":    {func(c *Config) { c.StaffEmail = "ops@example.com, on call" }, `VARSEL_STAFF_EMAIL: "on call"`},
		"bad staff webhook":  {func(c *Config) { c.StaffWebhookURL = "hooks.slack.com/x" }, "VARSEL_STAFF_WEBHOOK_URL"},
		"defaults":           {func(*Config) {}, ""},
	} {
		cfg := base()
		tc.edit(&cfg)
		err := cfg.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: Validate() = %v, want %q", name, err, tc.want)
		}
	}
	// From the environment: whole numbers only.
	t.Setenv("VARSEL_EMAIL_BOUNCE_LIMIT", "2.5")
	t.Setenv("VARSEL_NATS_REPLICAS", "3")
	var cfg Config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	check := cfg.bindFlags(fs)
	if err := check(); err == nil || !strings.Contains(err.Error(), "VARSEL_EMAIL_BOUNCE_LIMIT") {
		t.Errorf("2.5 bounces accepted: %v", err)
	}
	if err := fs.Parse([]string{"--webhook-failure-limit", "7"}); err != nil {
		t.Fatal(err)
	}
	if cfg.NATSReplicas != 3 || cfg.WebhookFailureLimit != 7 {
		t.Errorf("replicas %d, webhook failure limit %d", cfg.NATSReplicas, cfg.WebhookFailureLimit)
	}
}
