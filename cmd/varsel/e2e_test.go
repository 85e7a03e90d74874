package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/emersion/go-smtp"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/varsel/varsel/notifier"
	"github.com/varsel/varsel/notifier/render"
)

// mailbox is an in-process SMTP server (go-smtp) that keeps every message.
type mailbox struct {
	mu   sync.Mutex
	msgs []*mail.Message
	addr string
}

func startMailbox(t *testing.T) *mailbox {
	t.Helper()
	mb := &mailbox{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := smtp.NewServer(mb)
	s.Domain = "localhost"
	s.ErrorLog = log.New(io.Discard, "", 0)
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { _ = s.Close() })
	mb.addr = l.Addr().String()
	return mb
}

func (mb *mailbox) NewSession(*smtp.Conn) (smtp.Session, error) { return &mailSession{mb: mb}, nil }

func (mb *mailbox) all() []*mail.Message {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	return append([]*mail.Message(nil), mb.msgs...)
}

type mailSession struct{ mb *mailbox }

func (s *mailSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *mailSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *mailSession) Reset()                               {}
func (s *mailSession) Logout() error                        { return nil }
func (s *mailSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m, err := mail.ReadMessage(bytes.NewReader(b))
	if err != nil {
		return err
	}
	s.mb.mu.Lock()
	s.mb.msgs = append(s.mb.msgs, m)
	s.mb.mu.Unlock()
	return nil
}

func publishEvent(t *testing.T, svc *service, raw string) {
	t.Helper()
	if _, err := svc.conn.PublishEvent(context.Background(), []byte(raw)); err != nil {
		t.Fatal(err)
	}
}

func incidentEvent(id, typ, at, status, impact string) string {
	return fmt.Sprintf(`{"id":%q,"type":%q,"time":%q,"incident":{"id":"login-2019-09","title":{"en":"Login problems","nb":"Problemer med innlogging"},
"status":%q,"impact":%q,"components":["styreweb"],"started_at":"2019-09-16T07:50:00+02:00",
"message":{"en":"We are working on it.","nb":"Vi jobber med saken."}}}`, id, typ, at, status, impact)
}

// TestEmailEndToEnd: with an SMTP server on loopback, published events
// arrive as localized, threaded email whose unsubscribe link works.
func TestEmailEndToEnd(t *testing.T) {
	mb := startMailbox(t)
	svc, _ := testService(t, func(c *Config) { c.SMTPURL = "smtp://" + mb.addr + "?tls=none" })
	ctx := context.Background()
	if err := svc.conn.Subscribers.Put(ctx, &notifier.Subscriber{ID: "kari", Name: "Kari Nordmann", Email: "kari@example.com", Locale: "nb-NO"}); err != nil {
		t.Fatal(err)
	}
	publishEvent(t, svc, incidentEvent("e1", "incident.opened", "2019-09-16T11:00:00+02:00", "investigating", "major"))
	publishEvent(t, svc, incidentEvent("e2", "incident.updated", "2019-09-16T11:27:00+02:00", "identified", "major"))
	waitFor(t, "two emails", func() bool { return len(mb.all()) == 2 })
	msgs := mb.all()
	sort.Slice(msgs, func(i, j int) bool { return msgs[i].Header.Get("In-Reply-To") < msgs[j].Header.Get("In-Reply-To") })
	first, second := msgs[0], msgs[1]
	if first.Header.Get("In-Reply-To") != "" || second.Header.Get("In-Reply-To") != first.Header.Get("Message-Id") {
		t.Errorf("not threaded: first Message-ID %q, second In-Reply-To %q", first.Header.Get("Message-Id"), second.Header.Get("In-Reply-To"))
	}
	subject, _ := new(mime.WordDecoder).DecodeHeader(second.Header.Get("Subject"))
	if second.Header.Get("Content-Language") != "nb" || !strings.Contains(subject, "Problemer med innlogging") {
		t.Errorf("not Norwegian: %s / %q", second.Header.Get("Content-Language"), subject)
	}
	// One-click unsubscribe, as a mail provider does it.
	link := strings.Trim(second.Header.Get("List-Unsubscribe"), "<>")
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.Post("http://"+svc.listener.Addr().String()+u.Path, "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("one-click unsubscribe: %d", res.StatusCode)
	}
	publishEvent(t, svc, incidentEvent("e3", "incident.resolved", "2019-09-16T15:00:00+02:00", "resolved", "major"))
	waitFor(t, "the resolved event planned", func() bool {
		rec, err := svc.conn.Events.Get(ctx, "e3")
		return err == nil && rec.PlannedAt != nil
	})
	if n := len(mb.all()); n != 2 {
		t.Errorf("%d emails after unsubscribing, want still 2", n)
	}
}

