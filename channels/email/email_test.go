package email

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"net/textproto"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"
	gomail "github.com/wneessen/go-mail"

	"github.com/varsel/varsel/notifier"
)

const (
	testSubject = "Problemer med innlogging i StyreWeb – æøå ÆØÅ"
	testText    = "Hei Kåre Ørnulf,\n\nArbeidet med å komme tilbake i normal drift pågår fortsatt.\nMeld deg av: https://status.example.com/unsubscribe/tok\n"
	testHTML    = "<p>Hei Kåre Ørnulf,</p><p>Arbeidet med å komme tilbake i normal drift pågår fortsatt.</p><p><a href=\"https://status.example.com/unsubscribe/tok\">Meld deg av</a></p>"
	testUnsub   = "https://status.example.com/unsubscribe/dTpzdWIxOmVtYWls.c2lnbmF0dXJl"
)

func subscriber(id string) *notifier.Subscriber {
	return &notifier.Subscriber{ID: id, Name: "Kåre Ørnulf Æsir", Email: id + "@example.com", Locale: "nb"}
}

// delivery builds a job for event eventID; inc may be nil.
func delivery(eventID string, sub *notifier.Subscriber, inc *notifier.IncidentState) *notifier.Delivery {
	return &notifier.Delivery{
		ID:         notifier.DeliveryID(eventID, sub.ID, notifier.Email),
		Channel:    notifier.Email,
		Event:      &notifier.Event{ID: eventID, Type: notifier.IncidentUpdated},
		Incident:   inc,
		Subscriber: sub,
		Attempt:    1,
		Message: &notifier.Message{
			Locale: "nb", Subject: testSubject, Text: testText, HTML: testHTML,
			UnsubscribeURL: testUnsub, IncidentURL: "https://status.example.com/incidents/x",
		},
	}
}

func newChannel(t testing.TB, cfg Config, logger *slog.Logger) *Channel {
	t.Helper()
	ch, err := New(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ch.Close() })
	return ch
}

func mustSend(t *testing.T, ch *Channel, d *notifier.Delivery) notifier.Receipt {
	t.Helper()
	r, retry, err := ch.Notify(context.Background(), d)
	if err != nil {
		t.Fatalf("Notify(%s): retry=%v err=%v", d.ID, retry, err)
	}
	return r
}

func parse(t *testing.T, raw []byte) *mail.Message {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse message: %v\n%s", err, raw)
	}
	return m
}

func TestMessageFormat(t *testing.T) {
	dialogues(t, func(t *testing.T, hide []string) {
		ts := startServer(t, func(ts *testServer) { ts.Hide = hide })
		ch := newChannel(t, ts.config(), nil)
		sub := subscriber("kari")
		r := mustSend(t, ch, delivery("ev-1", sub, nil))

		msgs := ts.messages()
		if len(msgs) != 1 {
			t.Fatalf("server got %d messages, want 1", len(msgs))
		}
		if msgs[0].From != "status@example.com" || !slices.Equal(msgs[0].To, []string{"kari@example.com"}) {
			t.Errorf("envelope from %q to %v", msgs[0].From, msgs[0].To)
		}
		m := parse(t, msgs[0].Data)
		dec := new(mime.WordDecoder)
		if subj, err := dec.DecodeHeader(m.Header.Get("Subject")); err != nil || subj != testSubject {
			t.Errorf("Subject = %q (%v), want %q; raw %q", subj, err, testSubject, m.Header.Get("Subject"))
		}
		to, err := m.Header.AddressList("To")
		if err != nil || len(to) != 1 || to[0].Name != sub.Name || to[0].Address != sub.Email {
			t.Errorf("To = %v (%v), want %s <%s>", to, err, sub.Name, sub.Email)
		}
		from, err := m.Header.AddressList("From")
		if err != nil || len(from) != 1 || from[0].Name != "Driftsstatus Æøå" || from[0].Address != "status@example.com" {
			t.Errorf("From = %v (%v)", from, err)
		}
		wantHeaders := map[string]string{
			"Content-Language":      "nb",
			"Auto-Submitted":        "auto-generated",
			"List-Unsubscribe":      "<" + testUnsub + ">",
			"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
			"Message-Id":            "<" + MessageID("ev-1", "kari", "example.com") + ">",
			"Mime-Version":          "1.0",
		}
		for k, want := range wantHeaders {
			if got := m.Header.Get(k); got != want {
				t.Errorf("%s = %q, want %q", k, got, want)
			}
		}
		if r.ProviderID != m.Header.Get("Message-Id") {
			t.Errorf("ProviderID = %q, Message-ID = %q", r.ProviderID, m.Header.Get("Message-Id"))
		}
		if m.Header.Get("In-Reply-To") != "" || m.Header.Get("References") != "" {
			t.Errorf("message without incident has threading headers")
		}
		if _, err := m.Header.Date(); err != nil {
			t.Errorf("Date: %v", err)
		}

		mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
		if err != nil || mt != "multipart/alternative" {
			t.Fatalf("Content-Type = %q (%v), want multipart/alternative", m.Header.Get("Content-Type"), err)
		}
		mr := multipart.NewReader(m.Body, params["boundary"])
		var got []string
		bodies := map[string]string{}
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			ct, cp, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
			if !strings.EqualFold(cp["charset"], "utf-8") {
				t.Errorf("part %s charset %q, want UTF-8", ct, cp["charset"])
			}
			b, err := io.ReadAll(p) // multipart decodes quoted-printable
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, ct)
			bodies[ct] = strings.TrimSpace(strings.ReplaceAll(string(b), "\r\n", "\n"))
		}
		if !slices.Equal(got, []string{"text/plain", "text/html"}) {
			t.Fatalf("parts %v, want text/plain then text/html", got)
		}
		if bodies["text/plain"] != strings.TrimSpace(testText) {
			t.Errorf("text part = %q", bodies["text/plain"])
		}
		if bodies["text/html"] != testHTML {
			t.Errorf("html part = %q", bodies["text/html"])
		}
	})
}

