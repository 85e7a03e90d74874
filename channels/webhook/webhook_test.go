package webhook

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/varsel/varsel/notifier"
)

// --- fixtures ---------------------------------------------------------------

func newSecret(t testing.TB) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// incidentDelivery returns the delivery of the second event ("…-1000",
// incident.updated) of an incident, to a subscriber at url.
func incidentDelivery(url, secret string) *notifier.Delivery {
	opened := &notifier.Event{
		ID: "styreweb-2019-09-16-0800", Type: notifier.IncidentOpened, Time: mustTime("2019-09-16T08:00:00+02:00"),
		Incident: &notifier.Incident{
			ID:     "styreweb-login-2019-09",
			Title:  notifier.Localized{"en": "Login problems in StyreWeb", "nb": "Problemer med innlogging i StyreWeb"},
			Status: notifier.StatusInvestigating, Impact: notifier.ImpactMajor,
			Components: []string{"styreweb"}, StartedAt: mustTime("2019-09-16T07:50:00+02:00"),
			Message: notifier.Localized{"en": "We are looking into it.", "nb": "Vi undersøker saken."},
		},
	}
	next := mustTime("2019-09-17T12:00:00+02:00")
	updated := &notifier.Event{
		ID: "styreweb-2019-09-17-1000", Type: notifier.IncidentUpdated, Time: mustTime("2019-09-17T10:00:00+02:00"),
		Incident: &notifier.Incident{
			ID:     "styreweb-login-2019-09",
			Title:  notifier.Localized{"en": "Login problems in StyreWeb", "nb": "Problemer med innlogging i StyreWeb"},
			Status: notifier.StatusIdentified, Impact: notifier.ImpactMajor,
			Components: []string{"styreweb", "gnist"}, StartedAt: mustTime("2019-09-16T07:50:00+02:00"),
			NextUpdateAt: &next,
			Message:      notifier.Localized{"en": "We are still working on it.", "nb": "Arbeidet pågår fortsatt."},
		},
	}
	state := &notifier.IncidentState{}
	state.Apply(opened)
	state.Apply(updated)
	sub := &notifier.Subscriber{ID: "acme", WebhookURL: url, WebhookSecret: secret, Locale: "nb"}
	return &notifier.Delivery{
		ID:         notifier.DeliveryID(updated.ID, sub.ID, notifier.Webhook),
		Channel:    notifier.Webhook,
		Event:      updated,
		Incident:   state,
		Subscriber: sub,
		Message: &notifier.Message{
			Locale: "nb", ContentLocale: "nb",
			WebhookText: "StyreWeb: Problemer med innlogging i StyreWeb — identifisert. Neste oppdatering kl. 12:00.",
			StatusURL:   "https://status.example.com/",
			IncidentURL: "https://status.example.com/incidents/styreweb-login-2019-09",
		},
		Attempt: 1,
	}
}

// received is one request a receiver got.
type received struct {
	header http.Header
	body   []byte
	// verified maps each secret the receiver knows to the official
	// library's verdict on the request.
	verified map[string]error
}

// receiver is an httptest server that verifies every delivery with the
// official Standard Webhooks library and answers with respond.
type receiver struct {
	srv      *httptest.Server
	secrets  []string
	respond  func(n int, w http.ResponseWriter, r *http.Request)
	newConns atomic.Int64

	mu   sync.Mutex
	reqs []received
}

func newReceiver(t testing.TB, respond func(n int, w http.ResponseWriter, r *http.Request), secrets ...string) *receiver {
	t.Helper()
	rc := &receiver{secrets: secrets, respond: respond}
	rc.srv = httptest.NewUnstartedServer(http.HandlerFunc(rc.serve))
	rc.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			rc.newConns.Add(1)
		}
	}
	rc.srv.Start()
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	got := received{header: r.Header.Clone(), body: body, verified: map[string]error{}}
	for _, s := range rc.secrets {
		wh, err := standardwebhooks.NewWebhook(s)
		if err == nil {
			err = wh.Verify(body, r.Header)
		}
		got.verified[s] = err
	}
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, got)
	n := len(rc.reqs)
	rc.mu.Unlock()
	if rc.respond == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	rc.respond(n, w, r)
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.reqs...)
}

func status(code int) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