// fakeTwilio is the Messages API on loopback.
type fakeTwilio struct {
	mu   sync.Mutex
	sent []url.Values
}

func (f *fakeTwilio) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/Messages.json") {
		http.NotFound(w, r)
		return
	}
	_ = r.ParseForm()
	f.mu.Lock()
	f.sent = append(f.sent, r.PostForm)
	n := len(f.sent)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, `{"sid":"SM%032d","status":"queued","to":%q}`, n, r.PostForm.Get("To"))
}

func (f *fakeTwilio) messages() []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]url.Values(nil), f.sent...)
}

// twilioSignature signs a callback as Twilio does (HMAC-SHA1 over the URL
// and the sorted form fields).
func twilioSignature(token, fullURL string, form url.Values) string {
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(fullURL)
	for _, k := range keys {
		b.WriteString(k + form.Get(k))
	}
	m := hmac.New(sha1.New, []byte(token))
	m.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// TestSMSEndToEnd: with Twilio pointed at a local fake, incident.opened
// sends one single-segment SMS per phone in its owner's language, and an
// inbound STOP stops the next one.
func TestSMSEndToEnd(t *testing.T) {
	fake := &fakeTwilio{}
	api := httptest.NewServer(fake)
	defer api.Close()
	const token = "0123456789abcdef0123456789abcdef"
	svc, _ := testService(t, func(c *Config) {
		c.TwilioAccountSID, c.TwilioAuthToken, c.TwilioFrom, c.TwilioAPIURL, c.SMSRate = "AC00000000000000000000000000000000", token, "+4790000000", api.URL, 50
	})
	ctx := context.Background()
	for _, s := range []*notifier.Subscriber{
		{ID: "kari", Phone: "+4791111111", Locale: "nb"},
		{ID: "james", Phone: "+447700900123", Locale: "en-GB", Timezone: "Europe/London"},
		{ID: "mail-only", Email: "m@example.com"},
	} {
		if err := svc.conn.Subscribers.Put(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	publishEvent(t, svc, incidentEvent("o1", "incident.opened", "2019-09-16T11:00:00+02:00", "investigating", "major"))
	waitFor(t, "two SMS", func() bool { return len(fake.messages()) == 2 })
	for _, m := range fake.messages() {
		body := m.Get("Body")
		if segs, enc := render.Segments(body); segs != 1 || enc != render.GSM7 {
			t.Errorf("SMS to %s is %d %s segments: %q", m.Get("To"), segs, enc, body)
		}
		norwegian := strings.Contains(body, "innlogging")
		if (m.Get("To") == "+4791111111") != norwegian {
			t.Errorf("SMS to %s in the wrong language: %q", m.Get("To"), body)
		}
		if !strings.HasPrefix(m.Get("StatusCallback"), "http://localhost:8080/twilio/status?delivery=") {
			t.Errorf("StatusCallback = %q", m.Get("StatusCallback"))
		}
	}

	// Kari replies STOP; Twilio posts it, signed, to /twilio/inbound.
	form := url.Values{"From": {"+4791111111"}, "To": {"+4790000000"}, "Body": {" stopp "}}
	req, _ := http.NewRequest(http.MethodPost, "http://"+svc.listener.Addr().String()+"/twilio/inbound", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", twilioSignature(token, "http://localhost:8080/twilio/inbound", form))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("inbound STOP: %d", res.StatusCode)
	}
	publishEvent(t, svc, incidentEvent("r1", "incident.resolved", "2019-09-16T15:00:00+02:00", "resolved", "major"))
	waitFor(t, "the resolved SMS to James", func() bool { return len(fake.messages()) == 3 })
	waitFor(t, "Kari's resolved SMS skipped", func() bool {
		rec, err := svc.conn.Events.Get(ctx, "r1")
		return err == nil && rec.PlannedAt != nil
	})
	if last := fake.messages()[2]; last.Get("To") != "+447700900123" {
		t.Errorf("after STOP an SMS went to %s", last.Get("To"))
	}
}

// TestWebhookEndToEnd: a receiver verifying with the official Standard
// Webhooks library gets the event with the incident in every language.
func TestWebhookEndToEnd(t *testing.T) {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []map[string]any
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := wh.Verify(body, r.Header); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var p map[string]any
		_ = json.Unmarshal(body, &p)
		mu.Lock()
		got = append(got, p)
		mu.Unlock()
	}))
	defer recv.Close()
	svc, _ := testService(t, func(c *Config) { c.WebhookOutbox = "false"; c.WebhookAllowPrivate = true })
	if err := svc.conn.Subscribers.Put(context.Background(), &notifier.Subscriber{ID: "ops", WebhookURL: recv.URL + "/hook", WebhookSecret: secret, Locale: "nb"}); err != nil {
		t.Fatal(err)
	}
	publishEvent(t, svc, incidentEvent("w1", "incident.opened", "2019-09-16T11:00:00+02:00", "investigating", "major"))
	waitFor(t, "a verified webhook", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 1 })
	data, _ := got[0]["data"].(map[string]any)
	inc, _ := data["incident"].(map[string]any)
	title, _ := inc["title"].(map[string]any)
	if got[0]["type"] != "incident.opened" || title["en"] != "Login problems" || title["nb"] != "Problemer med innlogging" || data["locale"] != "nb" {
		t.Errorf("payload = %v", got[0])
	}
}