func TestThreadingAcrossIncident(t *testing.T) {
	ts := startServer(t, nil)
	ch := newChannel(t, ts.config(), nil)
	sub := subscriber("kari")
	other := subscriber("ola")
	inc := &notifier.IncidentState{FirstEventID: "opened-1"}

	letter := delivery("letter-1", sub, inc)
	letter.Event = &notifier.Event{ID: "letter-1", Type: notifier.LetterBroadcast, Letter: &notifier.Letter{IncidentID: "inc"}}
	sends := []*notifier.Delivery{
		delivery("opened-1", sub, inc),
		delivery("updated-2", sub, inc),
		delivery("resolved-3", sub, inc),
		letter,
		delivery("updated-2", other, inc),
		delivery("standalone", sub, nil),
	}
	for _, d := range sends {
		mustSend(t, ch, d)
	}
	msgs := ts.messages()
	if len(msgs) != len(sends) {
		t.Fatalf("got %d messages, want %d", len(msgs), len(sends))
	}
	root := "<" + MessageID("opened-1", "kari", "example.com") + ">"
	otherRoot := "<" + MessageID("opened-1", "ola", "example.com") + ">"
	tests := []struct {
		name, msgID, inReplyTo string
	}{
		{"opened starts the thread", root, ""},
		{"updated replies to opened", "<" + MessageID("updated-2", "kari", "example.com") + ">", root},
		{"resolved replies to opened", "<" + MessageID("resolved-3", "kari", "example.com") + ">", root},
		{"letter about the incident joins the thread", "<" + MessageID("letter-1", "kari", "example.com") + ">", root},
		{"each subscriber has their own thread", "<" + MessageID("updated-2", "ola", "example.com") + ">", otherRoot},
		{"no incident, no thread", "<" + MessageID("standalone", "kari", "example.com") + ">", ""},
	}
	seen := map[string]bool{}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := parse(t, msgs[i].Data)
			if got := m.Header.Get("Message-Id"); got != tt.msgID {
				t.Errorf("Message-ID = %q, want %q", got, tt.msgID)
			}
			if seen[m.Header.Get("Message-Id")] {
				t.Errorf("Message-ID %s repeated", m.Header.Get("Message-Id"))
			}
			seen[m.Header.Get("Message-Id")] = true
			if got := m.Header.Get("In-Reply-To"); got != tt.inReplyTo {
				t.Errorf("In-Reply-To = %q, want %q", got, tt.inReplyTo)
			}
			if got := m.Header.Get("References"); got != tt.inReplyTo {
				t.Errorf("References = %q, want %q", got, tt.inReplyTo)
			}
		})
	}
	if MessageID("a", "b", "x") != MessageID("a", "b", "x") || MessageID("a", "b", "x") == MessageID("a", "c", "x") {
		t.Error("MessageID is not deterministic per (event, subscriber)")
	}
}