func newTestChannel(t testing.TB, cfg Config, logger *slog.Logger) *Channel {
	t.Helper()
	cfg.AllowPrivate = true
	c, err := New(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func sendErr(t *testing.T, err error) *notifier.SendError {
	t.Helper()
	var se *notifier.SendError
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not a *notifier.SendError", err, err)
	}
	return se
}

// --- delivery and payload -----------------------------------------------------

func TestNotifyDeliversSignedPayload(t *testing.T) {
	secret := newSecret(t)
	other := newSecret(t)
	rc := newReceiver(t, nil, secret, other)
	c := newTestChannel(t, Config{UserAgent: "Varsel/1.2.3"}, nil)
	d := incidentDelivery(rc.srv.URL+"/hooks/varsel", secret)

	rec, retry, err := c.Notify(context.Background(), d)
	if err != nil || retry {
		t.Fatalf("Notify = %v, retry %v", err, retry)
	}
	reqs := rc.requests()
	if len(reqs) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(reqs))
	}
	got := reqs[0]
	if err := got.verified[secret]; err != nil {
		t.Errorf("official library rejects the signature: %v", err)
	}
	if got.verified[other] == nil {
		t.Error("a signature verified with an unrelated secret")
	}
	id := got.header.Get("webhook-id")
	if id != MessageID(d.ID) || rec.ProviderID != id || !strings.HasPrefix(id, "msg_") {
		t.Errorf("webhook-id %q, receipt %q, want %q", id, rec.ProviderID, MessageID(d.ID))
	}
	if ua := got.header.Get("User-Agent"); ua != "Varsel/1.2.3" {
		t.Errorf("User-Agent %q", ua)
	}
	if ct := got.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}

	var p struct {
		Type      string `json:"type"`
		Timestamp string `json:"timestamp"`
		Data      struct {
			EventID  string             `json:"event_id"`
			Incident *notifier.Incident `json:"incident"`
			Letter   json.RawMessage    `json:"letter"`
			Update   *notifier.Update   `json:"update"`
			Sequence int64              `json:"sequence"`
			Locale   string             `json:"locale"`
			Text     string             `json:"text"`
			Links    map[string]string  `json:"links"`
		} `json:"data"`
	}
	if err := json.Unmarshal(got.body, &p); err != nil {
		t.Fatalf("payload is not JSON: %v\n%s", err, got.body)
	}
	ts, err := time.Parse(time.RFC3339, p.Timestamp)
	if err != nil || time.Since(ts) > time.Minute {
		t.Errorf("timestamp %q is not a recent RFC 3339 time: %v", p.Timestamp, err)
	}
	if hts := got.header.Get("webhook-timestamp"); hts != fmt.Sprint(ts.Unix()) {
		t.Errorf("webhook-timestamp %s, payload timestamp %s", hts, p.Timestamp)
	}
	if p.Type != "incident.updated" || p.Data.EventID != d.Event.ID {
		t.Errorf("type %q event_id %q", p.Type, p.Data.EventID)
	}
	if p.Data.Incident == nil || p.Data.Incident.Title["en"] == "" || p.Data.Incident.Title["nb"] == "" ||
		p.Data.Incident.Status != notifier.StatusIdentified || len(p.Data.Incident.Components) != 2 {
		t.Errorf("incident is not the full current state in every language: %+v", p.Data.Incident)
	}
	if p.Data.Update == nil || p.Data.Update.EventID != d.Event.ID || p.Data.Update.Message["nb"] == "" {
		t.Errorf("update is not this event's timeline entry: %+v", p.Data.Update)
	}
	if p.Data.Sequence != 2 || p.Data.Update == nil || p.Data.Update.Sequence != 2 {
		t.Errorf("sequence %d, want 2", p.Data.Sequence)
	}
	if p.Data.Letter != nil {
		t.Errorf("letter present on an incident event: %s", p.Data.Letter)
	}
	if p.Data.Locale != "nb" || p.Data.Text != d.Message.WebhookText {
		t.Errorf("locale %q text %q", p.Data.Locale, p.Data.Text)
	}
	if p.Data.Links["status"] != d.Message.StatusURL || p.Data.Links["incident"] != d.Message.IncidentURL {
		t.Errorf("links %v", p.Data.Links)
	}
}