// TestWebhookGoneEmailsOwner: a webhook answering 410 is switched off and
// its owner is told by email, in their language, through the email channel
// (here the outbox), without the webhook's secret path.
func TestWebhookGoneEmailsOwner(t *testing.T) {
	var calls atomic.Int32
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusGone)
	}))
	defer recv.Close()
	svc, dir := testService(t, func(c *Config) { c.WebhookOutbox = "false"; c.WebhookAllowPrivate = true })
	sub := &notifier.Subscriber{ID: "ops", Email: "ops@example.com", WebhookURL: recv.URL + "/hook/s3cr3t-path",
		WebhookSecret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", Locale: "nb"}
	if err := svc.conn.Subscribers.Put(context.Background(), sub); err != nil {
		t.Fatal(err)
	}
	publishEvent(t, svc, incidentEvent("g1", "incident.opened", "2019-09-16T11:00:00+02:00", "investigating", "major"))
	var notice string
	waitFor(t, "the webhook-disabled notice in the outbox", func() bool {
		found, _ := filepath.Glob(filepath.Join(dir, "outbox", "email", "notice-webhook-disabled-*", "ops.eml"))
		if len(found) > 0 {
			notice = found[0]
		}
		return notice != ""
	})
	if !notifier.ValidID(filepath.Base(filepath.Dir(notice))) {
		t.Errorf("notice event id %q is not a valid id", filepath.Base(filepath.Dir(notice)))
	}
	raw, err := os.ReadFile(notice)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	want, en := svc.renderer.T("nb", "SubjectWebhookDisabled", nil), svc.renderer.T("en", "SubjectWebhookDisabled", nil)
	if subject != want || want == en {
		t.Errorf("notice subject = %q, want the Norwegian %q (English: %q)", subject, want, en)
	}
	if to := m.Header.Get("To"); !strings.Contains(to, "ops@example.com") {
		t.Errorf("notice to %q", to)
	}
	if bytes.Contains(raw, []byte("s3cr3t-path")) {
		t.Error("the notice shows the webhook's full URL")
	}
	got, err := svc.conn.Subscribers.Get(context.Background(), "ops")
	if err != nil || got.Suppressed[notifier.Webhook].Reason != notifier.ReasonGone || calls.Load() != 1 {
		t.Errorf("webhook not switched off after one 410: %+v (%v), %d calls", got.Suppressed, err, calls.Load())
	}
}