func TestTemporaryFailureThenSuccessDeliversOnce(t *testing.T) {
	dialogues(t, func(t *testing.T, hide []string) {
		var mu sync.Mutex
		refused := 0
		ts := startServer(t, func(ts *testServer) {
			ts.Hide = hide
			ts.OnRcpt = func(string) error {
				mu.Lock()
				defer mu.Unlock()
				if refused == 0 {
					refused++
					return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "greylisted, try again later"}
				}
				return nil
			}
		})
		ch := newChannel(t, ts.config(), nil)
		d := delivery("ev-1", subscriber("kari"), nil)

		_, retry, err := ch.Notify(context.Background(), d)
		if err == nil || !retry || notifier.ReasonOf(err) != notifier.ReasonServer {
			t.Fatalf("first attempt: retry=%v reason=%s err=%v, want retry with %s", retry, notifier.ReasonOf(err), err, notifier.ReasonServer)
		}
		if strings.Contains(err.Error(), "kari@example.com") {
			t.Errorf("error shows the full address: %v", err)
		}
		d.Attempt = 2
		mustSend(t, ch, d)
		if n := len(ts.messages()); n != 1 {
			t.Errorf("server got %d messages, want exactly 1", n)
		}
		if sessions, _ := ts.counts(); sessions != 1 {
			t.Errorf("%d connections; a 4xx reply to RCPT should not cost the connection", sessions)
		}
	})
}

func TestPermanentFailures(t *testing.T) {
	dialogues(t, func(t *testing.T, hide []string) {
		tests := []struct {
			name   string
			reply  *smtp.SMTPError
			reason notifier.Reason
		}{
			{"unknown mailbox is a hard bounce", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}, notifier.ReasonBounced},
			{"policy refusal is not the subscriber's bounce", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "relaying denied"}, notifier.ReasonRejected},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				ts := startServer(t, func(ts *testServer) {
					ts.Hide = hide
					ts.OnRcpt = func(to string) error {
						if strings.HasPrefix(to, "ghost@") {
							return tt.reply
						}
						return nil
					}
				})
				ch := newChannel(t, ts.config(), nil)
				_, retry, err := ch.Notify(context.Background(), delivery("ev-1", subscriber("ghost"), nil))
				if err == nil || retry || notifier.ReasonOf(err) != tt.reason {
					t.Fatalf("retry=%v reason=%s err=%v, want no retry with %s", retry, notifier.ReasonOf(err), err, tt.reason)
				}
				// go-mail's SendError (one command at a time) or the reply
				// itself (pipelined) carries the code.
				var gse *gomail.SendError
				var tpe *textproto.Error
				if !(errors.As(err, &gse) && gse.ErrorCode() == 550) && !(errors.As(err, &tpe) && tpe.Code == 550) {
					t.Errorf("error does not carry the server's reply 550: %v", err)
				}
				if strings.Contains(err.Error(), "ghost@example.com") {
					t.Errorf("error shows the full address: %v", err)
				}
				// The connection survives a refused recipient.
				mustSend(t, ch, delivery("ev-1", subscriber("kari"), nil))
				if sessions, _ := ts.counts(); sessions != 1 {
					t.Errorf("%d connections, want 1", sessions)
				}
			})
		}
	})
}

