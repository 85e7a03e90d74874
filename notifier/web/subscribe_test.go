package web

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/varsel/varsel/notifier"
	"github.com/varsel/varsel/notifier/render"
)

// sentEmail is one confirmation email the fixture "sent".
type sentEmail struct {
	To string
	M  *notifier.Message
}

// mailbox records SendEmail calls.
type mailbox struct {
	mu   sync.Mutex
	sent []sentEmail
}

func (mb *mailbox) send(_ context.Context, to string, m *notifier.Message) error {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	mb.sent = append(mb.sent, sentEmail{to, m})
	return nil
}

func (mb *mailbox) all() []sentEmail {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	return append([]sentEmail(nil), mb.sent...)
}

// newSignupFixture is newFixture with sign-up on: send is Deps.SendEmail
// (nil turns sign-up off). logs collects the server's log.
func newSignupFixture(t *testing.T, send func(context.Context, string, *notifier.Message) error) (*fixture, *bytes.Buffer) {
	t.Helper()
	logs := &bytes.Buffer{}
	f, _ := buildFixture(t, fixtureOpts{logger: slog.New(slog.NewTextHandler(&lockedWriter{w: logs}, nil)), send: send,
		config: func(c *Config) { c.AdminToken = "" }})
	return f, logs
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func form(kv ...string) io.Reader {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return strings.NewReader(v.Encode())
}

var confirmLink = regexp.MustCompile(`http://status\.example\.com/confirm/[A-Za-z0-9_.-]+`)

// linkPath returns the path of the one confirmation link in an email.
func linkPath(t *testing.T, m *notifier.Message) string {
	t.Helper()
	links := confirmLink.FindAllString(m.Text, -1)
	if len(links) == 0 || strings.Count(m.Text, links[0]) != len(links) {
		t.Fatalf("want one confirmation link in the email, got %q:\n%s", links, m.Text)
	}
	if !strings.Contains(m.HTML, `href="`+links[0]+`"`) {
		t.Errorf("the HTML part lacks the link %s", links[0])
	}
	return strings.TrimPrefix(links[0], "http://status.example.com")
}

func countSubscribers(t *testing.T, f *fixture) int {
	t.Helper()
	n := 0
	if err := f.conn.Subscribers.Each(context.Background(), func(*notifier.Subscriber) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSubscribeFormIsLocalized(t *testing.T) {
	f, _ := newSignupFixture(t, (&mailbox{}).send)
	res, body := f.do(t, http.MethodGet, "/subscribe?lang=nb", "", nil)
	if res.StatusCode != 200 {
		t.Fatalf("GET /subscribe: %d", res.StatusCode)
	}
	for _, want := range []string{`lang="nb"`, "Få driftsmeldinger", "E-postadresse", "Mobilnummer", "Språk", `<form method="post" action="/subscribe"`,
		`name="email"`, `name="phone"`, `<option value="nb" lang="nb" selected>`, ">Abonner</button>"} {
		if !strings.Contains(body, want) {
			t.Errorf("Norwegian form lacks %q", want)
		}
	}
	b := f.getInLanguage(t, "/subscribe", "en-GB,en;q=0.8")
	if !strings.Contains(b, `<option value="en" lang="en" selected>`) || !strings.Contains(b, "Email address") {
		t.Errorf("Accept-Language en did not give the English form preselected")
	}
}

// TestSubscribeConfirmFlow: POST sends one email and creates nothing; the
// link creates the subscriber in the chosen language; opening it again
// changes nothing.
func TestSubscribeConfirmFlow(t *testing.T) {
	mb := &mailbox{}
	f, logs := newSignupFixture(t, mb.send)
	ctx := context.Background()
	res, body := f.do(t, http.MethodPost, "/subscribe", "", form("email", " Kari.Nordmann@Example.com ", "phone", "+47 912 34 567", "locale", "nb"))
	if res.StatusCode != 200 || !strings.Contains(body, "Sjekk innboksen din") {
		t.Fatalf("POST: %d %s", res.StatusCode, body)
	}
	sent := mb.all()
	if len(sent) != 1 || sent[0].To != "Kari.Nordmann@Example.com" {
		t.Fatalf("sent %+v, want one email to the address as typed", sent)
	}
	m := sent[0].M
	if m.Locale != "nb" || !strings.Contains(m.Subject, "driftsmeldinger") || m.UnsubscribeURL == "" {
		t.Errorf("email: locale %q, subject %q, unsubscribe %q", m.Locale, m.Subject, m.UnsubscribeURL)
	}
	if n := countSubscribers(t, f); n != 0 {
		t.Fatalf("POST created %d subscribers before confirmation", n)
	}
	link := linkPath(t, m)
	id := SubscriberID("kari.nordmann@example.com")
	for i := range 2 {
		res, body = f.do(t, http.MethodGet, link, "", nil)
		if res.StatusCode != 200 || !strings.Contains(body, "Nå får du driftsmeldinger.") || !strings.Contains(body, `lang="nb"`) {
			t.Fatalf("confirm %d: %d %s", i, res.StatusCode, body)
		}
		sub, err := f.conn.Subscribers.Get(ctx, id)
		if err != nil {
			t.Fatalf("confirm %d: %v", i, err)
		}
		if sub.Email != "Kari.Nordmann@Example.com" || sub.Phone != "+4791234567" || sub.Locale != "nb" || !sub.Reachable(notifier.Email) {
			t.Errorf("confirm %d: subscriber %+v", i, sub)
		}
		if n := countSubscribers(t, f); n != 1 {
			t.Errorf("confirm %d: %d subscribers, want 1", i, n)
		}
	}
	// The log names no full address, phone or token.
	token := strings.TrimPrefix(link, "/confirm/")
	for _, secret := range []string{"Kari.Nordmann@", "kari.nordmann@", "91234567", token[:20]} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log contains %q:\n%s", secret, logs)
		}
	}
	if !strings.Contains(logs.String(), "K***@Example.com") {
		t.Errorf("the log does not name the masked address:\n%s", logs)
	}
}

// TestConfirmUpdatesExistingSubscriber: confirming again keeps the
// subscriber's other settings and suppressions, but lifts an email opt-out
// made before the sign-up, and not one made after it.
func TestConfirmUpdatesExistingSubscriber(t *testing.T) {
	f, _ := newSignupFixture(t, (&mailbox{}).send)
	ctx := context.Background()
	id := SubscriberID("ola@example.com")
	now := time.Now()
	optedOut := notifier.Suppression{Reason: notifier.ReasonOptedOut, At: now.Add(-time.Hour)}
	stop := notifier.Suppression{Reason: notifier.ReasonOptedOut, Detail: "STOP", At: now.Add(-time.Hour)}
	if err := f.conn.Subscribers.Put(ctx, &notifier.Subscriber{ID: id, Name: "Ola", Email: "ola@example.com", Phone: "+4798765432",
		Locale: "en", Timezone: "Europe/London", Components: []string{"web"},
		Suppressed: map[notifier.ChannelName]notifier.Suppression{notifier.Email: optedOut, notifier.SMS: stop}}); err != nil {
		t.Fatal(err)
	}
	p := pending{Email: "ola@example.com", Locale: "nb", Issued: now.Unix(), Expires: now.Add(time.Hour).Unix()}
	if res, body := f.do(t, http.MethodGet, "/confirm/"+signPending(f.tokens, p), "", nil); res.StatusCode != 200 {
		t.Fatalf("confirm: %d %s", res.StatusCode, body)
	}
	sub, err := f.conn.Subscribers.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !sub.Reachable(notifier.Email) || sub.Reachable(notifier.SMS) || sub.Suppressed[notifier.SMS].Detail != "STOP" {
		t.Errorf("suppressions after confirming: %+v", sub.Suppressed)
	}
	if sub.Name != "Ola" || sub.Phone != "+4798765432" || sub.Timezone != "Europe/London" || len(sub.Components) != 1 || sub.Locale != "nb" {
		t.Errorf("subscriber after confirming: %+v", sub)
	}
	// Unsubscribed after the link was sent: an old link must not undo it.
	if _, err := f.conn.Subscribers.Update(ctx, id, func(s *notifier.Subscriber) error {
		s.Suppressed[notifier.Email] = notifier.Suppression{Reason: notifier.ReasonOptedOut, At: now.Add(time.Minute)}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	f.do(t, http.MethodGet, "/confirm/"+signPending(f.tokens, p), "", nil)
	if sub, _ := f.conn.Subscribers.Get(ctx, id); sub.Reachable(notifier.Email) {
		t.Error("an old confirmation link lifted a later unsubscribe")
	}
}

func TestConfirmRefusesAlteredAndExpiredLinks(t *testing.T) {
	f, _ := newSignupFixture(t, (&mailbox{}).send)
	now := time.Now()
	good := pending{Email: "kari@example.com", Locale: "nb", Issued: now.Unix(), Expires: now.Add(time.Hour).Unix()}
	tok := signPending(f.tokens, good)
	payload, sig, _ := strings.Cut(tok, ".")
	flipped := "A"
	if sig[0] == 'A' {
		flipped = "B"
	}
	other, _ := notifier.NewTokens([]byte("another-secret-another-secret!!"))
	evil := good
	evil.Email = "mallory@example.com"
	evilTok := signPending(f.tokens, evil)
	expired := good
	expired.Issued, expired.Expires = now.Add(-49*time.Hour).Unix(), now.Add(-time.Hour).Unix()
	for name, tc := range map[string]struct {
		token, want string
	}{
		"altered payload":   {strings.Split(evilTok, ".")[0] + "." + sig, "Denne lenken virker ikke"},
		"altered signature": {payload + "." + flipped + sig[1:], "Denne lenken virker ikke"},
		"other secret":      {signPending(other, good), "Denne lenken virker ikke"},
		"unsubscribe token": {f.tokens.Sign(notifier.TokenClaims{Purpose: notifier.PurposeUnsubscribe, SubscriberID: payload, Channel: notifier.Email}), "Denne lenken virker ikke"},
		"garbage":           {"not-a-token", "Denne lenken virker ikke"},
		"too long":          {strings.Repeat("a", 5000), "Denne lenken virker ikke"},
		"expired":           {signPending(f.tokens, expired), "Denne lenken er utløpt"},
	} {
		res, body := f.do(t, http.MethodGet, "/confirm/"+url.PathEscape(tc.token)+"?lang=nb", "", nil)
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(body, tc.want) || !strings.Contains(body, `href="http://status.example.com/subscribe?lang=nb"`) {
			t.Errorf("%s: %d, want 400 with %q", name, res.StatusCode, tc.want)
		}
	}
	if n := countSubscribers(t, f); n != 0 {
		t.Errorf("bad links created %d subscribers", n)
	}
	if _, err := verifyPending(f.tokens, tok, now.Add(render.ConfirmLinkValidity)); !errors.Is(err, errLinkExpired) {
		t.Errorf("verify at the expiry: %v, want errLinkExpired", err)
	}
	if p, err := verifyPending(f.tokens, tok, now); err != nil || p != good {
		t.Errorf("verify: %+v, %v", p, err)
	}
}

func TestSubscribeRefusesInvalidInput(t *testing.T) {
	mb := &mailbox{}
	f, _ := newSignupFixture(t, mb.send)
	for _, tc := range []struct {
		name   string
		body   io.Reader
		want   []string
		denied []string
	}{
		{"bad email", form("email", "kari@", "locale", "nb"), []string{"Skriv inn en e-postadresse", `value="kari@"`, `aria-invalid="true"`}, []string{"Skriv inn et mobilnummer"}},
		{"no email", form("phone", "+4791234567", "locale", "nb"), []string{"Skriv inn en e-postadresse", `value="&#43;4791234567"`}, nil},
		{"bad phone", form("email", "kari@example.com", "phone", "+47 123 45"), []string{"Enter a mobile number with country code", `value="kari@example.com"`}, []string{"Enter an email address"}},
		{"markup", form("email", `"><script>x</script>`, "locale", "en"), []string{"Enter an email address"}, []string{"<script>x"}},
	} {
		res, body := f.do(t, http.MethodPost, "/subscribe", "", tc.body)
		if res.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", tc.name, res.StatusCode)
		}
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s: page lacks %q", tc.name, w)
			}
		}
		for _, w := range tc.denied {
			if strings.Contains(body, w) {
				t.Errorf("%s: page has %q", tc.name, w)
			}
		}
	}
	if n := len(mb.all()); n != 0 {
		t.Errorf("invalid sign-ups sent %d emails", n)
	}
}

