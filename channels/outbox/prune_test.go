package outbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/varsel/varsel/channels/webhook"
	"github.com/varsel/varsel/notifier"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func readLines(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
}

// A webhook line is the request the webhook channel would post: its exact
// body and headers, and the signature verifies with the subscriber's secret
// through the Standard Webhooks library.
func TestWebhookLineCarriesTheSignedRequest(t *testing.T) {
	dir := t.TempDir()
	c, err := New(Config{Dir: dir, From: "status@localhost", UserAgent: "Varsel/1.2.3"}, notifier.Webhook, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d := delivery()
	d.ID = notifier.DeliveryID("e1", "kari", notifier.Webhook)
	r, _, err := c.Notify(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	if want := webhook.MessageID(d.ID); r.ProviderID != want {
		t.Errorf("receipt = %q, want the webhook-id %q", r.ProviderID, want)
	}
	lines := readLines(t, c.LinesFile())
	if len(lines) != 1 {
		t.Fatalf("%d lines", len(lines))
	}
	var line WebhookLine
	if err := json.Unmarshal(lines[0], &line); err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	for k, v := range line.Headers {
		h.Set(k, v)
	}
	for _, name := range []string{"webhook-id", "webhook-timestamp", "webhook-signature", "Content-Type", "User-Agent"} {
		if _, ok := line.Headers[name]; !ok {
			t.Errorf("header %s missing from %v", name, line.Headers)
		}
	}
	if line.Method != http.MethodPost || h.Get("Content-Type") != "application/json" || h.Get("User-Agent") != "Varsel/1.2.3" ||
		h.Get("webhook-id") != webhook.MessageID(d.ID) {
		t.Errorf("method %q, headers %v", line.Method, line.Headers)
	}
	wh, err := standardwebhooks.NewWebhook(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify([]byte(line.Body), h); err != nil {
		t.Errorf("signature does not verify with the subscriber's secret: %v", err)
	}
	other, _ := standardwebhooks.NewWebhook("whsec_" + strings.Repeat("A", 32))
	if err := other.Verify([]byte(line.Body), h); err == nil {
		t.Error("signature verifies with another secret")
	}
	var body webhook.Payload
	if err := json.Unmarshal([]byte(line.Body), &body); err != nil {
		t.Fatalf("body is not the payload: %v\n%s", err, line.Body)
	}
	if body.Type != notifier.IncidentOpened || body.Data.EventID != "e1" || body.Data.Text != "Feil" || body.Data.Locale != "nb" {
		t.Errorf("body = %+v", body)
	}
}

// A subscriber whose secret the webhook channel could not use fails here
// too, without a retry, instead of showing a request that would never go.
func TestWebhookWithAnUnusableSecretFailsAsForReal(t *testing.T) {
	c, err := New(Config{Dir: t.TempDir(), From: "status@localhost"}, notifier.Webhook, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d := delivery()
	d.Subscriber.WebhookSecret = "not-a-secret"
	_, retry, err := c.Notify(context.Background(), d)
	var se *notifier.SendError
	if !errors.As(err, &se) || retry || !errors.Is(err, webhook.ErrInvalidSecret) {
		t.Errorf("err = %v, retry %v", err, retry)
	}
}

func TestPruneRemovesWhatIsOlderThanTheKeep(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	week := 7 * 24 * time.Hour
	// Email: an old event, a new one, and one with both.
	write := func(rel string, age time.Duration) {
		p := filepath.Join(dir, "email", rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, now.Add(-age), now.Add(-age)); err != nil {
			t.Fatal(err)
		}
	}
	write("old/kari.eml", 8*24*time.Hour)
	write("old/ola.eml", 30*24*time.Hour)
	write("new/kari.eml", time.Hour)
	write("mixed/kari.eml", 8*24*time.Hour)
	write("mixed/ola.eml", time.Minute)
	// Half-written messages: one a crash left long ago goes (uncounted),
	// one being written now stays.
	write("old/.ola.123"+tempSuffix, 9*24*time.Hour)
	write("new/.kari.456"+tempSuffix, time.Second)
	// SMS and webhooks: the channels write the new lines; old ones are
	// put before them as an old serve would have written them.
	sms, err := New(Config{Dir: dir, From: "status@localhost"}, notifier.SMS, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer sms.Close()
	hooks, err := New(Config{Dir: dir, From: "status@localhost"}, notifier.Webhook, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer hooks.Close()
	for _, l := range []any{
		SMSLine{ID: "old-1", At: now.Add(-8 * 24 * time.Hour)},
		SMSLine{ID: "old-2", At: now.Add(-7*24*time.Hour - time.Second)},
	} {
		if _, err := sms.appendLine(l); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := hooks.appendLine(WebhookLine{ID: "old-1", At: now.Add(-10 * 24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// A line that cannot be dated is kept.
	if _, err := hooks.appendLine(map[string]string{"id": "undated"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Channel{sms, hooks} {
		d := delivery()
		d.ID = "new-1"
		if _, _, err := c.Notify(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}

	got, err := Prune(dir, week, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Pruned{Emails: 3, EventDirs: 1, SMSLines: 2, WebhookLines: 1}); got != want {
		t.Errorf("pruned %+v, want %+v", got, want)
	}
	for rel, want := range map[string]bool{"old": false, "old/kari.eml": false, "new/kari.eml": true, "mixed/kari.eml": false, "mixed/ola.eml": true} {
		if _, err := os.Stat(filepath.Join(dir, "email", rel)); (err == nil) != want {
			t.Errorf("%s: exists = %v, want %v", rel, err == nil, want)
		}
	}
	ids := func(c *Channel) []string {
		var out []string
		for _, l := range readLines(t, c.LinesFile()) {
			var v struct{ ID string }
			_ = json.Unmarshal(l, &v)
			out = append(out, v.ID)
		}
		return out
	}
	if got := strings.Join(ids(sms), ","); got != "new-1" {
		t.Errorf("sms.jsonl ids = %s", got)
	}
	if got := strings.Join(ids(hooks), ","); got != "undated,new-1" {
		t.Errorf("webhook.jsonl ids = %s", got)
	}

	// The running channels write on into the rewritten files, and an
	// event directory pruned under the email channel is made again.
	for _, c := range []*Channel{sms, hooks} {
		d := delivery()
		d.ID = "after"
		if _, _, err := c.Notify(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Join(ids(sms), ","); got != "new-1,after" {
		t.Errorf("after prune, sms.jsonl ids = %s", got)
	}
	if got := strings.Join(ids(hooks), ","); got != "undated,new-1,after" {
		t.Errorf("after prune, webhook.jsonl ids = %s", got)
	}
	mail, err := New(Config{Dir: dir, From: "status@localhost"}, notifier.Email, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := mail.Notify(context.Background(), delivery()); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "email", "e1")); err != nil {
		t.Fatal(err)
	}
	d := delivery()
	d.Subscriber.ID = "ola"
	if _, _, err := mail.Notify(context.Background(), d); err != nil {
		t.Fatalf("after its directory went: %v", err)
	}

	// Keep 0 keeps everything.
	if got, err := Prune(dir, 0, now.Add(100*week)); err != nil || got.Total() != 0 {
		t.Errorf("keep 0 pruned %+v, %v", got, err)
	}
	// A missing outbox is nothing to prune.
	if got, err := Prune(filepath.Join(dir, "none"), week, now); err != nil || got.Total() != 0 {
		t.Errorf("missing outbox: %+v, %v", got, err)
	}
}
