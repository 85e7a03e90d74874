package web

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/varsel/varsel/notifier"
	"github.com/varsel/varsel/notifier/jetstream"
	"github.com/varsel/varsel/notifier/render"
)

type fixture struct {
	srv    *httptest.Server
	h      http.Handler // what srv serves
	conn   *jetstream.Conn
	status *jetstream.StatusCache
	tokens *notifier.Tokens
}

// deps are the handlers' parts on conn, with a read model watching it.
func fixtureDeps(t *testing.T, conn *jetstream.Conn) (Deps, *jetstream.StatusCache) {
	t.Helper()
	return fixtureDepsLogged(t, conn, slog.New(slog.DiscardHandler))
}

// fixtureDepsLogged is fixtureDeps with the read model logging to logger.
func fixtureDepsLogged(t *testing.T, conn *jetstream.Conn, logger *slog.Logger) (Deps, *jetstream.StatusCache) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	status, err := conn.WatchStatus(ctx, logger)
	if err != nil {
		t.Fatal(err)
	}
	return Deps{Status: status, Subscribers: conn.Subscribers, Operator: conn, Registry: prometheus.NewRegistry()}, status
}

// update changes an incident in the store and waits until the pages see it.
func (f *fixture) update(t *testing.T, id string, fn func(*notifier.IncidentState) error) {
	t.Helper()
	st, err := f.conn.Incidents.Update(context.Background(), id, fn)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if got, ok := f.status.Incident(id); ok && got.Sequence == st.Sequence && len(got.Letters) == len(st.Letters) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pages did not see incident %s change", id)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f, _ := buildFixture(t, fixtureOpts{})
	return f
}

// newFixtureWith is newFixture with a change to the pages' configuration.
func newFixtureWith(t *testing.T, change func(*Config)) *fixture {
	t.Helper()
	f, _ := buildFixture(t, fixtureOpts{config: change})
	return f
}

// fixtureOpts say how a fixture differs from newFixture's.
type fixtureOpts struct {
	// logger is the handlers' and the renderer's log; nil discards it.
	logger *slog.Logger
	// storeLogs sends the store's and the read model's log there too.
	storeLogs bool
	site      *notifier.Site
	// send is Deps.SendEmail (sign-up); nil turns sign-up off.
	send   func(context.Context, string, *notifier.Message) error
	config func(*Config)
}

