package sms

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twilio/twilio-go/client"

	"github.com/varsel/varsel/notifier"
)

const publicURL = "https://varsel.example.com"

// memStore is an in-memory notifier.SubscriberStore.
type memStore struct {
	mu   sync.Mutex
	subs map[string]*notifier.Subscriber
}

func newMemStore(subs ...*notifier.Subscriber) *memStore {
	m := &memStore{subs: map[string]*notifier.Subscriber{}}
	for _, s := range subs {
		m.subs[s.ID] = clone(s)
	}
	return m
}

func clone[T any](v *T) *T {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	out := new(T)
	if err := json.Unmarshal(b, out); err != nil {
		panic(err)
	}
	return out
}

func (m *memStore) Get(_ context.Context, id string) (*notifier.Subscriber, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.subs[id]
	if !ok {
		return nil, fmt.Errorf("subscriber %s: %w", id, notifier.ErrNotFound)
	}
	return clone(s), nil
}

func (m *memStore) Put(_ context.Context, s *notifier.Subscriber) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.subs[s.ID] = clone(s)
	return nil
}

func (m *memStore) Update(_ context.Context, id string, fn func(*notifier.Subscriber) error) (*notifier.Subscriber, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.subs[id]
	if !ok {
		return nil, fmt.Errorf("subscriber %s: %w", id, notifier.ErrNotFound)
	}
	s = clone(s)
	if err := fn(s); err != nil {
		return nil, err
	}
	m.subs[id] = clone(s)
	return s, nil
}

func (m *memStore) Delete(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.subs, id)
	return nil
}