func TestEmptyMessageIsTemplateError(t *testing.T) {
	ts := startServer(t, nil)
	ch := newChannel(t, ts.config(), nil)
	tests := []struct {
		name   string
		edit   func(d *notifier.Delivery)
		reason notifier.Reason
	}{
		{"no message", func(d *notifier.Delivery) { d.Message = nil }, notifier.ReasonTemplate},
		{"no subject", func(d *notifier.Delivery) { d.Message.Subject = " " }, notifier.ReasonTemplate},
		{"no body", func(d *notifier.Delivery) { d.Message.Text, d.Message.HTML = "", "" }, notifier.ReasonTemplate},
		{"no unsubscribe link", func(d *notifier.Delivery) { d.Message.UnsubscribeURL = "" }, notifier.ReasonTemplate},
		{"no address", func(d *notifier.Delivery) { d.Subscriber.Email = "" }, notifier.ReasonInvalidAddress},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := delivery("ev-1", subscriber("kari"), nil)
			tt.edit(d)
			_, retry, err := ch.Notify(context.Background(), d)
			if err == nil || retry || notifier.ReasonOf(err) != tt.reason {
				t.Errorf("retry=%v reason=%s err=%v, want no retry with %s", retry, notifier.ReasonOf(err), err, tt.reason)
			}
		})
	}
	if sessions, _ := ts.counts(); sessions != 0 {
		t.Errorf("%d connections opened for messages that cannot be sent", sessions)
	}
}

func TestConnectionDroppedMidDataIsRetried(t *testing.T) {
	dialogues(t, func(t *testing.T, hide []string) {
		var mu sync.Mutex
		dropped := false
		ts := startServer(t, func(ts *testServer) {
			ts.Hide = hide
			ts.OnData = func(c *smtp.Conn, r io.Reader) error {
				mu.Lock()
				defer mu.Unlock()
				if dropped {
					return nil
				}
				dropped = true
				_, _ = io.ReadFull(r, make([]byte, 64))
				_ = c.Conn().Close()
				return errDropped
			}
		})
		ch := newChannel(t, ts.config(), nil)
		d := delivery("ev-1", subscriber("kari"), nil)
		_, retry, err := ch.Notify(context.Background(), d)
		if r := notifier.ReasonOf(err); err == nil || !retry || (r != notifier.ReasonNetwork && r != notifier.ReasonAmbiguous) {
			t.Fatalf("retry=%v reason=%s err=%v, want a retry for a network failure", retry, r, err)
		}
		d.Attempt = 2
		mustSend(t, ch, d)
		if n := len(ts.messages()); n != 1 {
			t.Errorf("server stored %d messages, want 1", n)
		}
		if sessions, _ := ts.counts(); sessions != 2 {
			t.Errorf("%d connections, want 2: the broken one must not be reused", sessions)
		}
	})
}

func TestIdleConnectionClosedByServerIsRedialled(t *testing.T) {
	dialogues(t, func(t *testing.T, hide []string) {
		ts := startServer(t, func(ts *testServer) { ts.Hide = hide })
		ch := newChannel(t, ts.config(), nil)
		mustSend(t, ch, delivery("ev-1", subscriber("kari"), nil))
		ts.dropAll()
		// The pooled connection is dead; the send notices before anything
		// was handed over, and dials again without bothering the caller.
		mustSend(t, ch, delivery("ev-2", subscriber("kari"), nil))
		if n := len(ts.messages()); n != 2 {
			t.Errorf("server stored %d messages, want 2", n)
		}
		if sessions, _ := ts.counts(); sessions != 2 {
			t.Errorf("%d connections, want 2", sessions)
		}
	})
}

// TestIdleTLSConnectionClosedByServerIsRedialled: over TLS the server's
// close (close_notify, then the end of the stream) left the pooled
// connection looking fine until MAIL FROM read the end of the stream, and
// the email failed: it is seen before the send and redialled.
func TestIdleTLSConnectionClosedByServerIsRedialled(t *testing.T) {
	serverTLS, roots := selfSigned(t)
	for _, implicit := range []bool{false, true} {
		t.Run(fmt.Sprintf("implicit=%v", implicit), func(t *testing.T) {
			ts := startServer(t, func(ts *testServer) { ts.TLS, ts.Implicit = serverTLS, implicit })
			cfg := ts.config()
			cfg.TLS = TLSStartTLS
			if implicit {
				cfg.TLS = TLSImplicit
			}
			ch := newChannel(t, cfg, nil)
			ch.tlsConfig.RootCAs = roots
			mustSend(t, ch, delivery("ev-1", subscriber("kari"), nil))
			ts.dropAll()
			time.Sleep(50 * time.Millisecond) // the close arrives
			mustSend(t, ch, delivery("ev-2", subscriber("kari"), nil))
			if n := len(ts.messages()); n != 2 {
				t.Errorf("server stored %d messages, want 2", n)
			}
		})
	}
}