// buildFixture starts a store, a read model and the handlers on a test
// server; it also returns the renderer, which signs with the fixture's
// tokens.
func buildFixture(t *testing.T, o fixtureOpts) (*fixture, *render.Renderer) {
	t.Helper()
	logger := o.logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	storeLog := slog.New(slog.DiscardHandler)
	if o.storeLogs {
		storeLog = logger
	}
	conn, err := jetstream.Connect(context.Background(), jetstream.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0"}, storeLog)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	tokens, _ := notifier.NewTokens([]byte("0123456789abcdef0123456789abcdef"))
	r, err := render.New(render.Config{PublicURL: "http://status.example.com", DefaultLocale: "en", DefaultTimezone: "Europe/Oslo", Site: o.site}, tokens, logger)
	if err != nil {
		t.Fatal(err)
	}
	deps, status := fixtureDepsLogged(t, conn, storeLog)
	deps.Localizer, deps.Tokens, deps.SendEmail = r, tokens, o.send
	cfg := Config{PublicURL: "http://status.example.com", AdminToken: "s3cret", DefaultLocale: "en", DefaultTimezone: "Europe/Oslo", Site: o.site}
	if o.config != nil {
		o.config(&cfg)
	}
	h := New(cfg, deps, logger)
	f := &fixture{srv: httptest.NewServer(h), h: h, conn: conn, status: status, tokens: tokens}
	t.Cleanup(f.srv.Close)
	return f, r
}

// getInLanguage GETs path with an Accept-Language header and returns the body.
func (f *fixture) getInLanguage(t *testing.T, path, acceptLanguage string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+path, nil)
	req.Header.Set("Accept-Language", acceptLanguage)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

func (f *fixture) do(t *testing.T, method, path, token string, body io.Reader) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if method == http.MethodPost && body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func TestUnsubscribeGetConfirmsPostUnsubscribesOnce(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := f.conn.Subscribers.Put(ctx, &notifier.Subscriber{ID: "kari", Email: "kari@example.com", Locale: "nb"}); err != nil {
		t.Fatal(err)
	}
	tok := f.tokens.Sign(notifier.TokenClaims{Purpose: notifier.PurposeUnsubscribe, SubscriberID: "kari", Channel: notifier.Email})
	res, body := f.do(t, http.MethodGet, "/unsubscribe/"+tok, "", nil)
	if res.StatusCode != 200 || !strings.Contains(body, "Vil du slutte") && !strings.Contains(body, "<form") {
		t.Fatalf("GET: %d %s", res.StatusCode, body)
	}
	if sub, _ := f.conn.Subscribers.Get(ctx, "kari"); len(sub.Suppressed) != 0 {
		t.Fatal("GET unsubscribed: link scanners would unsubscribe people")
	}
	for i := range 2 { // RFC 8058 one-click POST, twice: idempotent
		res, _ = f.do(t, http.MethodPost, "/unsubscribe/"+tok, "", strings.NewReader("List-Unsubscribe=One-Click"))
		if res.StatusCode != 200 {
			t.Fatalf("POST %d: status %d, want 200 without redirect", i, res.StatusCode)
		}
	}
	sub, _ := f.conn.Subscribers.Get(ctx, "kari")
	if sub.Suppressed[notifier.Email].Reason != notifier.ReasonOptedOut {
		t.Fatalf("not unsubscribed: %+v", sub.Suppressed)
	}
	if sub.Reachable(notifier.Email) {
		t.Fatal("still reachable by email")
	}
}

func TestForgedOrAlteredTokenIsRefused(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_ = f.conn.Subscribers.Put(ctx, &notifier.Subscriber{ID: "kari", Email: "kari@example.com"})
	_ = f.conn.Subscribers.Put(ctx, &notifier.Subscriber{ID: "ola", Email: "ola@example.com"})
	good := f.tokens.Sign(notifier.TokenClaims{Purpose: notifier.PurposeUnsubscribe, SubscriberID: "kari", Channel: notifier.Email})
	payload, sig, _ := strings.Cut(good, ".")
	other, _ := notifier.NewTokens([]byte("another-secret-another-secret!!"))
	forged := other.Sign(notifier.TokenClaims{Purpose: notifier.PurposeUnsubscribe, SubscriberID: "ola", Channel: notifier.Email})
	for name, tok := range map[string]string{
		"altered subscriber": strings.Replace(good, payload, "dXxvbGF8ZW1haWw", 1), // "u|ola|email"
		"altered signature":  payload + "." + strings.ToUpper(sig[:4]) + sig[4:],
		"other secret":       forged,
		"garbage":            "not-a-token",
	} {
		res, body := f.do(t, http.MethodPost, "/unsubscribe/"+url.PathEscape(tok), "", strings.NewReader("List-Unsubscribe=One-Click"))
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(body, "link") {
			t.Errorf("%s: status %d", name, res.StatusCode)
		}
	}
	for _, id := range []string{"kari", "ola"} {
		if sub, _ := f.conn.Subscribers.Get(ctx, id); len(sub.Suppressed) != 0 {
			t.Errorf("%s was unsubscribed by a bad token", id)
		}
	}
}

func TestAdminAPINeedsToken(t *testing.T) {
	f := newFixture(t)
	for _, tok := range []string{"", "wrong"} {
		if res, _ := f.do(t, http.MethodGet, "/api/v1/subscribers", tok, nil); res.StatusCode != http.StatusUnauthorized {
			t.Errorf("token %q: status %d", tok, res.StatusCode)
		}
	}
	body := `{"id":"kari","email":"kari@example.com","locale":"nb"}`
	res, out := f.do(t, http.MethodPost, "/api/v1/subscribers", "s3cret", strings.NewReader(body))
	if res.StatusCode != 200 {
		t.Fatalf("add: %d %s", res.StatusCode, out)
	}
	res, out = f.do(t, http.MethodPost, "/api/v1/subscribers", "s3cret", strings.NewReader(`{"id":"bad","phone":"123"}`))
	if res.StatusCode != 400 || !strings.Contains(out, `"field": "phone"`) {
		t.Errorf("bad subscriber: %d %s", res.StatusCode, out)
	}
	res, out = f.do(t, http.MethodPost, "/api/v1/events", "s3cret", strings.NewReader(`{"id":"e","type":"incident.opened"}`))
	if res.StatusCode != 400 || !strings.Contains(out, "time") {
		t.Errorf("bad event: %d %s", res.StatusCode, out)
	}
}

func TestStatusPagesAndFeeds(t *testing.T) {
	f := newFixture(t)
	raw := `{"id":"e1","type":"incident.opened","time":"2019-09-17T10:00:00+02:00","incident":{"id":"inc","title":{"en":"Login problems","nb":"Problemer med innlogging"},"status":"identified","impact":"major","components":["web"],"started_at":"2019-09-16T07:50:00+02:00","next_update_at":"2019-09-17T12:00:00+02:00","message":{"en":"Still working.","nb":"Arbeidet pågår."}}}`
	ev, err := notifier.DecodeEvent([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	f.update(t, "inc", func(s *notifier.IncidentState) error { s.Apply(ev); return nil })
	_, nb := f.do(t, http.MethodGet, "/incidents/inc?lang=nb", "", nil)
	for _, want := range []string{"Problemer med innlogging", "Arbeidet pågår.", "17.09.2019 kl. 12:00"} {
		if !strings.Contains(nb, want) {
			t.Errorf("Norwegian incident page lacks %q", want)
		}
	}
	page := f.getInLanguage(t, "/", "nn-NO,nn;q=0.9,en;q=0.5")
	if !strings.Contains(page, `lang="nb"`) {
		t.Errorf("Accept-Language nn did not give the Bokmål page")
	}
	_, js := f.do(t, http.MethodGet, "/api/v1/status", "", nil)
	var st struct {
		Indicator string `json:"indicator"`
		Open      []struct {
			ID      string `json:"id"`
			Overdue bool   `json:"next_update_overdue"`
		} `json:"open"`
	}
	if err := json.Unmarshal([]byte(js), &st); err != nil || st.Indicator != "major" || len(st.Open) != 1 || !st.Open[0].Overdue {
		t.Errorf("status JSON = %s (%v)", js, err)
	}
	res, feed := f.do(t, http.MethodGet, "/feed.atom", "", nil)
	if !strings.HasPrefix(res.Header.Get("Content-Type"), "application/atom+xml") || !strings.Contains(feed, "<entry>") {
		t.Errorf("feed: %s", feed)
	}
	if res, _ := f.do(t, http.MethodGet, "/readyz", "", nil); res.StatusCode != 200 {
		t.Errorf("readyz = %d", res.StatusCode)
	}
}

func TestAdminBearerSchemeIsCaseInsensitive(t *testing.T) {
	f := newFixture(t)
	for auth, want := range map[string]int{
		"bearer s3cret": http.StatusOK, "BEARER s3cret": http.StatusOK, "Bearer  s3cret": http.StatusOK,
		"Basic s3cret": http.StatusUnauthorized, "bearer wrong": http.StatusUnauthorized, "s3cret": http.StatusUnauthorized,
	} {
		req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/api/v1/subscribers", nil)
		req.Header.Set("Authorization", auth)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("Authorization %q: status %d, want %d", auth, res.StatusCode, want)
		}
	}
}

// TestAdminAPIRefusesBadParameters: filters and path ids that cannot be
// valid are the client's mistake (400/404), never a 503, and never reach a
// KV watch filter where "*" and ">" are wildcards.
func TestAdminAPIRefusesBadParameters(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, rec := range []*notifier.DeliveryRecord{
		{ID: "e1.kari.email", EventID: "e1", SubscriberID: "kari", Channel: notifier.Email, Status: notifier.StatusSent},
		{ID: "e2.kari.email", EventID: "e2", SubscriberID: "kari", Channel: notifier.Email, Status: notifier.StatusFailed},
	} {
		if err := f.conn.Deliveries.Save(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		method, path string
		status       int
		body         string
	}{
		{http.MethodGet, "/api/v1/deliveries?event=*", 400, "event"},
		{http.MethodGet, "/api/v1/deliveries?event=e1.%3E", 400, "event"},
		{http.MethodGet, "/api/v1/deliveries?event=%3E", 400, "event"},
		{http.MethodGet, "/api/v1/deliveries?status=bogus", 400, "status"},
		{http.MethodGet, "/api/v1/deliveries?status=failed", 200, "e2.kari.email"},
		{http.MethodGet, "/api/v1/deliveries?event=e1", 200, "e1.kari.email"},
		{http.MethodGet, "/api/v1/subscribers/a*b", 404, "no subscriber"},
		{http.MethodGet, "/api/v1/subscribers/a.b", 404, "no subscriber"},
		{http.MethodDelete, "/api/v1/subscribers/a*b", 404, "no subscriber"},
		{http.MethodPost, "/api/v1/subscribers/%3E/enable?channel=email", 404, "no subscriber"},
		{http.MethodPost, "/api/v1/deliveries/*/retry", 404, "no delivery"},
		{http.MethodPost, "/api/v1/deliveries/e1.kari.pigeon/retry", 404, "no delivery"},
		{http.MethodPut, "/api/v1/subscribers/a*b", 400, "id"},
	} {
		var body io.Reader
		if tc.method == http.MethodPut {
			body = strings.NewReader(`{"email":"kari@example.com"}`)
		}
		res, out := f.do(t, tc.method, tc.path, "s3cret", body)
		if res.StatusCode != tc.status || !strings.Contains(out, tc.body) {
			t.Errorf("%s %s: %d %s, want %d mentioning %q", tc.method, tc.path, res.StatusCode, out, tc.status, tc.body)
		}
	}
	_, out := f.do(t, http.MethodGet, "/api/v1/deliveries?status=failed", "s3cret", nil)
	if strings.Contains(out, "e1.kari.email") {
		t.Errorf("status filter let a sent delivery through: %s", out)
	}
}

func TestIncidentPageKeepsParagraphsAndLines(t *testing.T) {
	f := newFixture(t)
	raw := `{"id":"p1","type":"incident.updated","time":"2019-09-18T07:40:00+02:00","incident":{"id":"inc","title":{"nb":"Innlogging"},"status":"identified","impact":"critical","components":["web"],"started_at":"2019-09-16T07:50:00+02:00","message":{"nb":"Oppsummering:\n- Mandag <16/9>\n- Tirsdag\n\nNeste avsnitt."}}}`
	ev, err := notifier.DecodeEvent([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	f.update(t, "inc", func(s *notifier.IncidentState) error { s.Apply(ev); return nil })
	_, page := f.do(t, http.MethodGet, "/incidents/inc?lang=nb", "", nil)
	if !strings.Contains(page, "<p>Oppsummering:<br>\n- Mandag &lt;16/9&gt;<br>\n- Tirsdag</p>\n<p>Neste avsnitt.</p>") {
		t.Errorf("paragraphs and line breaks not kept (or not escaped):\n%s", page)
	}
}

// TestAdminAPIRespectsAnOwnOptOut: the admin API lifts a pause caused by
// bounces, but a person's own opt-out only with force=true.
func TestAdminAPIRespectsAnOwnOptOut(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	now := time.Now()
	if err := f.conn.Subscribers.Put(ctx, &notifier.Subscriber{ID: "kari", Email: "kari@example.com", Phone: "+4792211333", Locale: "nb",
		Suppressed: map[notifier.ChannelName]notifier.Suppression{
			notifier.SMS:   {Reason: notifier.ReasonOptedOut, Detail: "replied STOP", At: now},
			notifier.Email: {Reason: notifier.ReasonBounced, Detail: "550 user unknown", At: now},
		}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		want int
	}{
		{"/api/v1/subscribers/kari/enable?channel=sms", http.StatusConflict},
		{"/api/v1/subscribers/kari/enable?channel=email", http.StatusOK},
		{"/api/v1/subscribers/kari/enable?channel=sms&force=true", http.StatusOK},
	} {
		if res, body := f.do(t, http.MethodPost, c.path, "s3cret", nil); res.StatusCode != c.want {
			t.Errorf("POST %s: %d %s, want %d", c.path, res.StatusCode, body, c.want)
		}
	}
	sub, err := f.conn.Subscribers.Get(ctx, "kari")
	if err != nil || len(sub.Suppressed) != 0 {
		t.Errorf("after the forced enable: %+v, %v", sub, err)
	}
}