func (m *memStore) Each(_ context.Context, fn func(*notifier.Subscriber) error) error {
	m.mu.Lock()
	ids := make([]string, 0, len(m.subs))
	for id := range m.subs {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	slices.Sort(ids)
	for _, id := range ids {
		s, err := m.Get(context.Background(), id)
		if err != nil {
			continue
		}
		if err := fn(s); err != nil {
			return err
		}
	}
	return nil
}

func (m *memStore) FindByPhone(_ context.Context, phone string) ([]*notifier.Subscriber, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*notifier.Subscriber
	for _, s := range m.subs {
		if s.Phone == phone {
			out = append(out, clone(s))
		}
	}
	slices.SortFunc(out, func(a, b *notifier.Subscriber) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// memLog is an in-memory notifier.DeliveryLog.
type memLog struct {
	mu   sync.Mutex
	recs map[string]*notifier.DeliveryRecord
}

func (m *memLog) Get(_ context.Context, id string) (*notifier.DeliveryRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.recs[id]
	if !ok {
		return nil, fmt.Errorf("delivery %s: %w", id, notifier.ErrNotFound)
	}
	c := clone(r)
	c.Revision = r.Revision
	return c, nil
}

func (m *memLog) Update(_ context.Context, id string, fn func(*notifier.DeliveryRecord) error) (*notifier.DeliveryRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.recs[id]
	rev := uint64(0)
	if ok {
		rev = r.Revision
		r = clone(r)
	} else {
		r = &notifier.DeliveryRecord{ID: id}
	}
	if err := fn(r); err != nil {
		return nil, err
	}
	r.Revision = rev + 1
	c := clone(r)
	c.Revision = r.Revision
	m.recs[id] = c
	return r, nil
}

// Settle stores r at once.
func (m *memLog) Settle(r *notifier.DeliveryRecord, done func(error)) {
	m.mu.Lock()
	c := clone(r)
	c.Revision = r.Revision + 1
	m.recs[r.ID] = c
	m.mu.Unlock()
	done(nil)
}

func (m *memLog) Save(_ context.Context, r *notifier.DeliveryRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.recs[r.ID]
	if (ok && cur.Revision != r.Revision) || (!ok && r.Revision != 0) {
		return fmt.Errorf("delivery %s: %w", r.ID, notifier.ErrConflict)
	}
	c := clone(r)
	c.Revision = r.Revision + 1
	m.recs[r.ID] = c
	return nil
}

// sign computes X-Twilio-Signature the way Twilio documents it: base64
// HMAC-SHA1 over the full URL followed by the sorted POST parameters
// (name then value). twilio-go has no exported signer, so each signature
// is also checked with twilio-go's own RequestValidator before use.
func sign(t *testing.T, token, fullURL string, form url.Values) string {
	t.Helper()
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	s := fullURL
	params := map[string]string{}
	for _, k := range keys {
		s += k + form.Get(k)
		params[k] = form.Get(k)
	}
	mac := hmac.New(sha1.New, []byte(token))
	mac.Write([]byte(s))
	sig := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	v := client.NewRequestValidator(token)
	if !v.Validate(fullURL, params, sig) {
		t.Fatalf("twilio-go's validator rejects the test signature for %s", fullURL)
	}
	return sig
}

// post sends form to h at uri, signed for signedURI with signedForm (so a
// test can tamper with what is sent after signing).
func post(t *testing.T, h http.Handler, uri string, form url.Values, sig string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, uri, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if sig != "" {
		req.Header.Set("X-Twilio-Signature", sig)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func inboundForm(from, body string) url.Values {
	return url.Values{
		"MessageSid": {"SM1234"}, "AccountSid": {testSID}, "From": {from},
		"To": {testFrom}, "Body": {body}, "NumSegments": {"1"},
	}
}

func helpText(locale string) string {
	if locale == "nb" {
		return "Varsel om driftsstatus. Svar STOPP for å avslutte & START for å starte igjen."
	}
	return "Status alerts. Reply STOP to end, START to resume."
}

// texts is InboundHandler's text: the default language is English.
func texts(locale, id string) (string, string) {
	lang := "en"
	if locale == "nb" {
		lang = "nb"
	}
	switch id {
	case TextHelp:
		return helpText(locale), lang
	case TextStopped:
		return stoppedText(lang), lang
	case TextStarted:
		return startedText(lang), lang
	}
	return id, lang
}

func stoppedText(lang string) string {
	if lang == "nb" {
		return "Du får ikke flere SMS-varsler. Send START for å melde deg på igjen."
	}
	return "You will get no more SMS alerts. Reply START to subscribe again."
}

func startedText(lang string) string {
	if lang == "nb" {
		return "Du får SMS-varsler igjen. Send STOPP for å melde deg av."
	}
	return "You will get SMS alerts again. Reply STOP to unsubscribe."
}

func subscribers() []*notifier.Subscriber {
	return []*notifier.Subscriber{
		{ID: "kari", Phone: testPhone, Locale: "nb"},
		{ID: "kari-work", Phone: testPhone, Locale: "nb", Email: "kari@example.com"},
		{ID: "ola", Phone: "+4798765432", Locale: "en"},
	}
}

// twiml parses a TwiML answer and returns its message text.
func twiml(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "text/xml" {
		t.Errorf("Content-Type = %q, want text/xml", ct)
	}
	var resp struct {
		XMLName  xml.Name `xml:"Response"`
		Messages []string `xml:"Message"`
	}
	if err := xml.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatalf("answer is not TwiML: %v\n%s", err, w.Body)
	}
	return strings.Join(resp.Messages, "|")
}

func TestInboundKeywords(t *testing.T) {
	for _, tc := range []struct {
		name      string
		body      string
		before    map[notifier.ChannelName]notifier.Suppression
		suppress  bool // whether kari's SMS is suppressed afterwards
		reason    notifier.Reason
		wantReply string // TwiML message
	}{
		{name: "STOP", body: "STOP", suppress: true, reason: notifier.ReasonOptedOut},
		{name: "stop lower case with white space", body: "  stop\n", suppress: true, reason: notifier.ReasonOptedOut},
		{name: "STOPALL", body: "StopAll", suppress: true, reason: notifier.ReasonOptedOut},
		{name: "UNSUBSCRIBE", body: "unsubscribe", suppress: true, reason: notifier.ReasonOptedOut},
		{name: "CANCEL", body: "Cancel", suppress: true, reason: notifier.ReasonOptedOut},
		{name: "END", body: "end", suppress: true, reason: notifier.ReasonOptedOut},
		{name: "QUIT", body: "QUIT", suppress: true, reason: notifier.ReasonOptedOut},
		// Twilio does not know these words: we confirm them, in the
		// subscriber's language.
		{name: "Norwegian STOPP", body: "Stopp", suppress: true, reason: notifier.ReasonOptedOut, wantReply: stoppedText("nb")},
		{name: "Norwegian AVSLUTT", body: "avslutt ", suppress: true, reason: notifier.ReasonOptedOut, wantReply: stoppedText("nb")},
		{name: "STOPP again", body: "STOPP", suppress: true, reason: notifier.ReasonOptedOut, wantReply: stoppedText("nb"),
			before: map[notifier.ChannelName]notifier.Suppression{notifier.SMS: {Reason: notifier.ReasonOptedOut}}},
		// Twilio confirms its own START in English: a Norwegian reader
		// gets ours too.
		{name: "START after STOP", body: "START", wantReply: startedText("nb"),
			before: map[notifier.ChannelName]notifier.Suppression{notifier.SMS: {Reason: notifier.ReasonOptedOut}}},
		{name: "yes after STOP", body: "yes", wantReply: startedText("nb"),
			before: map[notifier.ChannelName]notifier.Suppression{notifier.SMS: {Reason: notifier.ReasonOptedOut}}},
		{name: "UNSTOP after STOP", body: " Unstop", wantReply: startedText("nb"),
			before: map[notifier.ChannelName]notifier.Suppression{notifier.SMS: {Reason: notifier.ReasonOptedOut}}},
		{name: "Norwegian JA after STOP", body: "Ja", wantReply: startedText("nb"),
			before: map[notifier.ChannelName]notifier.Suppression{notifier.SMS: {Reason: notifier.ReasonOptedOut}}},
		{name: "START does not lift an invalid number", body: "START",
			before:   map[notifier.ChannelName]notifier.Suppression{notifier.SMS: {Reason: notifier.ReasonInvalidAddress}},
			suppress: true, reason: notifier.ReasonInvalidAddress},
		{name: "STOP does not touch email", body: "STOP",
			before:   map[notifier.ChannelName]notifier.Suppression{notifier.Email: {Reason: notifier.ReasonBounced}},
			suppress: true, reason: notifier.ReasonOptedOut},
		{name: "HELP", body: "help", wantReply: helpText("nb")},
		{name: "Norwegian HJELP", body: "HJELP", wantReply: helpText("nb")},
		{name: "other text", body: "Takk for beskjed! Stop the outage please"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			subs := subscribers()
			subs[0].Suppressed, subs[1].Suppressed = tc.before, tc.before
			store := newMemStore(subs...)
			logger, logs := testLogger()
			h := InboundHandler(store, testToken, publicURL, texts, logger)
			form := inboundForm(testPhone, tc.body)
			w := post(t, h, "/twilio/inbound", form, sign(t, testToken, publicURL+"/twilio/inbound", form))
			if w.Code != http.StatusOK {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			if got := twiml(t, w); got != tc.wantReply {
				t.Errorf("reply %q, want %q", got, tc.wantReply)
			}
			for _, id := range []string{"kari", "kari-work"} {
				s, _ := store.Get(context.Background(), id)
				got, ok := s.Suppressed[notifier.SMS]
				if ok != tc.suppress || got.Reason != tc.reason {
					t.Errorf("%s: SMS suppression %+v (%v), want %v %q", id, got, ok, tc.suppress, tc.reason)
				}
				if ok && got.Reason == notifier.ReasonOptedOut && tc.before == nil && (got.Detail != "replied STOP" || got.At.IsZero()) {
					t.Errorf("%s: suppression %+v, want detail and time", id, got)
				}
				if e, had := tc.before[notifier.Email]; had && s.Suppressed[notifier.Email] != e {
					t.Errorf("%s: email suppression changed to %+v", id, s.Suppressed[notifier.Email])
				}
			}
			if s, _ := store.Get(context.Background(), "ola"); len(s.Suppressed) != 0 {
				t.Errorf("another number was changed: %+v", s.Suppressed)
			}
			assertNoSecrets(t, logs.String())
		})
	}
}

func TestInboundHelpInSubscribersLanguage(t *testing.T) {
	store := newMemStore(subscribers()...)
	h := InboundHandler(store, testToken, publicURL, texts, nil)
	for phone, want := range map[string]string{
		"+4798765432": helpText("en"),
		"+4740000000": helpText(""), // unknown number: the default language
	} {
		form := inboundForm(phone, "HELP")
		w := post(t, h, "/twilio/inbound", form, sign(t, testToken, publicURL+"/twilio/inbound", form))
		if got := twiml(t, w); got != want {
			t.Errorf("%s: reply %q, want %q", phone, got, want)
		}
	}
}

func TestInboundRefusesBadSignatures(t *testing.T) {
	signedURL := publicURL + "/twilio/inbound"
	form := inboundForm(testPhone, "STOP")
	good := sign(t, testToken, signedURL, form)
	for _, tc := range []struct {
		name   string
		uri    string
		form   url.Values
		sig    string
		method string
	}{
		{name: "missing signature", uri: "/twilio/inbound", form: form},
		{name: "tampered body", uri: "/twilio/inbound", form: inboundForm("+4798765432", "STOP"), sig: good},
		{name: "tampered URL", uri: "/twilio/inbound?x=1", form: form, sig: good},
		{name: "signed for another host", uri: "/twilio/inbound", form: form, sig: sign(t, testToken, "https://evil.example.com/twilio/inbound", form)},
		{name: "wrong token", uri: "/twilio/inbound", form: form, sig: sign(t, "othertoken", signedURL, form)},
		{name: "not base64", uri: "/twilio/inbound", form: form, sig: "!!!"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := newMemStore(subscribers()...)
			h := InboundHandler(store, testToken, publicURL, texts, nil)
			w := post(t, h, tc.uri, tc.form, tc.sig)
			if w.Code != http.StatusForbidden {
				t.Errorf("status %d, want 403", w.Code)
			}
			for _, s := range store.subs {
				if len(s.Suppressed) != 0 {
					t.Errorf("%s changed: %+v", s.ID, s.Suppressed)
				}
			}
		})
	}
	t.Run("GET", func(t *testing.T) {
		h := InboundHandler(newMemStore(), testToken, publicURL, texts, nil)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/twilio/inbound", nil))
		if w.Code != http.StatusMethodNotAllowed {
			t.Errorf("status %d, want 405", w.Code)
		}
	})
}

// An inbound STOP stops the next send: the opt-out the handler records is
// what the planner reads (Reachable), and the channel itself classifies
// Twilio's 21610 the same way.
func TestStopThenReachable(t *testing.T) {
	store := newMemStore(subscribers()...)
	h := InboundHandler(store, testToken, publicURL+"/", texts, nil)
	form := inboundForm(testPhone, "STOPP")
	if w := post(t, h, "/twilio/inbound", form, sign(t, testToken, publicURL+"/twilio/inbound", form)); w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	s, _ := store.Get(context.Background(), "kari")
	if s.Reachable(notifier.SMS) {
		t.Error("subscriber still reachable by SMS after STOPP")
	}
	form = inboundForm(testPhone, "START")
	post(t, h, "/twilio/inbound", form, sign(t, testToken, publicURL+"/twilio/inbound", form))
	s, _ = store.Get(context.Background(), "kari")
	if !s.Reachable(notifier.SMS) {
		t.Error("subscriber not reachable by SMS after START")
	}
}

func statusForm(sid, status, code string) url.Values {
	f := url.Values{"MessageSid": {sid}, "MessageStatus": {status}, "AccountSid": {testSID},
		"From": {testFrom}, "To": {testPhone}, "SmsSid": {sid}, "SmsStatus": {status}}
	if code != "" {
		f.Set("ErrorCode", code)
	}
	return f
}

func TestStatusCallbacks(t *testing.T) {
	const id = "ev-1.kari.sms"
	uri := "/twilio/status?delivery=" + url.QueryEscape(id)
	type step struct{ status, code string }
	for _, tc := range []struct {
		name       string
		steps      []step
		sid        string
		wantStatus notifier.DeliveryStatus
		wantProv   string
		wantCode   string
	}{
		{name: "delivered", steps: []step{{"queued", ""}, {"sent", ""}, {"delivered", ""}}, wantStatus: notifier.StatusDelivered, wantProv: "delivered"},
		{name: "undelivered with code", steps: []step{{"sent", ""}, {"undelivered", "30003"}}, wantStatus: notifier.StatusUndelivered, wantProv: "undelivered", wantCode: "30003"},
		{name: "failed", steps: []step{{"failed", "30008"}}, wantStatus: notifier.StatusUndelivered, wantProv: "failed", wantCode: "30008"},
		{name: "sent leaves the status", steps: []step{{"queued", ""}, {"sent", ""}}, wantStatus: notifier.StatusSent, wantProv: "sent"},
		{name: "late sent does not undo delivered", steps: []step{{"delivered", ""}, {"sent", ""}}, wantStatus: notifier.StatusDelivered, wantProv: "delivered"},
		{name: "receipt for another message is ignored", sid: "SMother", steps: []step{{"delivered", ""}}, wantStatus: notifier.StatusSent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dlog := &memLog{recs: map[string]*notifier.DeliveryRecord{
				id: {ID: id, EventID: "ev-1", SubscriberID: "kari", Channel: notifier.SMS, Status: notifier.StatusSent, ProviderID: "SM1"},
			}}
			logger, logs := testLogger()
			h := StatusHandler(dlog, testToken, publicURL, logger)
			sid := tc.sid
			if sid == "" {
				sid = "SM1"
			}
			for _, s := range tc.steps {
				form := statusForm(sid, s.status, s.code)
				if w := post(t, h, uri, form, sign(t, testToken, publicURL+uri, form)); w.Code != http.StatusOK {
					t.Fatalf("%s: status %d: %s", s.status, w.Code, w.Body)
				}
			}
			rec, _ := dlog.Get(context.Background(), id)
			if rec.Status != tc.wantStatus || rec.ProviderStatus != tc.wantProv || rec.ProviderError != tc.wantCode {
				t.Errorf("record status=%q provider=%q/%q, want %q %q/%q", rec.Status, rec.ProviderStatus, rec.ProviderError, tc.wantStatus, tc.wantProv, tc.wantCode)
			}
			assertNoSecrets(t, logs.String())
		})
	}
}

func TestStatusCallbackEdgeCases(t *testing.T) {
	newLog := func() *memLog {
		return &memLog{recs: map[string]*notifier.DeliveryRecord{
			"ev-1.kari.sms": {ID: "ev-1.kari.sms", Channel: notifier.SMS, Status: notifier.StatusSent},
		}}
	}
	t.Run("unknown delivery", func(t *testing.T) {
		dlog := newLog()
		logger, logs := testLogger()
		h := StatusHandler(dlog, testToken, publicURL, logger)
		uri := "/twilio/status?delivery=nope.kari.sms"
		form := statusForm("SM9", "delivered", "")
		if w := post(t, h, uri, form, sign(t, testToken, publicURL+uri, form)); w.Code != http.StatusOK {
			t.Errorf("status %d, want 200 so Twilio stops retrying", w.Code)
		}
		if _, err := dlog.Get(context.Background(), "nope.kari.sms"); err == nil {
			t.Error("a record was created for an unknown delivery")
		}
		if !strings.Contains(logs.String(), "unknown delivery") {
			t.Errorf("no log line: %s", logs)
		}
		assertNoSecrets(t, logs.String())
	})
	t.Run("first receipt sets the provider id", func(t *testing.T) {
		dlog := newLog()
		h := StatusHandler(dlog, testToken, publicURL, nil)
		uri := "/twilio/status?delivery=ev-1.kari.sms"
		form := statusForm("SM7", "delivered", "")
		post(t, h, uri, form, sign(t, testToken, publicURL+uri, form))
		if rec, _ := dlog.Get(context.Background(), "ev-1.kari.sms"); rec.ProviderID != "SM7" || rec.Status != notifier.StatusDelivered {
			t.Errorf("record %+v", rec)
		}
	})
	for _, tc := range []struct{ name, signedURI, sentURI string }{
		{name: "tampered delivery id", signedURI: "/twilio/status?delivery=ev-1.kari.sms", sentURI: "/twilio/status?delivery=ev-1.ola.sms"},
		{name: "missing signature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dlog := newLog()
			dlog.recs["ev-1.ola.sms"] = &notifier.DeliveryRecord{ID: "ev-1.ola.sms", Channel: notifier.SMS, Status: notifier.StatusSent}
			h := StatusHandler(dlog, testToken, publicURL, nil)
			form := statusForm("SM1", "delivered", "")
			sig, uri := "", "/twilio/status?delivery=ev-1.kari.sms"
			if tc.signedURI != "" {
				sig, uri = sign(t, testToken, publicURL+tc.signedURI, form), tc.sentURI
			}
			if w := post(t, h, uri, form, sig); w.Code != http.StatusForbidden {
				t.Errorf("status %d, want 403", w.Code)
			}
			for id, rec := range dlog.recs {
				if rec.Status != notifier.StatusSent || rec.ProviderStatus != "" {
					t.Errorf("%s changed: %+v", id, rec)
				}
			}
		})
	}
}

// A delivery's receipts reach the handler at the URL Notify asked for.
func TestStatusCallbackURLRoundTrip(t *testing.T) {
	f := newFakeTwilio(t, "")
	c := newTestChannel(t, f, nil)
	d := testDelivery("ev 1/æ.kari.sms")
	if _, _, err := c.Notify(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	cb, err := url.Parse(f.creates[0].Get("StatusCallback"))
	if err != nil {
		t.Fatal(err)
	}
	dlog := &memLog{recs: map[string]*notifier.DeliveryRecord{d.ID: {ID: d.ID, Channel: notifier.SMS, Status: notifier.StatusSent, SentAt: ptr(time.Now())}}}
	h := StatusHandler(dlog, testToken, publicURL, nil)
	form := statusForm("SM00000000000000000000000000000001", "delivered", "")
	if w := post(t, h, cb.RequestURI(), form, sign(t, testToken, cb.String(), form)); w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	if rec, _ := dlog.Get(context.Background(), d.ID); rec.Status != notifier.StatusDelivered {
		t.Errorf("record %+v, want delivered", rec)
	}
}

func ptr[T any](v T) *T { return &v }