func TestDialFailureIsRetryable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close() // nothing listens there now
	ch := newChannel(t, Config{Host: "127.0.0.1", Port: port, TLS: TLSNone}, nil)
	_, retry, err := ch.Notify(context.Background(), delivery("ev-1", subscriber("kari"), nil))
	if err == nil || !retry || notifier.ReasonOf(err) != notifier.ReasonNetwork {
		t.Fatalf("retry=%v reason=%s err=%v, want retry with %s", retry, notifier.ReasonOf(err), err, notifier.ReasonNetwork)
	}
}

// TestSilentServerIsATimeoutOfItsGreeting: a server that takes the
// connection and never greets is a retried timeout that says what was
// waited for (it spoke of a closed connection).
func TestSilentServerIsATimeoutOfItsGreeting(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = c.Close() }) // held open, never a word
		}
	}()
	ch := newChannel(t, Config{Host: "127.0.0.1", Port: l.Addr().(*net.TCPAddr).Port, TLS: TLSNone, SendTimeout: 300 * time.Millisecond}, nil)
	start := time.Now()
	_, retry, err := ch.Notify(context.Background(), delivery("ev-1", subscriber("kari"), nil))
	if err == nil || !retry || notifier.ReasonOf(err) != notifier.ReasonTimeout || !strings.Contains(err.Error(), "did not finish its greeting, EHLO, STARTTLS and AUTH within the send timeout (300ms)") {
		t.Fatalf("retry=%v reason=%s err=%v, want a retried timeout naming the greeting", retry, notifier.ReasonOf(err), err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Notify took %v with a 300ms send timeout", took)
	}
}

func TestSlowServerTimesOut(t *testing.T) {
	dialogues(t, func(t *testing.T, hide []string) {
		release := make(chan struct{})
		ts := startServer(t, func(ts *testServer) {
			ts.Hide = hide
			ts.OnData = func(*smtp.Conn, io.Reader) error {
				<-release
				return errDropped
			}
		})
		t.Cleanup(func() { close(release) })
		cfg := ts.config()
		cfg.SendTimeout = 300 * time.Millisecond
		ch := newChannel(t, cfg, nil)
		start := time.Now()
		_, retry, err := ch.Notify(context.Background(), delivery("ev-1", subscriber("kari"), nil))
		if err == nil || !retry || notifier.ReasonOf(err) != notifier.ReasonTimeout {
			t.Fatalf("retry=%v reason=%s err=%v, want retry with %s", retry, notifier.ReasonOf(err), err, notifier.ReasonTimeout)
		}
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("error does not wrap a deadline error: %v", err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("Notify took %v with a 300ms send timeout", took)
		}
	})
}

func TestPoolBoundsConnections(t *testing.T) {
	ts := startServer(t, nil)
	cfg := ts.config()
	cfg.PoolSize = 4
	ch := newChannel(t, cfg, nil)
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			d := delivery(fmt.Sprintf("ev-%d", i), subscriber(fmt.Sprintf("sub%d", i)), nil)
			if _, _, err := ch.Notify(context.Background(), d); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := len(ts.messages()); got != n {
		t.Errorf("server got %d messages, want %d", got, n)
	}
	sessions, maxOpen := ts.counts()
	if sessions > cfg.PoolSize || maxOpen > cfg.PoolSize {
		t.Errorf("%d connections (%d at once), want at most %d", sessions, maxOpen, cfg.PoolSize)
	}
	if sessions < 2 {
		t.Logf("only %d connection(s) used; the senders did not overlap", sessions)
	}
}

