package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/varsel/varsel/channels/outbox"
	"github.com/varsel/varsel/examples"
	"github.com/varsel/varsel/notifier"
)

// writeAged writes a file under dir at path rel, last modified age ago.
func writeAged(t *testing.T, dir, rel, content string, age time.Duration) string {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-age)
	if err := os.Chtimes(p, at, at); err != nil {
		t.Fatal(err)
	}
	return p
}

func smsLine(t *testing.T, id string, at time.Time) string {
	b, err := json.Marshal(outbox.SMSLine{ID: id, At: at})
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

func TestOutboxPruneCommand(t *testing.T) {
	dir := t.TempDir()
	day := 24 * time.Hour
	oldEml := writeAged(t, dir, "outbox/email/old-event/kari.eml", "x", 3*day)
	newEml := writeAged(t, dir, "outbox/email/new-event/kari.eml", "x", time.Hour)
	writeAged(t, dir, "outbox/sms.jsonl", smsLine(t, "old", time.Now().Add(-3*day))+smsLine(t, "new", time.Now()), 0)

	out, err := varsel(t, "outbox", "prune", "--keep", "48h", "--data-dir", dir)
	if err != nil {
		t.Fatalf("prune: %v\n%s", err, out)
	}
	want := "pruned " + filepath.Join(dir, "outbox") + " (older than 48h): 1 email file, 1 event directory, 1 SMS line, 0 webhook lines\n"
	if out != want {
		t.Errorf("prune said\n%q, want\n%q", out, want)
	}
	if _, err := os.Stat(oldEml); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("old email kept: %v", err)
	}
	if _, err := os.Stat(filepath.Dir(oldEml)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("empty event directory kept: %v", err)
	}
	if _, err := os.Stat(newEml); err != nil {
		t.Errorf("new email removed: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "outbox", "sms.jsonl")); bytes.Contains(b, []byte(`"old"`)) || !bytes.Contains(b, []byte(`"new"`)) {
		t.Errorf("sms.jsonl after prune:\n%s", b)
	}

	// The default comes from VARSEL_OUTBOX_KEEP; 0 keeps everything.
	t.Setenv("VARSEL_OUTBOX_KEEP", "0")
	if out, err := varsel(t, "outbox", "prune", "--data-dir", dir); err != nil || !strings.Contains(out, "nothing removed") {
		t.Errorf("keep 0: %v %q", err, out)
	}
	// -h is its own usage on stdout, not an error; a bad keep is a usage error.
	if out, err := varsel(t, "outbox", "prune", "-h"); err != nil || !strings.Contains(out, "Usage: varsel outbox prune") || !strings.Contains(out, "-keep") {
		t.Errorf("prune -h: %v %q", err, out)
	}
	if out, err := varsel(t, "outbox", "-h"); err != nil || !strings.Contains(out, "Usage: varsel outbox prune") {
		t.Errorf("outbox -h: %v %q", err, out)
	}
	for _, args := range [][]string{{"outbox", "prune", "--keep", "30s"}, {"outbox", "prune", "--keep", "soon"}, {"outbox", "drop"}, {"outbox"}} {
		if _, err := varsel(t, args...); !errors.Is(err, errUsage) {
			t.Errorf("%v: err %v, want a usage error", args, err)
		}
	}
}

func TestOutboxKeepConfig(t *testing.T) {
	for keep, ok := range map[time.Duration]bool{0: true, time.Minute: true, 168 * time.Hour: true, 30 * time.Second: false, -time.Hour: false} {
		cfg := testConfig(t.TempDir())
		cfg.OutboxKeep = keep
		err := cfg.Validate()
		if (err == nil) != ok || err != nil && !strings.Contains(err.Error(), "VARSEL_OUTBOX_KEEP") {
			t.Errorf("keep %v: %v", keep, err)
		}
	}
}

// serve prunes its outbox at start (and every 10 minutes).
func TestOutboxPrunedByServe(t *testing.T) {
	var old, fresh string
	testService(t, func(cfg *Config) {
		cfg.OutboxKeep = time.Hour
		old = writeAged(t, cfg.DataDir, "outbox/email/old-event/kari.eml", "x", 2*time.Hour)
		fresh = writeAged(t, cfg.DataDir, "outbox/email/new-event/kari.eml", "x", time.Minute)
	})
	waitFor(t, "the old email pruned", func() bool {
		_, err := os.Stat(old)
		return errors.Is(err, os.ErrNotExist)
	})
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh email removed: %v", err)
	}
}