// TestSubscribeSameAnswerForSubscribedAddress: the form must not tell
// whether an address is subscribed.
func TestSubscribeSameAnswerForSubscribedAddress(t *testing.T) {
	mb := &mailbox{}
	f, _ := newSignupFixture(t, mb.send)
	if err := f.conn.Subscribers.Put(context.Background(), &notifier.Subscriber{ID: SubscriberID("kari@example.com"), Email: "kari@example.com"}); err != nil {
		t.Fatal(err)
	}
	type answer struct {
		status int
		header string
		body   string
	}
	get := func(addr string) answer {
		res, body := f.do(t, http.MethodPost, "/subscribe", "", form("email", addr, "locale", "en"))
		return answer{res.StatusCode, res.Header.Get("Content-Type") + "|" + res.Header.Get("Cache-Control"), body}
	}
	known, unknown := get("kari@example.com"), get("ola@example.com")
	if known != unknown || known.status != 200 {
		t.Errorf("answers differ or fail:\nsubscribed: %+v\nnew: %+v", known, unknown)
	}
	if n := len(mb.all()); n != 2 {
		t.Errorf("sent %d emails, want one to each address", n)
	}
}

// TestSubscribeRateLimits: one client gets a burst of sign-ups and then
// 429; one address gets a few emails, then none, with the same answer.
func TestSubscribeRateLimits(t *testing.T) {
	mb := &mailbox{}
	f, _ := newSignupFixture(t, mb.send)
	for i := range signupIPBurst + 1 {
		addr := "kari@example.com"
		if i == signupIPBurst {
			addr = "ola@example.com"
		}
		res, body := f.do(t, http.MethodPost, "/subscribe", "", form("email", addr, "locale", "nb"))
		switch {
		case i < signupIPBurst && res.StatusCode != 200:
			t.Fatalf("sign-up %d: %d", i, res.StatusCode)
		case i == signupIPBurst && (res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" ||
			!strings.Contains(body, "For mange påmeldinger")):
			t.Errorf("sign-up past the burst: %d, Retry-After %q", res.StatusCode, res.Header.Get("Retry-After"))
		}
	}
	sent := mb.all()
	if len(sent) != signupToBurst {
		t.Errorf("sent %d emails, want %d (the per-address burst)", len(sent), signupToBurst)
	}
	for _, s := range sent {
		if s.To != "kari@example.com" {
			t.Errorf("sent to %s past the client limit", s.To)
		}
	}
}

