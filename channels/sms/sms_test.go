package sms

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/varsel/varsel/notifier"
)

func newTestChannel(t testing.TB, f *fakeTwilio, mod func(*Config)) *Channel {
	t.Helper()
	cfg := Config{
		AccountSID: testSID,
		AuthToken:  testToken,
		From:       testFrom,
		APIURL:     f.url(),
		PublicURL:  "https://varsel.example.com/",
		Rate:       1e6, // tests that are not about the rate do not wait
		Timeout:    5 * time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	logger, _ := testLogger()
	c, err := New(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNotifySendsForm(t *testing.T) {
	for _, tc := range []struct {
		name   string
		prefix string
		mod    func(*Config)
		from   string
		msid   string
	}{
		{name: "from number", from: testFrom},
		{name: "messaging service", mod: func(c *Config) { c.From = ""; c.MessagingServiceSID = "MG0123456789abcdef" }, msid: "MG0123456789abcdef"},
		{name: "API URL with path prefix", prefix: "/fake/twilio", from: testFrom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeTwilio(t, tc.prefix)
			c := newTestChannel(t, f, tc.mod)
			d := testDelivery("ev-1.kari.sms")
			d.Message.Segments = 2
			r, retry, err := c.Notify(context.Background(), d)
			if err != nil || retry {
				t.Fatalf("Notify: retry=%v err=%v", retry, err)
			}
			if r.ProviderID != "SM00000000000000000000000000000001" || r.Segments != 2 || r.Note != "" {
				t.Errorf("receipt = %+v", r)
			}
			if n, _ := f.counts(); n != 1 {
				t.Fatalf("%d create requests, want 1", n)
			}
			form := f.creates[0]
			want := map[string]string{
				"To":                  testPhone,
				"From":                tc.from,
				"MessagingServiceSid": tc.msid,
				"Body":                d.Message.SMS,
				"StatusCallback":      "https://varsel.example.com/twilio/status?delivery=ev-1.kari.sms",
				"ValidityPeriod":      "3600",
			}
			for k, v := range want {
				if got := form.Get(k); got != v {
					t.Errorf("form %s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestNotifyWithoutPublicURLAsksNoReceipts(t *testing.T) {
	f := newFakeTwilio(t, "")
	c := newTestChannel(t, f, func(c *Config) { c.PublicURL = ""; c.ValidityPeriod = 15 * time.Minute })
	if _, _, err := c.Notify(context.Background(), testDelivery("e.s.sms")); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.creates[0]["StatusCallback"]; ok {
		t.Error("StatusCallback sent without a public URL")
	}
	if got := f.creates[0].Get("ValidityPeriod"); got != "900" {
		t.Errorf("ValidityPeriod = %q, want 900", got)
	}
}

func TestNotifyRefusesBadInput(t *testing.T) {
	f := newFakeTwilio(t, "")
	c := newTestChannel(t, f, nil)
	for _, tc := range []struct {
		name   string
		mod    func(*notifier.Delivery)
		reason notifier.Reason
	}{
		{name: "no phone", mod: func(d *notifier.Delivery) { d.Subscriber.Phone = "" }, reason: notifier.ReasonInvalidAddress},
		{name: "not E.164", mod: func(d *notifier.Delivery) { d.Subscriber.Phone = "91234567" }, reason: notifier.ReasonInvalidAddress},
		{name: "empty body", mod: func(d *notifier.Delivery) { d.Message.SMS = " \n" }, reason: notifier.ReasonTemplate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := testDelivery("e.s.sms")
			tc.mod(d)
			_, retry, err := c.Notify(context.Background(), d)
			if retry || notifier.ReasonOf(err) != tc.reason {
				t.Errorf("retry=%v reason=%v err=%v, want no retry and %v", retry, notifier.ReasonOf(err), err, tc.reason)
			}
		})
	}
	if n, _ := f.counts(); n != 0 {
		t.Errorf("%d requests reached Twilio", n)
	}
}

func TestNotifyErrorTable(t *testing.T) {
	for _, tc := range []struct {
		name       string
		create     func(http.ResponseWriter, *http.Request, func() string)
		reason     notifier.Reason
		retry      bool
		suppress   bool
		retryAfter time.Duration
	}{
		{name: "429 too many requests", create: twilioError(429, 20429, "Too Many Requests"), reason: notifier.ReasonRateLimited, retry: true},
		{name: "429 with Retry-After", create: func(w http.ResponseWriter, r *http.Request, s func() string) {
			w.Header().Set("Retry-After", "7")
			twilioError(429, 20429, "Too Many Requests")(w, r, s)
		}, reason: notifier.ReasonRateLimited, retry: true, retryAfter: 7 * time.Second},
		{name: "code 20429 under another status", create: twilioError(400, 20429, "Too Many Requests"), reason: notifier.ReasonRateLimited, retry: true},
		{name: "21611 sender queue full", create: twilioError(400, 21611, "This 'From' number has exceeded the maximum number of queued messages"), reason: notifier.ReasonRateLimited, retry: true},
		{name: "500", create: twilioError(500, 20500, "Internal Server Error"), reason: notifier.ReasonServer, retry: true},
		{name: "503 not JSON", create: func(w http.ResponseWriter, _ *http.Request, _ func() string) {
			http.Error(w, "<html>bad gateway</html>", http.StatusServiceUnavailable)
		}, reason: notifier.ReasonServer, retry: true},
		{name: "21610 opted out", create: twilioError(400, 21610, "Attempt to send to unsubscribed recipient "+testPhone), reason: notifier.ReasonOptedOut, suppress: true},
		{name: "21211 invalid number", create: twilioError(400, 21211, "The 'To' number "+testPhone+" is not a valid phone number."), reason: notifier.ReasonInvalidAddress, suppress: true},
		{name: "21614 not mobile", create: twilioError(400, 21614, "'To' number "+strings.TrimPrefix(testPhone, "+")+" is not a valid mobile number"), reason: notifier.ReasonInvalidAddress, suppress: true},
		{name: "other 4xx", create: twilioError(400, 21602, "Message body is required."), reason: notifier.ReasonRejected},
		{name: "401 bad credentials", create: twilioError(401, 20003, "Authenticate"), reason: notifier.ReasonRejected},
		{name: "201 unreadable answer", create: func(w http.ResponseWriter, _ *http.Request, store func() string) {
			store()
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte("{not json"))
		}, reason: notifier.ReasonAmbiguous, retry: true},
		{name: "201 without SID", create: func(w http.ResponseWriter, _ *http.Request, _ func() string) {
			writeJSON(w, http.StatusCreated, map[string]any{"status": "queued"})
		}, reason: notifier.ReasonAmbiguous, retry: true},
		{name: "connection reset after the request was read", create: func(w http.ResponseWriter, _ *http.Request, store func() string) {
			store()
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				if tc, ok := conn.(*net.TCPConn); ok {
					_ = tc.SetLinger(0) // RST, not FIN
				}
				conn.Close()
			}
		}, reason: notifier.ReasonAmbiguous, retry: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeTwilio(t, "")
			f.create = tc.create
			logger, logs := testLogger()
			c := newTestChannel(t, f, nil)
			c.logger = logger
			r, retry, err := c.Notify(context.Background(), testDelivery("e.s.sms"))
			var se *notifier.SendError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v (%T), want *notifier.SendError; receipt %+v", err, err, r)
			}
			if se.Reason != tc.reason || retry != tc.retry || se.Suppress != tc.suppress || se.RetryAfter != tc.retryAfter {
				t.Errorf("reason=%v retry=%v suppress=%v retryAfter=%v, want %v %v %v %v (err %v)",
					se.Reason, retry, se.Suppress, se.RetryAfter, tc.reason, tc.retry, tc.suppress, tc.retryAfter, err)
			}
			assertNoSecrets(t, logs.String()+"\n"+err.Error())
		})
	}
}

func TestNotifyNetworkErrorBeforeSending(t *testing.T) {
	// A port that was just free: the dial is refused, nothing was sent.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c, err := New(Config{AccountSID: testSID, AuthToken: testToken, From: testFrom, APIURL: "http://" + addr}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, retry, err := c.Notify(context.Background(), testDelivery("e.s.sms"))
	if !retry || notifier.ReasonOf(err) != notifier.ReasonNetwork {
		t.Errorf("retry=%v reason=%v err=%v, want retry and network", retry, notifier.ReasonOf(err), err)
	}
	// The error names the host the request went to, not twilio-go's URL
	// with the Account SID (the API's user name) in its path.
	if msg := err.Error(); strings.Contains(msg, testSID) || strings.Contains(msg, "api.twilio.com") || !strings.Contains(msg, "http://"+addr) {
		t.Errorf("error %q: want the host %s and no Account SID", msg, addr)
	}
}

// The core no-duplicate rule: Twilio accepts the message but the answer
// never arrives in time; the retry finds it in Twilio's list and does not
// create a second one.
func TestAmbiguousTimeoutIsNotSentTwice(t *testing.T) {
	f := newFakeTwilio(t, "")
	f.create = func(w http.ResponseWriter, r *http.Request, store func() string) {
		store()
		<-r.Context().Done() // answer only after the client gave up
	}
	c := newTestChannel(t, f, func(c *Config) { c.Timeout = 100 * time.Millisecond })
	logger, logs := testLogger()
	c.logger = logger

	d := testDelivery("ev-9.kari.sms")
	first := time.Now()
	_, retry, err := c.Notify(context.Background(), d)
	if !retry || notifier.ReasonOf(err) != notifier.ReasonAmbiguous {
		t.Fatalf("first attempt: retry=%v reason=%v err=%v, want retry and ambiguous", retry, notifier.ReasonOf(err), err)
	}

	f.mu.Lock()
	f.create = nil // Twilio is healthy again
	f.mu.Unlock()
	d.Attempt, d.FirstAttemptAt, d.PreviousAttemptAt, d.PreviousReason = 2, first, first, notifier.ReasonAmbiguous
	r, retry, err := c.Notify(context.Background(), d)
	if err != nil || retry {
		t.Fatalf("second attempt: retry=%v err=%v", retry, err)
	}
	sid := "SM00000000000000000000000000000001"
	if r.ProviderID != sid || r.Note != "found earlier send "+sid+", not resent" {
		t.Errorf("receipt = %+v", r)
	}
	if creates, stored := f.counts(); creates != 1 || stored != 1 {
		t.Errorf("Twilio saw %d creates and holds %d messages, want 1 and 1", creates, stored)
	}
	q := f.lists[0]
	if q.Get("To") != testPhone || q.Get("From") != testFrom {
		t.Errorf("list query %v, want To and From", q)
	}
	// No date_sent filter: a message still queued at Twilio has none.
	if q.Has("DateSent>") || q.Has("DateSent") {
		t.Errorf("list query filters on date_sent (%v): a queued message would be missed", q)
	}
	assertNoSecrets(t, logs.String()+"\n"+err2string(err))
}

func err2string(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestAmbiguousAttemptNotAcceptedIsSentOnce(t *testing.T) {
	f := newFakeTwilio(t, "")
	c := newTestChannel(t, f, nil)
	d := testDelivery("ev-9.kari.sms")
	// An earlier, different message to the same phone must not count.
	f.messages = append(f.messages, fakeMessage{SID: "SMold", To: testPhone, From: testFrom, Body: "another incident"})
	d.Attempt, d.FirstAttemptAt, d.PreviousReason = 2, time.Now(), notifier.ReasonAmbiguous
	r, retry, err := c.Notify(context.Background(), d)
	if err != nil || retry {
		t.Fatalf("retry=%v err=%v", retry, err)
	}
	if r.ProviderID == "SMold" || !strings.Contains(r.Note, "no earlier send found") {
		t.Errorf("receipt = %+v", r)
	}
	if creates, _ := f.counts(); creates != 1 {
		t.Errorf("%d creates, want 1", creates)
	}
}

func TestAmbiguousCheckFailureDoesNotSend(t *testing.T) {
	f := newFakeTwilio(t, "")
	f.list = func(w http.ResponseWriter, r *http.Request) bool {
		twilioError(503, 20503, "Service Unavailable")(w, r, nil)
		return true
	}
	c := newTestChannel(t, f, nil)
	d := testDelivery("e.s.sms")
	d.Attempt, d.FirstAttemptAt, d.PreviousReason = 2, time.Now(), notifier.ReasonAmbiguous
	_, retry, err := c.Notify(context.Background(), d)
	if !retry || notifier.ReasonOf(err) != notifier.ReasonAmbiguous {
		t.Errorf("retry=%v reason=%v err=%v, want retry and still ambiguous", retry, notifier.ReasonOf(err), err)
	}
	if creates, _ := f.counts(); creates != 0 {
		t.Errorf("%d creates while the check failed, want 0", creates)
	}
}

// slidingMax returns the most segments sent in any window [t, t+1s).
func slidingMax(times []time.Time, segs []int) int {
	idx := make([]int, len(times))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return times[a].Compare(times[b]) })
	best := 0
	for i, a := range idx {
		sum := 0
		for _, b := range idx[i:] {
			if times[b].Sub(times[a]) >= time.Second {
				break
			}
			sum += segs[b]
		}
		best = max(best, sum)
	}
	return best
}

func TestRateLimitFanOut(t *testing.T) {
	clk := &fakeClock{t: time.Date(2019, 9, 16, 7, 50, 0, 0, time.UTC)}
	start := clk.Now()
	f := newFakeTwilio(t, "")
	f.clock = clk.Now
	c := newTestChannel(t, f, func(c *Config) { c.Rate = 10 })
	c.now, c.sleep = clk.Now, clk.Sleep

	segs := make([]int, 100)
	for i := range segs {
		segs[i] = 1
		d := testDelivery(fmt.Sprintf("ev.sub%d.sms", i))
		if _, _, err := c.Notify(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	if got := slidingMax(f.created, segs); got > 10 {
		t.Errorf("%d segments in one second, want at most 10", got)
	}
	// And it is not slower than it must be: 100 at 10/s is 9.9 s.
	if got := f.created[99].Sub(start); got > 10*time.Second {
		t.Errorf("100 messages took %v of clock time, want about 9.9s", got)
	}
}

func TestRateLimitConcurrentAndMultiSegment(t *testing.T) {
	clk := &fakeClock{t: time.Date(2019, 9, 16, 7, 50, 0, 0, time.UTC)}
	f := newFakeTwilio(t, "")
	c := newTestChannel(t, f, func(c *Config) { c.Rate = 10 })
	c.now = clk.Now
	now := clk.Now()

	// 100 workers reserve at the same instant; each would send at now+wait.
	for _, maxSeg := range []int{1, 3} {
		t.Run(fmt.Sprintf("up to %d segments", maxSeg), func(t *testing.T) {
			now = now.Add(time.Hour) // a fresh budget
			times, segs := make([]time.Time, 100), make([]int, 100)
			var wg sync.WaitGroup
			for i := range 100 {
				segs[i] = 1 + i%maxSeg
				wg.Go(func() {
					wait, _ := c.reserve(now, segs[i])
					times[i] = now.Add(wait)
				})
			}
			wg.Wait()
			// One multi-segment message cannot be split, so a window may
			// hold Rate plus the rest of one message.
			if got, limit := slidingMax(times, segs), 10+maxSeg-1; got > limit {
				t.Errorf("%d segments in one second, want at most %d", got, limit)
			}
			total := 0
			for _, s := range segs {
				total += s
			}
			last := slices.MaxFunc(times, time.Time.Compare)
			if minSpan := time.Duration(total-maxSeg) * time.Second / 10; last.Sub(now) < minSpan {
				t.Errorf("%d segments went out within %v, want at least %v", total, last.Sub(now), minSpan)
			}
		})
	}
}

func TestRateLimitWaitHonoursContext(t *testing.T) {
	f := newFakeTwilio(t, "")
	c := newTestChannel(t, f, func(c *Config) { c.Rate = 0.001 })
	if _, _, err := c.Notify(context.Background(), testDelivery("a.s.sms")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, retry, err := c.Notify(ctx, testDelivery("b.s.sms"))
	if !retry || notifier.ReasonOf(err) != notifier.ReasonTimeout {
		t.Errorf("retry=%v reason=%v err=%v, want retry and timeout", retry, notifier.ReasonOf(err), err)
	}
	if creates, _ := f.counts(); creates != 1 {
		t.Errorf("%d creates, want 1", creates)
	}
}

func TestRateLimitSlotAfterDeadline(t *testing.T) {
	// Near the real time, so the deadline below has not passed for real.
	clk := &fakeClock{t: time.Now()}
	f := newFakeTwilio(t, "")
	c := newTestChannel(t, f, func(c *Config) { c.Rate = 1 })
	c.now, c.sleep = clk.Now, clk.Sleep
	for i := range 3 {
		if _, _, err := c.Notify(context.Background(), testDelivery(fmt.Sprintf("e.s%d.sms", i))); err != nil {
			t.Fatal(err)
		}
	}
	// The next slot is a second away; a deadline half a second away
	// cannot be met.
	ctx, cancel := context.WithDeadline(context.Background(), clk.Now().Add(500*time.Millisecond))
	defer cancel()
	_, retry, err := c.Notify(ctx, testDelivery("e.late.sms"))
	var se *notifier.SendError
	if !retry || !errors.As(err, &se) || se.Reason != notifier.ReasonRateLimited || se.RetryAfter != time.Second {
		t.Fatalf("retry=%v err=%v, want retry, rate_limited, RetryAfter 1s", retry, err)
	}
	// The slot was given back: the next message goes out in a second, not two.
	before := clk.Now()
	if _, _, err := c.Notify(context.Background(), testDelivery("e.next.sms")); err != nil {
		t.Fatal(err)
	}
	if got := clk.Now().Sub(before); got != time.Second {
		t.Errorf("next message waited %v, want 1s", got)
	}
	if creates, _ := f.counts(); creates != 4 {
		t.Errorf("%d creates, want 4", creates)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{AccountSID: testSID, AuthToken: testToken, From: testFrom}).Validate(); err != nil {
		t.Errorf("minimal config: %v", err)
	}
	bad := Config{
		AccountSID:          "XX-1",
		AuthToken:           "tok en" + testToken,
		From:                testFrom,
		MessagingServiceSID: "MG1",
		APIURL:              "ftp://twilio",
		PublicURL:           "https://user:pw@varsel.example.com",
		Rate:                -1,
		ValidityPeriod:      11 * time.Hour,
		Timeout:             -time.Second,
	}
	err := bad.Validate()
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"account SID", "auth token", "both set", "API URL", "public URL", "rate", "validity period", "timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), testToken) || strings.Contains(err.Error(), "pw@") {
		t.Errorf("error shows a secret: %v", err)
	}
	if err := (Config{}).Validate(); err == nil || !strings.Contains(err.Error(), "one of from") {
		t.Errorf("empty config: %v", err)
	}
	if err := (Config{AccountSID: testSID, AuthToken: testToken, From: testFrom, ValidityPeriod: 1500 * time.Millisecond}).Validate(); err == nil {
		t.Error("validity period of 1.5s accepted")
	}
}

func TestConfigNeverShowsToken(t *testing.T) {
	cfg := Config{AccountSID: testSID, AuthToken: testToken, From: testFrom}
	logger, logs := testLogger()
	logger.Info("config", "sms", cfg)
	out := fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg) + logs.String()
	if strings.Contains(out, testToken) {
		t.Errorf("token shown: %s", out)
	}
	if !strings.Contains(out, "[redacted]") {
		t.Errorf("token not marked as redacted: %s", out)
	}
}

// BenchmarkNotify measures sends per second through twilio-go to the
// in-process fake API, with the rate limit out of the way.
func BenchmarkNotify(b *testing.B) {
	f := newFakeTwilio(b, "")
	c := newTestChannel(b, f, func(c *Config) { c.Rate = 1e9 })
	d := testDelivery("e.s.sms")
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := c.Notify(context.Background(), d); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, _, err := c.Notify(context.Background(), d); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
}

// TestAmbiguousRetryIgnoresAnOlderIdenticalMessage: the same text sent to
// the same phone before this delivery began (an identical earlier update)
// is not taken for this attempt's message.
func TestAmbiguousRetryIgnoresAnOlderIdenticalMessage(t *testing.T) {
	f := newFakeTwilio(t, "")
	c := newTestChannel(t, f, nil)
	d := testDelivery("ev-1.kari.sms")
	// An identical SMS two hours ago.
	f.clock = func() time.Time { return time.Now().Add(-2 * time.Hour) }
	if _, _, err := c.Notify(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	f.clock = time.Now
	first := time.Now().Add(-10 * time.Second)
	d.Attempt, d.FirstAttemptAt, d.PreviousAttemptAt, d.PreviousReason = 2, first, first, notifier.ReasonAmbiguous
	r, _, err := c.Notify(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	if creates, _ := f.counts(); creates != 2 || strings.HasPrefix(r.Note, "found earlier send") {
		t.Errorf("creates = %d, note %q: the older identical SMS was taken for this one", creates, r.Note)
	}
}
