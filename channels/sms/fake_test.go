package sms

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/varsel/varsel/notifier"
)

const (
	testSID   = "AC00000000000000000000000000000001"
	testToken = "secrettoken0123456789abcdef"
	testFrom  = "+4759446000"
	testPhone = "+4791234567"
)

// fakeTwilio is an in-process Twilio Messages API: create and list.
type fakeTwilio struct {
	t      *testing.T
	srv    *httptest.Server
	prefix string // path prefix the API is mounted under
	clock  func() time.Time

	mu       sync.Mutex
	creates  []url.Values // every create request's form, accepted or not
	created  []time.Time  // clock time of each create request
	messages []fakeMessage
	lists    []url.Values
	// create, if set, answers a create request instead of the default
	// (accept and store). store keeps the message as accepted.
	create func(w http.ResponseWriter, r *http.Request, store func() string)
	// list, if set, answers a list request instead of the default.
	list func(w http.ResponseWriter, r *http.Request) bool
}

type fakeMessage struct {
	SID, To, From, Body string
	Created             time.Time
}

func newFakeTwilio(t testing.TB, prefix string) *fakeTwilio {
	f := &fakeTwilio{prefix: prefix, clock: time.Now}
	if tt, ok := t.(*testing.T); ok {
		f.t = tt
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeTwilio) url() string { return f.srv.URL + f.prefix }

func (f *fakeTwilio) serve(w http.ResponseWriter, r *http.Request) {
	want := f.prefix + "/2010-04-01/Accounts/" + testSID + "/Messages.json"
	if r.URL.Path != want {
		http.Error(w, "unexpected path "+r.URL.Path, http.StatusNotFound)
		return
	}
	if u, p, ok := r.BasicAuth(); !ok || u != testSID || p != testToken {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"code":20003,"message":"Authenticate","status":401}`))
		return
	}
	switch r.Method {
	case http.MethodPost:
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.creates = append(f.creates, r.PostForm)
		f.created = append(f.created, f.clock())
		f.mu.Unlock()
		store := func() string {
			f.mu.Lock()
			defer f.mu.Unlock()
			m := fakeMessage{
				SID:     fmt.Sprintf("SM%032d", len(f.messages)+1),
				To:      r.PostForm.Get("To"),
				From:    r.PostForm.Get("From"),
				Body:    r.PostForm.Get("Body"),
				Created: f.clock(),
			}
			f.messages = append(f.messages, m)
			return m.SID
		}
		if f.create != nil {
			f.create(w, r, store)
			return
		}
		sid := store()
		writeJSON(w, http.StatusCreated, map[string]any{
			"sid": sid, "to": r.PostForm.Get("To"), "from": r.PostForm.Get("From"),
			"body": r.PostForm.Get("Body"), "status": "queued", "num_segments": "1",
		})
	case http.MethodGet:
		f.mu.Lock()
		f.lists = append(f.lists, r.URL.Query())
		f.mu.Unlock()
		if f.list != nil && f.list(w, r) {
			return
		}
		q := r.URL.Query()
		var out []map[string]any
		f.mu.Lock()
		for _, m := range f.messages {
			if q.Get("To") != "" && m.To != q.Get("To") {
				continue
			}
			if q.Get("From") != "" && m.From != q.Get("From") {
				continue
			}
			// Queued messages have no date_sent yet, as at Twilio.
			out = append(out, map[string]any{"sid": m.SID, "to": m.To, "from": m.From, "body": m.Body, "status": "queued",
				"date_created": m.Created.UTC().Format(time.RFC1123Z)})
		}
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"messages": out, "page": 0, "page_size": 100, "next_page_uri": nil})
	default:
		http.Error(w, "method", http.StatusMethodNotAllowed)
	}
}

func (f *fakeTwilio) counts() (creates, stored int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.creates), len(f.messages)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// twilioError answers like Twilio does when it refuses a request.
func twilioError(status, code int, msg string) func(http.ResponseWriter, *http.Request, func() string) {
	return func(w http.ResponseWriter, _ *http.Request, _ func() string) {
		writeJSON(w, status, map[string]any{"code": code, "message": msg, "status": status,
			"more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code)})
	}
}

// fakeClock is a clock whose sleep moves time forward at once.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return nil
}

// syncBuffer is a log sink safe for concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testLogger() (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// assertNoSecrets fails if logs show the full test number (in any
// spelling) or the auth token.
func assertNoSecrets(t *testing.T, logs string) {
	t.Helper()
	for _, s := range []string{testPhone, strings.TrimPrefix(testPhone, "+"), url.QueryEscape(testPhone), testToken} {
		if strings.Contains(logs, s) {
			t.Errorf("logs contain %q:\n%s", s, logs)
		}
	}
}

func testDelivery(id string) *notifier.Delivery {
	return &notifier.Delivery{
		ID:         id,
		Channel:    notifier.SMS,
		Subscriber: &notifier.Subscriber{ID: "kari", Phone: testPhone, Locale: "nb"},
		Message:    &notifier.Message{Locale: "nb", SMS: "Driftsavbrudd i StyreWeb. Status: https://status.example.com/i/1", Segments: 1},
		Attempt:    1,
	}
}