// demoSubscribers are the webhook rows of examples/subscribers.csv.
func demoWebhookSubscribers(t *testing.T) []*notifier.Subscriber {
	t.Helper()
	f, err := examples.FS.Open(examples.SubscribersFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	subs, bad, err := notifier.ReadSubscribersCSV(f)
	if err != nil || len(bad) > 0 {
		t.Fatal(err, bad)
	}
	var hooks []*notifier.Subscriber
	for _, s := range subs {
		if s.WebhookURL != "" {
			hooks = append(hooks, s)
		}
	}
	if len(hooks) < 2 {
		t.Fatalf("%d webhook rows", len(hooks))
	}
	return hooks
}

const demoEventFile = "styreweb/06-2019-09-17-1000-updated.json"

// publishDemoEvent publishes demoEventFile to svc.
func publishDemoEvent(t *testing.T, svc *service) *notifier.Event {
	t.Helper()
	raw, err := examples.FS.ReadFile(demoEventFile)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := svc.conn.PublishEvent(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// With the outbox (no SMTP or Twilio), a webhook line is the signed
// request: it verifies with the demo subscriber's secret.
func TestOutboxWebhookLineVerifiesWithTheSubscribersSecret(t *testing.T) {
	svc, dir := testService(t, nil)
	ctx := context.Background()
	hooks := demoWebhookSubscribers(t)
	for _, s := range hooks {
		if err := svc.conn.Subscribers.Put(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	ev := publishDemoEvent(t, svc)
	path := filepath.Join(dir, "outbox", "webhook.jsonl")
	var line outbox.WebhookLine
	waitFor(t, "a webhook line", func() bool {
		b, _ := os.ReadFile(path)
		first, _, ok := bytes.Cut(b, []byte("\n"))
		return ok && json.Unmarshal(first, &line) == nil
	})
	var sub *notifier.Subscriber
	for _, s := range hooks {
		if notifier.DeliveryID(ev.ID, s.ID, notifier.Webhook) == line.ID {
			sub = s
		}
	}
	if sub == nil {
		t.Fatalf("line %s is no demo subscriber's", line.ID)
	}
	h := http.Header{}
	for k, v := range line.Headers {
		h.Set(k, v)
	}
	wh, err := standardwebhooks.NewWebhook(sub.WebhookSecret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify([]byte(line.Body), h); err != nil {
		t.Errorf("outbox line does not verify with %s's secret: %v\n%+v", sub.ID, err, line)
	}
	if !strings.HasPrefix(h.Get("User-Agent"), "Varsel/") || h.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", line.Headers)
	}
}

// With real sending, the demo subscribers' webhooks go to serve's own
// receiver, which verifies them: they are sent, not failed, though
// private targets are not allowed; the receiver refuses what is not signed.
func TestDemoWebhooksAreSentForRealToServesOwnReceiver(t *testing.T) {
	svc, _ := testService(t, func(cfg *Config) { cfg.WebhookOutbox = "false" })
	ctx := context.Background()
	self := selfWebhookURLs(svc.listener)
	if len(self) != 1 {
		t.Fatalf("self URLs %v", self)
	}
	hooks := demoWebhookSubscribers(t)
	for _, s := range hooks {
		if !strings.HasSuffix(s.WebhookURL, demoWebhookPath) {
			t.Fatalf("%s points at %s, not the demo receiver", s.ID, s.WebhookURL)
		}
		s.WebhookURL = self[0] // the test's serve is not on :8080
		if err := svc.conn.Subscribers.Put(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	ev := publishDemoEvent(t, svc)
	// styreweb-hook follows styreweb.
	id := notifier.DeliveryID(ev.ID, "styreweb-hook", notifier.Webhook)
	var rec *notifier.DeliveryRecord
	waitFor(t, "the webhook delivery settled", func() bool {
		got, err := svc.conn.Deliveries.Get(ctx, id)
		rec = got
		return err == nil && rec != nil && (rec.Status == notifier.StatusSent || rec.Status == notifier.StatusFailed)
	})
	if rec.Status != notifier.StatusSent {
		t.Fatalf("delivery %s: %s %s %s", id, rec.Status, rec.Reason, rec.LastError)
	}

	resp, err := http.Post(self[0], "application/json", strings.NewReader(`{"type":"incident.opened"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unsigned POST answered %d, want 401", resp.StatusCode)
	}
}