func TestCloseRefusesLaterSends(t *testing.T) {
	ts := startServer(t, nil)
	ch := newChannel(t, ts.config(), nil)
	mustSend(t, ch, delivery("ev-1", subscriber("kari"), nil))
	if err := ch.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, _, err := ch.Notify(context.Background(), delivery("ev-2", subscriber("kari"), nil)); !errors.Is(err, ErrClosed) {
		t.Errorf("Notify after Close: %v, want ErrClosed", err)
	}
	if err := ch.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func pemKey(t *testing.T, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func TestDKIMSignatureVerifiesAndCoversUnsubscribe(t *testing.T) {
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaPriv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaPubDER, err := x509.MarshalPKIXPublicKey(&rsaPriv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		key    []byte
		record string
	}{
		{"ed25519", pemKey(t, edPriv), "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(edPub)},
		{"rsa", pemKey(t, rsaPriv), "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(rsaPubDER)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, nil)
			cfg := ts.config()
			cfg.DKIM = &DKIMConfig{Domain: "example.com", Selector: "varsel", Key: tt.key}
			ch := newChannel(t, cfg, nil)
			inc := &notifier.IncidentState{FirstEventID: "opened-1"}
			mustSend(t, ch, delivery("updated-2", subscriber("kari"), inc))
			raw := ts.messages()[0].Data

			lookups := 0
			opts := &dkim.VerifyOptions{LookupTXT: func(domain string) ([]string, error) {
				lookups++
				if domain != "varsel._domainkey.example.com" {
					return nil, fmt.Errorf("unexpected lookup %q", domain)
				}
				return []string{tt.record}, nil
			}}
			vs, err := dkim.VerifyWithOptions(bytes.NewReader(raw), opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(vs) != 1 || lookups != 1 {
				t.Fatalf("%d signatures, %d lookups, want 1", len(vs), lookups)
			}
			v := vs[0]
			if v.Err != nil {
				t.Fatalf("signature does not verify: %v\n%s", v.Err, raw)
			}
			if v.Domain != "example.com" {
				t.Errorf("d= %q", v.Domain)
			}
			for _, h := range []string{"From", "Subject", "List-Unsubscribe", "List-Unsubscribe-Post", "In-Reply-To", "Message-ID"} {
				if !slices.ContainsFunc(v.HeaderKeys, func(k string) bool { return strings.EqualFold(k, h) }) {
					t.Errorf("h= %v does not cover %s", v.HeaderKeys, h)
				}
			}

			// Swapping the one-click URL must break the signature.
			tampered := bytes.Replace(raw, []byte(testUnsub), []byte("https://evil.example.net/x"), 1)
			vs, err = dkim.VerifyWithOptions(bytes.NewReader(tampered), opts)
			if err != nil || len(vs) != 1 || vs[0].Err == nil {
				t.Errorf("a changed List-Unsubscribe still verifies (err %v)", err)
			}
		})
	}
}

func TestSecretsStayOutOfLogsAndErrors(t *testing.T) {
	dialogues(t, func(t *testing.T, hide []string) {
		const password = "hunter2-Sup3rSecret"
		ts := startServer(t, func(ts *testServer) {
			ts.Hide = hide
			ts.User, ts.Pass = "varsel", password
			ts.OnRcpt = func(to string) error {
				if strings.HasPrefix(to, "ghost@") {
					return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<" + to + ">: no such user"}
				}
				return nil
			}
		})
		var logs bytes.Buffer
		logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

		ch := newChannel(t, ts.config(), logger)
		mustSend(t, ch, delivery("ev-1", subscriber("kari"), nil))
		_, _, bounceErr := ch.Notify(context.Background(), delivery("ev-1", subscriber("ghost"), nil))
		if notifier.ReasonOf(bounceErr) != notifier.ReasonBounced {
			t.Errorf("bounce: %v", bounceErr)
		}

		wrong := ts.config()
		wrong.Password = password + "-wrong"
		chWrong := newChannel(t, wrong, logger)
		_, retry, authErr := chWrong.Notify(context.Background(), delivery("ev-1", subscriber("kari"), nil))
		if authErr == nil || retry {
			t.Errorf("wrong password: retry=%v err=%v, want a permanent failure", retry, authErr)
		}

		cfg := ts.config()
		logger.Info("config", "smtp", cfg)
		_, parseErr := ParseURL("smtp://varsel:" + password + "@bad host:25")
		_, parseErr2 := ParseURL("smtp://varsel:" + password + "@host:port")
		texts := map[string]string{
			"logs":       logs.String(),
			"bounce err": bounceErr.Error(),
			"auth err":   authErr.Error(),
			"%v":         fmt.Sprintf("%v", cfg),
			"%+v":        fmt.Sprintf("%+v", cfg),
			"%#v":        fmt.Sprintf("%#v", cfg),
			"%s":         fmt.Sprintf("%s", &cfg),
			"parse err":  fmt.Sprint(parseErr, parseErr2),
		}
		if parseErr == nil || parseErr2 == nil {
			t.Errorf("ParseURL accepted a bad URL: %v, %v", parseErr, parseErr2)
		}
		for name, text := range texts {
			if strings.Contains(text, "Sup3rSecret") {
				t.Errorf("%s shows the password: %s", name, text)
			}
			for _, addr := range []string{"kari@example.com", "ghost@example.com"} {
				if strings.Contains(text, addr) {
					t.Errorf("%s shows the full address %s: %s", name, addr, text)
				}
			}
		}
		if !strings.Contains(logs.String(), "k***@example.com") {
			t.Errorf("logs do not name the masked recipient:\n%s", logs.String())
		}
	})
}

// BenchmarkSendPooled sends one message after another through the channel,
// which keeps its connection open between messages.
func BenchmarkSendPooled(b *testing.B) {
	// One connection, one message at a time, in each of the three ways a
	// server's extensions allow (see dialogues).
	for _, way := range []struct {
		name string
		hide []string
	}{{"chunked", nil}, {"pipelined", []string{"CHUNKING"}}, {"one command at a time", []string{"PIPELINING", "CHUNKING"}}} {
		b.Run(way.name, func(b *testing.B) {
			ts := startServer(b, func(ts *testServer) { ts.Discard, ts.Hide = true, way.hide })
			ch := newChannel(b, ts.config(), nil)
			d := delivery("ev-1", subscriber("kari"), nil)
			ctx := context.Background()
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				if _, _, err := ch.Notify(ctx, d); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
			if sessions, _ := ts.counts(); sessions != 1 {
				b.Errorf("%d connections, want 1", sessions)
			}
		})
	}
}

// BenchmarkSendDialPerMessage sends the same messages the naive way: a new
// connection (dial, greeting, EHLO, QUIT) per message with go-mail's
// DialAndSendWithContext.
func BenchmarkSendDialPerMessage(b *testing.B) {
	ts := startServer(b, func(ts *testServer) { ts.Discard = true })
	ch := newChannel(b, ts.config(), nil)
	d := delivery("ev-1", subscriber("kari"), nil)
	client, err := gomail.NewClient(ts.Host, gomail.WithPort(ts.Port), gomail.WithTLSPolicy(gomail.NoTLS),
		gomail.WithoutNoop(), gomail.WithoutRset())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		msg, _, err := ch.buildMessage(d)
		if err != nil {
			b.Fatal(err)
		}
		if err := client.DialAndSendWithContext(ctx, msg); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// selfSigned returns a server certificate for 127.0.0.1 and a pool that
// trusts it.
func selfSigned(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: priv}}}, pool
}

func TestTLSPolicies(t *testing.T) {
	serverTLS, roots := selfSigned(t)
	tests := []struct {
		name     string
		policy   string
		implicit bool
		trusted  bool
		wantErr  notifier.Reason
	}{
		{"starttls", TLSStartTLS, false, true, ""},
		{"implicit tls", TLSImplicit, true, true, ""},
		{"untrusted certificate is a network failure", TLSStartTLS, false, false, notifier.ReasonNetwork},
		{"implicit tls with untrusted certificate", TLSImplicit, true, false, notifier.ReasonNetwork},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, func(ts *testServer) {
				ts.TLS, ts.Implicit = serverTLS, tt.implicit
				ts.User, ts.Pass = "varsel", "secret"
			})
			cfg := ts.config()
			cfg.TLS = tt.policy
			ch := newChannel(t, cfg, nil)
			if tt.trusted {
				ch.tlsConfig.RootCAs = roots
			}
			_, retry, err := ch.Notify(context.Background(), delivery("ev-1", subscriber("kari"), nil))
			if tt.wantErr != "" {
				if err == nil || !retry || notifier.ReasonOf(err) != tt.wantErr {
					t.Fatalf("retry=%v reason=%s err=%v, want retry with %s", retry, notifier.ReasonOf(err), err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ts.mu.Lock()
			defer ts.mu.Unlock()
			if len(ts.msgs) != 1 || ts.overTLS != 1 {
				t.Errorf("%d messages, %d over TLS, want 1 over TLS", len(ts.msgs), ts.overTLS)
			}
		})
	}
}