func TestPayloadLetter(t *testing.T) {
	d := incidentDelivery("https://hooks.example.com/x", "")
	d.Event = &notifier.Event{
		ID: "letter-2019-09-20", Type: notifier.LetterBroadcast, Time: mustTime("2019-09-20T09:00:00+02:00"),
		Letter: &notifier.Letter{
			IncidentID: "styreweb-login-2019-09",
			Audience:   notifier.Audience{All: true},
			Subject:    notifier.Localized{"en": "About last week's outage", "nb": "Om driftsavbruddet forrige uke"},
			Body:       notifier.Localized{"en": "We are sorry.", "nb": "Vi beklager."},
			Signature:  notifier.Signature{Name: "Kari Nordmann"},
		},
	}
	b, err := json.Marshal(buildPayload(d, time.Unix(1568962800, 0)))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Type string         `json:"type"`
		Data map[string]any `json:"data"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	data := m.Data
	if m.Type != "letter.broadcast" {
		t.Errorf("type %q", m.Type)
	}
	if _, ok := data["letter"]; !ok {
		t.Errorf("no letter in %s", b)
	}
	for _, absent := range []string{"incident", "update", "sequence"} {
		if _, ok := data[absent]; ok {
			t.Errorf("%s present on a letter: %s", absent, b)
		}
	}
	if !strings.Contains(string(b), `"timestamp":"2019-09-20T07:00:00Z"`) {
		t.Errorf("timestamp not RFC 3339 UTC: %s", b)
	}
}

func TestMessageIDStable(t *testing.T) {
	a, b := MessageID("e1.s1.webhook"), MessageID("e1.s1.webhook")
	if a != b || a == MessageID("e1.s2.webhook") {
		t.Errorf("MessageID not stable or not distinct: %q %q", a, b)
	}
	if len(a) != len("msg_")+26 || strings.ToLower(a) != a {
		t.Errorf("MessageID %q: want msg_ and 26 lower-case base32 characters", a)
	}
}

func TestSecretRotation(t *testing.T) {
	current, previous := newSecret(t), newSecret(t)
	rc := newReceiver(t, nil, current, previous)
	c := newTestChannel(t, Config{}, nil)

	tests := []struct {
		name          string
		until         time.Time
		wantSigs      int
		wantPrevValid bool
	}{
		{"previous still active", time.Now().Add(time.Hour), 2, true},
		{"previous expired", time.Now().Add(-time.Minute), 1, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := incidentDelivery(rc.srv.URL, current)
			d.Subscriber.PreviousWebhookSecret = previous
			d.Subscriber.PreviousSecretUntil = &tt.until
			if _, _, err := c.Notify(context.Background(), d); err != nil {
				t.Fatal(err)
			}
			got := rc.requests()[i]
			if sigs := strings.Fields(got.header.Get("webhook-signature")); len(sigs) != tt.wantSigs {
				t.Errorf("%d signatures %q, want %d", len(sigs), sigs, tt.wantSigs)
			}
			if err := got.verified[current]; err != nil {
				t.Errorf("current secret does not verify: %v", err)
			}
			if err := got.verified[previous]; (err == nil) != tt.wantPrevValid {
				t.Errorf("previous secret verifies: %v, want %v", err == nil, tt.wantPrevValid)
			}
		})
	}
}

// --- SSRF ---------------------------------------------------------------------

// refusedTargets are the addresses every check must refuse; port is filled
// with the port of a counting loopback listener.
var refusedTargets = []struct{ name, host string }{
	{"loopback", "127.0.0.1"},
	{"private 10/8", "10.0.0.1"},
	{"private 172.16/12", "172.16.0.1"},
	{"private 192.168/16", "192.168.1.1"},
	{"cloud metadata", "169.254.169.254"},
	{"IPv6 loopback", "[::1]"},
	{"unique local", "[fc00::1]"},
	{"IPv4-mapped loopback", "[::ffff:127.0.0.1]"},
	{"IPv4-mapped metadata", "[::ffff:169.254.169.254]"},
	{"unspecified", "0.0.0.0"},
	{"IPv6 unspecified", "[::]"},
	{"CGNAT", "100.64.0.1"},
	{"multicast", "224.0.0.1"},
	{"IPv6 link-local", "[fe80::1]"},
	{"NAT64 of private", "[64:ff9b::a00:1]"},
	{"name resolving to loopback", "localhost"},
}

func TestBlockedWhy(t *testing.T) {
	for _, s := range []string{"93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:93.184.216.34", "64:ff9b::5db8:d822"} {
		if why := blockedWhy(netip.MustParseAddr(s)); why != "" {
			t.Errorf("public %s refused: %s", s, why)
		}
	}
	for _, s := range []string{"127.0.0.1", "10.0.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254", "::1", "fc00::1", "fd12::1", "fe80::1%eth0", "::ffff:127.0.0.1", "::ffff:10.1.2.3", "0.0.0.0", "::", "100.64.0.1", "100.127.255.254", "224.0.0.1", "ff02::1", "255.255.255.255", "64:ff9b::7f00:1"} {
		if why := blockedWhy(netip.MustParseAddr(s)); why == "" {
			t.Errorf("%s allowed", s)
		}
	}
}

func TestCheckTarget(t *testing.T) {
	ctx := context.Background()
	for _, tt := range refusedTargets {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckTarget(ctx, "https://"+tt.host+"/hook", false)
			var te *TargetError
			if !errors.As(err, &te) || !errors.Is(err, ErrTargetRefused) {
				t.Fatalf("CheckTarget = %v, want a *TargetError", err)
			}
			if !strings.Contains(err.Error(), te.Addr.String()) || te.Why == "" || !strings.Contains(err.Error(), te.Why) {
				t.Errorf("error %q does not say which address and why", err)
			}
			if err := CheckTarget(ctx, "https://"+tt.host+"/hook", true); err != nil {
				t.Errorf("with allowPrivate: %v", err)
			}
		})
	}
	for _, ok := range []string{"https://93.184.216.34/hook", "http://[2606:4700:4700::1111]:8080/x?token=1"} {
		if err := CheckTarget(ctx, ok, false); err != nil {
			t.Errorf("CheckTarget(%s) = %v", ok, err)
		}
	}
	for _, bad := range []string{"ftp://93.184.216.34/", "file:///etc/passwd", "gopher://x", "https:///nohost", "::not a url"} {
		err := CheckTarget(ctx, bad, true)
		if !errors.Is(err, ErrTargetRefused) && !errors.Is(err, ErrInvalidURL) {
			t.Errorf("CheckTarget(%q) = %v, want refused or invalid", bad, err)
		}
	}
}

// TestDialControlRefuses runs the dial-time check on resolved addresses as
// the dialer hands them over, without any socket.
func TestDialControlRefuses(t *testing.T) {
	control := dialControl(false, func(address string) error {
		t.Errorf("guard reached for %s", address)
		return nil
	})
	for _, addr := range []string{"127.0.0.1:80", "10.0.0.1:443", "172.16.0.1:443", "192.168.1.1:80", "169.254.169.254:80", "[::1]:80", "[fc00::1]:80", "[::ffff:127.0.0.1]:80", "0.0.0.0:80", "[fe80::1%eth0]:80", "100.64.0.1:80"} {
		err := control(context.Background(), "tcp", addr, nil)
		if !errors.Is(err, ErrTargetRefused) {
			t.Errorf("control(%s) = %v, want refused", addr, err)
		}
	}
	if err := dialControl(true, nil)(context.Background(), "tcp", "127.0.0.1:80", nil); err != nil {
		t.Errorf("allowPrivate control refused loopback: %v", err)
	}
	if err := dialControl(false, nil)(context.Background(), "tcp", "93.184.216.34:443", nil); err != nil {
		t.Errorf("control refused a public address: %v", err)
	}
}

// TestNotifyRefusesPrivateTargets sends to every refused target through the
// real client. The loopback ones point at a counting listener, which must
// see no connection; a guard behind the check fails the test if any
// address gets as far as a connect.
func TestNotifyRefusesPrivateTargets(t *testing.T) {
	secret := newSecret(t)
	rc := newReceiver(t, nil, secret)
	_, port, _ := net.SplitHostPort(rc.srv.Listener.Addr().String())

	var dialled []string
	var mu sync.Mutex
	guard := func(address string) error {
		mu.Lock()
		dialled = append(dialled, address)
		mu.Unlock()
		if ap, err := netip.ParseAddrPort(address); err != nil || !ap.Addr().Unmap().IsLoopback() {
			return fmt.Errorf("test guard: refusing to dial non-loopback %s", address)
		}
		return nil
	}
	strict, err := newChannel(Config{}, nil, guard)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range refusedTargets {
		t.Run(tt.name, func(t *testing.T) {
			d := incidentDelivery("http://"+tt.host+":"+port+"/hook", secret)
			_, retry, err := strict.Notify(context.Background(), d)
			se := sendErr(t, err)
			var te *TargetError
			if se.Reason != notifier.ReasonRejected || retry || !errors.As(err, &te) {
				t.Fatalf("Notify = %v (reason %s, retry %v), want rejected without retry", err, se.Reason, retry)
			}
			if !strings.Contains(err.Error(), te.Addr.String()) || !strings.Contains(err.Error(), te.Why) {
				t.Errorf("error %q does not name the address and why", err)
			}
		})
	}
	if n := rc.newConns.Load(); n != 0 || len(rc.requests()) != 0 {
		t.Errorf("refused targets reached the listener: %d connections", n)
	}
	if len(dialled) != 0 {
		t.Errorf("addresses passed the check and were dialled: %v", dialled)
	}

	// Control: the same listener does count a connection when allowed.
	lax, err := newChannel(Config{AllowPrivate: true}, nil, guard)
	if err != nil {
		t.Fatal(err)
	}
	defer lax.CloseIdleConnections()
	if _, _, err := lax.Notify(context.Background(), incidentDelivery("http://localhost:"+port+"/hook", secret)); err != nil {
		t.Fatalf("AllowPrivate delivery: %v", err)
	}
	if rc.newConns.Load() != 1 {
		t.Errorf("counting listener saw %d connections, want 1", rc.newConns.Load())
	}
}

// --- responses ----------------------------------------------------------------

func TestRedirectNotFollowed(t *testing.T) {
	secret := newSecret(t)
	var followed atomic.Int64
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/moved" {
			followed.Add(1)
			return
		}
		http.Redirect(w, r, "/moved", http.StatusTemporaryRedirect)
	}, secret)
	c := newTestChannel(t, Config{}, nil)
	for _, path := range []string{"/hook"} {
		_, retry, err := c.Notify(context.Background(), incidentDelivery(rc.srv.URL+path, secret))
		se := sendErr(t, err)
		if se.Reason != notifier.ReasonRejected || retry || !errors.Is(err, ErrRedirect) {
			t.Errorf("Notify = %v, retry %v; want rejected redirect, no retry", err, retry)
		}
	}
	if followed.Load() != 0 || len(rc.requests()) != 1 {
		t.Errorf("redirect followed: %d requests to /moved, %d in all", followed.Load(), len(rc.requests()))
	}
}

func TestResponseClassification(t *testing.T) {
	now := time.Now()
	date := now.Add(90 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name       string
		code       int
		retryAfter string
		wantErr    bool
		reason     notifier.Reason
		retry      bool
		suppress   bool
		// after bounds the RetryAfter returned.
		afterMin, afterMax time.Duration
	}{
		{name: "200", code: 200},
		{name: "202", code: 202},
		{name: "204", code: 204},
		{name: "410 suppresses", code: 410, wantErr: true, reason: notifier.ReasonGone, suppress: true},
		{name: "400", code: 400, wantErr: true, reason: notifier.ReasonRejected},
		{name: "401", code: 401, wantErr: true, reason: notifier.ReasonRejected},
		{name: "404", code: 404, wantErr: true, reason: notifier.ReasonRejected},
		{name: "301", code: 301, wantErr: true, reason: notifier.ReasonRejected},
		{name: "500", code: 500, wantErr: true, reason: notifier.ReasonServer, retry: true},
		{name: "501", code: 501, wantErr: true, reason: notifier.ReasonServer, retry: true},
		{name: "429 seconds", code: 429, retryAfter: "120", wantErr: true, reason: notifier.ReasonRateLimited, retry: true, afterMin: 120 * time.Second, afterMax: 120 * time.Second},
		{name: "503 date", code: 503, retryAfter: date, wantErr: true, reason: notifier.ReasonServer, retry: true, afterMin: 80 * time.Second, afterMax: 91 * time.Second},
		{name: "502 capped", code: 502, retryAfter: "99999999", wantErr: true, reason: notifier.ReasonServer, retry: true, afterMin: MaxRetryAfter, afterMax: MaxRetryAfter},
		{name: "504 without", code: 504, wantErr: true, reason: notifier.ReasonServer, retry: true},
		{name: "503 garbage", code: 503, retryAfter: "soon", wantErr: true, reason: notifier.ReasonServer, retry: true},
	}
	secret := newSecret(t)
	c := newTestChannel(t, Config{}, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				if tt.code >= 300 && tt.code < 400 {
					w.Header().Set("Location", "/elsewhere")
				}
				w.WriteHeader(tt.code)
			}, secret)
			rec, retry, err := c.Notify(context.Background(), incidentDelivery(rc.srv.URL, secret))
			if retry != tt.retry {
				t.Errorf("retry = %v, want %v", retry, tt.retry)
			}
			if !tt.wantErr {
				if err != nil || rec.ProviderID == "" {
					t.Errorf("Notify = %v, receipt %+v", err, rec)
				}
				return
			}
			se := sendErr(t, err)
			if se.Reason != tt.reason || se.Suppress != tt.suppress {
				t.Errorf("reason %s suppress %v, want %s %v (%v)", se.Reason, se.Suppress, tt.reason, tt.suppress, err)
			}
			if se.RetryAfter < tt.afterMin || se.RetryAfter > tt.afterMax {
				t.Errorf("RetryAfter %v, want %v–%v", se.RetryAfter, tt.afterMin, tt.afterMax)
			}
			if !strings.Contains(err.Error(), fmt.Sprint(tt.code)) {
				t.Errorf("error %q does not give the status", err)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := map[string]time.Duration{
		"":                              0,
		"0":                             0,
		"-5":                            0,
		"30":                            30 * time.Second,
		" 30 ":                          30 * time.Second,
		"86401":                         MaxRetryAfter,
		"Thu, 02 Jan 2025 03:05:05 GMT": time.Minute,
		"Thu, 02 Jan 2025 03:00:00 GMT": 0,
		"Sat, 01 Jan 2033 00:00:00 GMT": MaxRetryAfter,
		"tomorrow":                      0,
	}
	for in, want := range tests {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

// TestRetryThenSuccess: a receiver failing twice then succeeding gets the
// same webhook-id every time, each attempt freshly signed, and exactly one
// attempt succeeds.
func TestRetryThenSuccess(t *testing.T) {
	secret := newSecret(t)
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		switch n {
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable)
		case 2:
			w.WriteHeader(http.StatusInternalServerError)
		default:
			w.WriteHeader(http.StatusOK)
		}
	}, secret)
	c := newTestChannel(t, Config{}, nil)
	d := incidentDelivery(rc.srv.URL, secret)
	successes := 0
	var receipt notifier.Receipt
	for attempt := 1; attempt <= c.MaxAttempts(); attempt++ {
		d.Attempt = attempt
		rec, retry, err := c.Notify(context.Background(), d)
		if err == nil {
			successes++
			receipt = rec
			break
		}
		if !retry {
			t.Fatalf("attempt %d: %v without retry", attempt, err)
		}
	}
	reqs := rc.requests()
	if successes != 1 || len(reqs) != 3 {
		t.Fatalf("%d successes after %d requests, want 1 after 3", successes, len(reqs))
	}
	for i, r := range reqs {
		if id := r.header.Get("webhook-id"); id != reqs[0].header.Get("webhook-id") || id != receipt.ProviderID {
			t.Errorf("attempt %d webhook-id %q, first %q, receipt %q", i+1, id, reqs[0].header.Get("webhook-id"), receipt.ProviderID)
		}
		if err := r.verified[secret]; err != nil {
			t.Errorf("attempt %d does not verify: %v", i+1, err)
		}
	}
}

func TestTimeoutRetries(t *testing.T) {
	secret := newSecret(t)
	release := make(chan struct{})
	rc := newReceiver(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}, secret)
	defer close(release)
	c := newTestChannel(t, Config{Timeout: 200 * time.Millisecond, ConnectTimeout: 100 * time.Millisecond}, nil)
	_, retry, err := c.Notify(context.Background(), incidentDelivery(rc.srv.URL, secret))
	se := sendErr(t, err)
	if se.Reason != notifier.ReasonTimeout || !retry {
		t.Errorf("Notify = %v (reason %s, retry %v), want a timeout to retry", err, se.Reason, retry)
	}
}

func TestNetworkErrorRetries(t *testing.T) {
	rc := newReceiver(t, nil)
	url := rc.srv.URL
	rc.srv.Close()
	c := newTestChannel(t, Config{}, nil)
	_, retry, err := c.Notify(context.Background(), incidentDelivery(url, newSecret(t)))
	se := sendErr(t, err)
	if se.Reason != notifier.ReasonNetwork || !retry {
		t.Errorf("Notify = %v (reason %s, retry %v), want a network error to retry", err, se.Reason, retry)
	}
}

func TestUnusableDeliveries(t *testing.T) {
	c := newTestChannel(t, Config{}, nil)
	tests := []struct {
		name   string
		mutate func(d *notifier.Delivery)
		reason notifier.Reason
	}{
		{"no message", func(d *notifier.Delivery) { d.Message = nil }, notifier.ReasonRejected},
		{"no url", func(d *notifier.Delivery) { d.Subscriber.WebhookURL = "" }, notifier.ReasonInvalidAddress},
		{"bad scheme", func(d *notifier.Delivery) { d.Subscriber.WebhookURL = "ftp://127.0.0.1/" }, notifier.ReasonRejected},
		{"bad secret", func(d *notifier.Delivery) { d.Subscriber.WebhookSecret = "hunter2" }, notifier.ReasonRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := incidentDelivery("http://127.0.0.1:9/hook", newSecret(t))
			tt.mutate(d)
			_, retry, err := c.Notify(context.Background(), d)
			if se := sendErr(t, err); se.Reason != tt.reason || retry {
				t.Errorf("Notify = %v (reason %s, retry %v), want %s without retry", err, se.Reason, retry, tt.reason)
			}
		})
	}
}

// TestSecretsNeverLogged drives every outcome with a URL carrying
// credentials, a token in the path and one in the query, and checks that
// neither they nor the signing secrets reach the log or an error.
func TestSecretsNeverLogged(t *testing.T) {
	secret, previous := newSecret(t), newSecret(t)
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("answer") {
		case "302":
			http.Redirect(w, r, "https://user:pa55word@elsewhere.example/p4thtoken?token=t0ken", http.StatusFound)
		case "":
			w.WriteHeader(http.StatusOK)
		default:
			var code int
			fmt.Sscan(r.URL.Query().Get("answer"), &code)
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(code)
		}
	}, secret)
	lax := newTestChannel(t, Config{}, logger)
	strict, err := New(Config{}, logger)
	if err != nil {
		t.Fatal(err)
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	withCreds := func(base, answer string) string {
		u := strings.Replace(base, "http://", "http://user:pa55word@", 1) + "/p4thtoken?token=t0ken"
		if answer != "" {
			u += "&answer=" + answer
		}
		return u
	}
	var errs []error
	for _, tc := range []struct {
		c   *Channel
		url string
	}{
		{lax, withCreds(rc.srv.URL, "")},
		{lax, withCreds(rc.srv.URL, "500")},
		{lax, withCreds(rc.srv.URL, "429")},
		{lax, withCreds(rc.srv.URL, "410")},
		{lax, withCreds(rc.srv.URL, "404")},
		{lax, withCreds(rc.srv.URL, "302")},
		{lax, withCreds(closed.URL, "")},
		{strict, withCreds(rc.srv.URL, "")},
		{strict, withCreds("http://localhost:1", "")},
		{strict, strings.Replace(withCreds("http://localhost:1", ""), "http:", "ftp:", 1)},
	} {
		d := incidentDelivery(tc.url, secret)
		until := time.Now().Add(time.Hour)
		d.Subscriber.PreviousWebhookSecret, d.Subscriber.PreviousSecretUntil = previous, &until
		_, _, err := tc.c.Notify(context.Background(), d)
		errs = append(errs, err, CheckTarget(context.Background(), tc.url, false))
	}
	// A malformed previous secret is skipped with a warning that must not quote it.
	d := incidentDelivery(withCreds(rc.srv.URL, ""), secret)
	until := time.Now().Add(time.Hour)
	d.Subscriber.PreviousWebhookSecret, d.Subscriber.PreviousSecretUntil = "whsec_notbase64!!t0ken", &until
	_, _, err = lax.Notify(context.Background(), d)
	errs = append(errs, err)

	var all strings.Builder
	all.WriteString(logs.String())
	nonNil := 0
	for _, err := range errs {
		if err != nil {
			nonNil++
			all.WriteString(err.Error() + "\n")
		}
	}
	out := all.String()
	if nonNil < 10 || !strings.Contains(out, "127.0.0.1") || !strings.Contains(out, "webhook not delivered") || !strings.Contains(out, "previous webhook secret") {
		t.Fatalf("too little was logged or returned to check (%d errors):\n%s", nonNil, out)
	}
	for _, leak := range []string{secret, strings.TrimPrefix(secret, "whsec_"), previous, strings.TrimPrefix(previous, "whsec_"), "pa55word", "t0ken", "p4thtoken", "notbase64"} {
		if strings.Contains(out, leak) {
			t.Errorf("%q leaked into logs or errors:\n%s", leak, out)
		}
	}
}

// --- configuration and schedule -------------------------------------------------

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero config: %v", err)
	}
	bad := Config{
		Timeout: -1, ConnectTimeout: -1, MaxResponseBody: -1,
		Schedule: []time.Duration{time.Second, -time.Second}, UserAgent: "Varsel\r\nX-Evil: 1", MaxIdleConnsPerHost: -1,
	}
	err := bad.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"timeout -1ns", "connect timeout -1ns", "max response body", "schedule[1]", "user agent", "max idle"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if err := (Config{Timeout: time.Second, ConnectTimeout: 2 * time.Second}).Validate(); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("connect timeout over total: %v", err)
	}
	if _, err := New(bad, nil); err == nil {
		t.Error("New accepted an invalid config")
	}
}

func TestBackoffSchedule(t *testing.T) {
	c := newTestChannel(t, Config{}, nil)
	if c.MaxAttempts() != 9 {
		t.Errorf("MaxAttempts = %d, want 9", c.MaxAttempts())
	}
	want := map[int]time.Duration{0: 0, 1: 0, 2: 5 * time.Second, 3: 5 * time.Minute, 4: 30 * time.Minute, 5: 2 * time.Hour, 6: 5 * time.Hour, 7: 10 * time.Hour, 8: 10 * time.Hour, 20: 10 * time.Hour}
	for attempt, d := range want {
		if got := c.Backoff(attempt); got != d {
			t.Errorf("Backoff(%d) = %v, want %v", attempt, got, d)
		}
	}
	custom := []time.Duration{time.Second, time.Minute}
	cc := newTestChannel(t, Config{Schedule: custom}, nil)
	custom[0] = time.Hour // the channel keeps its own copy
	if cc.MaxAttempts() != 3 || cc.Backoff(1) != time.Second || cc.Backoff(5) != time.Minute {
		t.Errorf("custom schedule: MaxAttempts %d, Backoff(1) %v, Backoff(5) %v", cc.MaxAttempts(), cc.Backoff(1), cc.Backoff(5))
	}
}

// --- connection reuse and benchmark ------------------------------------------------

func TestConnectionReuse(t *testing.T) {
	secret := newSecret(t)
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		// A body bigger than nothing, smaller than the read limit.
		w.Write(bytes.Repeat([]byte("ok"), 1000))
	}, secret)
	c := newTestChannel(t, Config{}, nil)
	d := incidentDelivery(rc.srv.URL, secret)
	for range 20 {
		if _, _, err := c.Notify(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	if n := rc.newConns.Load(); n != 1 {
		t.Errorf("20 sequential deliveries opened %d connections, want 1", n)
	}
}

func BenchmarkNotify(b *testing.B) {
	for _, parallel := range []bool{false, true} {
		name := "sequential"
		if parallel {
			name = "parallel"
		}
		b.Run(name, func(b *testing.B) {
			secret := newSecret(b)
			rc := newReceiver(b, nil) // no verification: measure the sender
			c := newTestChannel(b, Config{}, nil)
			d := incidentDelivery(rc.srv.URL, secret)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			if parallel {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, _, err := c.Notify(context.Background(), d); err != nil {
							b.Error(err)
							return
						}
					}
				})
			} else {
				for b.Loop() {
					if _, _, err := c.Notify(context.Background(), d); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "deliveries/s")
			b.ReportMetric(float64(rc.newConns.Load()), "new-conns")
		})
	}
}

// TestBodyCacheMatchesMarshal checks that bodies built around a cached
// data object are byte for byte what encoding the whole payload gives, and
// that a message, event or time that differs gets its own.
func TestBodyCacheMatchesMarshal(t *testing.T) {
	var c bodyCache
	base := incidentDelivery("https://hooks.example.com/x", "")
	base.Message.ComponentNames = map[string]string{"styreweb": "StyreWeb", "gnist": "Gnist <API> & co"}
	letter := *base
	letter.Event = &notifier.Event{ID: "letter-2019-09-20", Type: notifier.LetterBroadcast, Time: mustTime("2019-09-20T09:00:00+02:00"),
		Letter: &notifier.Letter{IncidentID: "styreweb-login-2019-09", Audience: notifier.Audience{All: true},
			Subject: notifier.Localized{"en": "About the outage", "nb": "Om driftsavbruddet"}, Body: notifier.Localized{"en": "Sorry.", "nb": "Vi beklager."}}}
	other := func(f func(m *notifier.Message)) *notifier.Delivery {
		d := *base
		m := *base.Message
		f(&m)
		d.Message = &m
		return &d
	}
	cases := []*notifier.Delivery{
		base, base, &letter,
		other(func(m *notifier.Message) { m.WebhookText = "Ny tekst <b>\u2028</b>" }),
		other(func(m *notifier.Message) { m.Locale = "en" }),
		other(func(m *notifier.Message) { m.ComponentNames = map[string]string{"styreweb": "StyreWeb"} }),
		other(func(m *notifier.Message) { m.ComponentNames = nil }),
		other(func(m *notifier.Message) { m.StatusURL = "https://status.example.com/?tz=America/New_York" }),
	}
	for i, d := range cases {
		for _, now := range []time.Time{time.Unix(1568962800, 0), time.Unix(1568962861, 0)} {
			got, err := c.body(d, now)
			if err != nil {
				t.Fatal(err)
			}
			want, err := json.Marshal(buildPayload(d, now))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("case %d at %v:\n got %s\nwant %s", i, now, got, want)
			}
		}
	}
	if n := len(c.m); n != len(cases)-1 {
		t.Errorf("%d data objects cached, want %d (one per distinct message)", n, len(cases)-1)
	}
}

// BenchmarkSign is the work of one delivery before it is posted: the body
// around the cached data object, the signature and the headers.
func BenchmarkSign(b *testing.B) {
	d := incidentDelivery("https://hooks.example.com/x", newSecret(b))
	var bodies bodyCache
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := signWith(d, now, "", nil, &bodies); err != nil {
			b.Fatal(err)
		}
	}
}
