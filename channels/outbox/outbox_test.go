package outbox

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/varsel/varsel/notifier"
)

func delivery() *notifier.Delivery {
	ev := &notifier.Event{ID: "e1", Type: notifier.IncidentOpened, Time: time.Now()}
	return &notifier.Delivery{
		ID: notifier.DeliveryID("e1", "kari", notifier.Email), Event: ev,
		Subscriber: &notifier.Subscriber{ID: "kari", Name: "Kari Nordmann", Email: "kari@example.com", Phone: "+4791234567", WebhookURL: "https://example.com/h",
			WebhookSecret: testSecret},
		Message: &notifier.Message{Locale: "nb", Subject: "Driftsmelding: innlogging i StyreWeb", Text: "Vi jobber med saken.",
			HTML: "<p>Vi jobber med saken.</p>", SMS: "Feil i StyreWeb", Segments: 1, WebhookText: "Feil",
			UnsubscribeURL: "http://localhost:8080/unsubscribe/tok"},
	}
}

func TestEmailIsAReadableEMLAndAResendShowsAsASecondFile(t *testing.T) {
	dir := t.TempDir()
	c, err := New(Config{Dir: dir, From: "Status <status@localhost>"}, notifier.Email, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, _, err := c.Notify(context.Background(), delivery()); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(filepath.Join(dir, "email", "e1", "kari.eml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := mail.ReadMessage(f)
	if err != nil {
		t.Fatal(err)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil || subject != "Driftsmelding: innlogging i StyreWeb" {
		t.Errorf("subject = %q, %v", subject, err)
	}
	for h, want := range map[string]string{
		"Content-Language":      "nb",
		"List-Unsubscribe":      "<http://localhost:8080/unsubscribe/tok>",
		"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
		"Auto-Submitted":        "auto-generated",
	} {
		if got := m.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	if !strings.HasPrefix(m.Header.Get("Content-Type"), "multipart/alternative") {
		t.Errorf("Content-Type = %q", m.Header.Get("Content-Type"))
	}
	if _, err := os.Stat(filepath.Join(dir, "email", "e1", "kari~2.eml")); err != nil {
		t.Errorf("second send did not produce a numbered twin: %v", err)
	}
	// Each message is written aside and linked whole under its name:
	// nothing half written is left beside them.
	entries, err := os.ReadDir(filepath.Join(dir, "email", "e1"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		if info, err := e.Info(); err != nil || info.Mode().Perm() != 0o640 {
			t.Errorf("%s: mode %v (%v), want 0640", e.Name(), info.Mode().Perm(), err)
		}
	}
	if want := []string{"kari.eml", "kari~2.eml"}; !slices.Equal(names, want) {
		t.Errorf("files %v, want %v", names, want)
	}
}

func TestSMSAndWebhookAreJSONLines(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []notifier.ChannelName{notifier.SMS, notifier.Webhook} {
		c, err := New(Config{Dir: dir, From: "status@localhost"}, name, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		d := delivery()
		d.ID = notifier.DeliveryID("e1", "kari", name)
		r, _, err := c.Notify(context.Background(), d)
		if err != nil {
			t.Fatal(err)
		}
		if name == notifier.SMS && r.Segments != 1 {
			t.Errorf("segments = %d", r.Segments)
		}
		c.Close()
		f, _ := os.Open(c.LinesFile())
		sc := bufio.NewScanner(f)
		lines := 0
		for sc.Scan() {
			var v map[string]any
			if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
				t.Fatalf("%s: bad line %q", name, sc.Text())
			}
			if v["id"] != d.ID {
				t.Errorf("%s: id = %v", name, v["id"])
			}
			lines++
		}
		f.Close()
		if lines != 1 {
			t.Errorf("%s: %d lines, want 1", name, lines)
		}
	}
}

// TestClaimAndRename is the way without hard links: the name is taken
// once, and the whole message moved over it.
func TestClaimAndRename(t *testing.T) {
	dir := t.TempDir()
	tmp, final := filepath.Join(dir, ".kari.1.part"), filepath.Join(dir, "kari.eml")
	if err := os.WriteFile(tmp, []byte("Subject: x\r\n\r\nbody"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := claimAndRename(tmp, final); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(final); err != nil || !strings.HasSuffix(string(b), "body") {
		t.Fatalf("kari.eml = %q, %v", b, err)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the temporary file is still there: %v", err)
	}
	if err := claimAndRename(tmp, final); !errors.Is(err, os.ErrExist) {
		t.Errorf("a second claim of kari.eml: %v, want it taken", err)
	}
}