func TestSubscribeUnavailableWithoutSender(t *testing.T) {
	f, _ := newSignupFixture(t, nil)
	res, body := f.do(t, http.MethodPost, "/subscribe", "", form("email", "kari@example.com"))
	if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "Sign-up is not available") {
		t.Errorf("POST without a sender: %d", res.StatusCode)
	}
	if _, body := f.do(t, http.MethodGet, "/subscribe", "", nil); strings.Contains(body, "<form") {
		t.Error("the form is offered although sign-up is off")
	}
	broken, _ := newSignupFixture(t, func(context.Context, string, *notifier.Message) error { return errors.New("smtp down") })
	if res, _ := broken.do(t, http.MethodPost, "/subscribe", "", form("email", "kari@example.com")); res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("POST with a failing sender: %d, want 503", res.StatusCode)
	}
}

// TestConfirmationListUnsubscribeIsHarmless: the List-Unsubscribe target
// of confirmation emails sent before it was the cancel link (/subscribe)
// accepts a mail provider's one-click POST and does nothing.
func TestConfirmationListUnsubscribeIsHarmless(t *testing.T) {
	mb := &mailbox{}
	f, _ := newSignupFixture(t, mb.send)
	f.do(t, http.MethodPost, "/subscribe", "", form("email", "kari@example.com"))
	sent := mb.all()
	if len(sent) != 1 {
		t.Fatalf("sent %+v", sent)
	}
	res, _ := f.do(t, http.MethodPost, "/subscribe", "", strings.NewReader("List-Unsubscribe=One-Click"))
	if res.StatusCode != 200 || len(mb.all()) != 1 || countSubscribers(t, f) != 0 {
		t.Errorf("one-click POST: %d, %d emails", res.StatusCode, len(mb.all()))
	}
	// A link checker's HEAD confirms nothing.
	req, _ := http.NewRequest(http.MethodHead, f.srv.URL+linkPath(t, sent[0].M), nil)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 200 {
		t.Fatalf("HEAD: %v", err)
	}
	if countSubscribers(t, f) != 0 {
		t.Error("HEAD confirmed the sign-up")
	}
}
