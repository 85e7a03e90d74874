package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testService starts `varsel serve` in-process on free loopback ports
// with its data in a temporary directory.
func testService(t *testing.T, edit func(*Config)) (*service, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := Config{NATSListen: "127.0.0.1:0", DataDir: dir, HTTPAddr: "127.0.0.1:0", PublicURL: "http://localhost:8080",
		MailFrom: "Status <status@example.com>", SMSRate: 1, DefaultLocale: "en", Timezone: "Europe/Oslo",
		TwilioAPIURL: "https://api.twilio.com", EmailBounceLimit: 3, WebhookFailureLimit: 5, AdminToken: "test-admin-token", WebhookOutbox: "auto", Secret: "0123456789abcdef0123"}
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
	return svc, dir
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
	// Subscribers of styreweb with an email address in the demo file.
	waitFor(t, "outbox email", func() bool {
		entries, _ := os.ReadDir(emails)
		return len(entries) >= 5
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
	out, err = varsel(t, "deliveries", "list", "--event", "styreweb-2019-09-16-1100", "--nats", nats)
	if err != nil || !strings.Contains(out, "sent") {
		t.Fatalf("deliveries list: %v\n%s", err, out)
	}

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
