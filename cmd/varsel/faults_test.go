package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/varsel/varsel/notifier"
	"github.com/varsel/varsel/notifier/jetstream"
)

// greylister is an SMTP server (go-smtp) that answers 451 to every RCPT of
// an address starting with "grey" and accepts the rest.
type greylister struct {
	mu        sync.Mutex
	delivered map[string]int
	refused   atomic.Int64
	addr      string
}

func startGreylister(t *testing.T) *greylister {
	t.Helper()
	g := &greylister{delivered: map[string]int{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := smtp.NewServer(g)
	s.Domain = "localhost"
	s.ErrorLog = log.New(io.Discard, "", 0)
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { _ = s.Close() })
	g.addr = l.Addr().String()
	return g
}

func (g *greylister) NewSession(*smtp.Conn) (smtp.Session, error) { return &greySession{g: g}, nil }

func (g *greylister) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.delivered)
}

type greySession struct {
	g  *greylister
	to []string
}

func (s *greySession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *greySession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if strings.HasPrefix(to, "grey") {
		s.g.refused.Add(1)
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "Greylisted, try again later"}
	}
	s.to = append(s.to, to)
	return nil
}
func (s *greySession) Reset()        { s.to = nil }
func (s *greySession) Logout() error { return nil }
func (s *greySession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	s.g.mu.Lock()
	for _, to := range s.to {
		s.g.delivered[to]++
	}
	s.g.mu.Unlock()
	return nil
}

// faultEvent is an incident event for every component.
// putHooks stores n webhook subscribers w000…, the i-th posting to url(i).
func putHooks(t *testing.T, svc *service, n int, url func(i int) string) {
	t.Helper()
	if err := svc.conn.Subscribers.PutMany(context.Background(), n, func(i int) *notifier.Subscriber {
		return &notifier.Subscriber{ID: fmt.Sprintf("w%03d", i), WebhookURL: url(i), WebhookSecret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
	}); err != nil {
		t.Fatal(err)
	}
}

func faultEvent(id string) string {
	return fmt.Sprintf(`{"id":%q,"type":"incident.updated","time":"2019-09-17T10:00:00+02:00","incident":{"id":"faults","title":{"en":"Slow logins"},
"status":"identified","impact":"minor","components":["web"],"started_at":"2019-09-17T09:00:00+02:00","message":{"en":"We are on it."}}}`, id)
}

// TestGreylistedRecipientsDoNotHoldUpTheRest: 40 of 1,000 recipients are
// greylisted (SMTP 451, for ever). Their retries wait in the broker, not in
// a worker's slot, so the other 960 are delivered within seconds, and the
// 40 are recorded as waiting for their next attempt.
func TestGreylistedRecipientsDoNotHoldUpTheRest(t *testing.T) {
	g := startGreylister(t)
	svc, _ := testService(t, func(c *Config) { c.SMTPURL = "smtp://" + g.addr + "?tls=none" })
	ctx := context.Background()
	if err := svc.conn.Subscribers.PutMany(ctx, 1000, func(i int) *notifier.Subscriber {
		local := fmt.Sprintf("user%04d", i)
		if i%25 == 0 {
			local = fmt.Sprintf("grey%04d", i)
		}
		return &notifier.Subscriber{ID: fmt.Sprintf("s%04d", i), Email: local + "@example.com"}
	}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	publishEvent(t, svc, faultEvent("grey-1"))
	deadline := time.Now().Add(15 * time.Second)
	for g.count() < 960 {
		if time.Now().After(deadline) {
			// Say which ones are missing and why.
			_ = svc.conn.Deliveries.List(ctx, jetstream.DeliveryFilter{EventID: "grey-1"}, func(r *notifier.DeliveryRecord) error {
				if !strings.HasPrefix(r.SubscriberID, "s") || r.Status == notifier.StatusSent || r.Attempts > 0 && strings.Contains(r.LastError, "Greylisted") {
					return nil
				}
				t.Logf("%s: %s after %d attempts: %s %s", r.ID, r.Status, r.Attempts, r.LastError, r.Note)
				return nil
			})
			t.Fatalf("%d of 960 healthy emails after 15 s", g.count())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("960 healthy emails in %s; %d greylisted RCPTs so far", time.Since(start).Round(time.Millisecond), g.refused.Load())
	waitFor(t, "40 greylisted deliveries waiting for a retry", func() bool {
		waiting := 0
		_ = svc.conn.Deliveries.List(ctx, jetstream.DeliveryFilter{EventID: "grey-1", Status: notifier.StatusQueued}, func(r *notifier.DeliveryRecord) error {
			if r.NextAttemptAt != nil && r.LastError != "" && strings.Contains(r.LastError, "451") {
				waiting++
			}
			return nil
		})
		return waiting == 40
	})
	assertRetriesHoldNoSlot(t, svc, notifier.Email, 40)
}

// assertRetriesHoldNoSlot checks that the deliveries waiting for a retry
// wait in the broker as schedules, with no job of the channel in flight.
func assertRetriesHoldNoSlot(t *testing.T, svc *service, ch notifier.ChannelName, want int) {
	t.Helper()
	ctx := context.Background()
	waitFor(t, fmt.Sprintf("%d retries scheduled and nothing in flight", want), func() bool {
		n, err := svc.conn.InFlight(ctx, ch)
		w, werr := svc.conn.WaitingRetries(ctx)
		return err == nil && werr == nil && n == 0 && w == want
	})
}

// endpoints starts n webhook receivers on loopback, each its own endpoint;
// fail says which answer 500, hang which never answer in time.
func endpoints(t *testing.T, n int, behave func(i int, w http.ResponseWriter)) (urls []string, hits []*atomic.Int64) {
	t.Helper()
	for i := range n {
		hit := &atomic.Int64{}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			hit.Add(1)
			behave(i, w)
		}))
		t.Cleanup(srv.Close)
		urls = append(urls, srv.URL+"/hook")
		hits = append(hits, hit)
	}
	return urls, hits
}

// webhookService is a service whose subscribers h000… each have one of
// urls as their webhook, on loopback.
func webhookService(t *testing.T, urls []string) *service {
	t.Helper()
	svc, _ := testService(t, func(c *Config) { c.WebhookAllowPrivate, c.WebhookOutbox = true, "false" })
	if err := svc.conn.Subscribers.PutMany(context.Background(), len(urls), func(i int) *notifier.Subscriber {
		return &notifier.Subscriber{ID: fmt.Sprintf("h%03d", i), WebhookURL: urls[i], WebhookSecret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
	}); err != nil {
		t.Fatal(err)
	}
	return svc
}

// TestFailingEndpointsDoNotHoldUpTheRest: 40 of 240 webhook endpoints
// answer 500. Their retries wait in the broker (Standard Webhooks'
// schedule), so the 200 healthy endpoints are reached within seconds.
func TestFailingEndpointsDoNotHoldUpTheRest(t *testing.T) {
	urls, hits := endpoints(t, 240, func(i int, w http.ResponseWriter) {
		if i%6 == 0 {
			http.Error(w, "down", http.StatusInternalServerError)
		}
	})
	svc := webhookService(t, urls)
	start := time.Now()
	publishEvent(t, svc, faultEvent("hooks-1"))
	healthy := func() (n int) {
		for i, h := range hits {
			if i%6 != 0 && h.Load() > 0 {
				n++
			}
		}
		return n
	}
	waitFor(t, "200 healthy endpoints reached", func() bool { return healthy() == 200 })
	t.Logf("200 healthy endpoints in %s", time.Since(start).Round(time.Millisecond))
	assertRetriesHoldNoSlot(t, svc, notifier.Webhook, 40)
}

// TestSlowEndpointGetsOnlyAFewWorkers: 100 subscribers share one endpoint
// that never answers in time; 100 others have endpoints of their own. The
// slow endpoint gets at most EndpointConcurrency workers at a time, so the
// other 100 are reached while it hangs.
func TestSlowEndpointGetsOnlyAFewWorkers(t *testing.T) {
	release := make(chan struct{})
	var slowNow, slowMax atomic.Int64
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := slowNow.Add(1)
		defer slowNow.Add(-1)
		for m := slowMax.Load(); n > m && !slowMax.CompareAndSwap(m, n); m = slowMax.Load() {
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	urls, hits := endpoints(t, 100, func(int, http.ResponseWriter) {})
	svc, _ := testService(t, func(c *Config) { c.WebhookAllowPrivate, c.WebhookOutbox = true, "false" })
	// Let the hung requests go before the service drains its sends.
	t.Cleanup(func() { close(release) })
	putHooks(t, svc, 200, func(i int) string {
		if i%2 == 1 {
			return urls[i/2]
		}
		return slow.URL + fmt.Sprintf("/hook/%d", i)
	})
	start := time.Now()
	publishEvent(t, svc, faultEvent("slow-1"))
	waitFor(t, "100 endpoints reached beside the slow one", func() bool {
		n := 0
		for _, h := range hits {
			if h.Load() > 0 {
				n++
			}
		}
		return n == 100
	})
	t.Logf("100 healthy endpoints in %s while the slow one hangs", time.Since(start).Round(time.Millisecond))
	if m := slowMax.Load(); m > 4 {
		t.Errorf("the slow endpoint had %d requests at once, want at most 4", m)
	}
}

// TestFastReceiversEarnMoreWorkers: 600 subscribers share two receivers
// (every other one each) that answer within a few milliseconds for their
// first 150 requests each, then hang; 100 others have endpoints of their
// own. While a receiver answers quickly it gets more than the 4 sends at a
// time a new endpoint starts with; once it hangs it holds at most 8
// workers, the most a fast endpoint earns, and the other 100 are reached
// while both hang: the jobs their hanging sends hold (up to 16, one each)
// do not use up the jobs the consumer hands out at once.
func TestFastReceiversEarnMoreWorkers(t *testing.T) {
	release := make(chan struct{})
	type receiver struct {
		served, now, fastMax, slowMax atomic.Int64
		hungSince                     atomic.Int64 // Unix ns of its first hanging request
		srv                           *httptest.Server
	}
	peak := func(m *atomic.Int64, n int64) {
		for x := m.Load(); n > x && !m.CompareAndSwap(x, n); x = m.Load() {
		}
	}
	var recv [2]*receiver
	for k := range recv {
		r := &receiver{}
		r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			_, _ = io.Copy(io.Discard, req.Body)
			n := r.now.Add(1)
			if r.served.Add(1) <= 150 {
				peak(&r.fastMax, n)
				time.Sleep(2 * time.Millisecond)
				r.now.Add(-1) // before the answer lets the sender go on
				w.WriteHeader(http.StatusNoContent)
				return
			}
			defer r.now.Add(-1)
			peak(&r.slowMax, n)
			r.hungSince.CompareAndSwap(0, time.Now().UnixNano())
			select {
			case <-release:
			case <-req.Context().Done():
			}
		}))
		t.Cleanup(r.srv.Close)
		recv[k] = r
	}
	urls, hits := endpoints(t, 100, func(int, http.ResponseWriter) {})
	svc, _ := testService(t, func(c *Config) { c.WebhookAllowPrivate, c.WebhookOutbox = true, "false" })
	t.Cleanup(func() { close(release) })
	putHooks(t, svc, 700, func(i int) string {
		if i >= 600 {
			return urls[i-600]
		}
		return recv[i%2].srv.URL + fmt.Sprintf("/hook/%d", i)
	})
	start := time.Now()
	publishEvent(t, svc, faultEvent("fast-1"))
	waitFor(t, "100 endpoints reached beside the two hanging receivers", func() bool {
		n := 0
		for _, h := range hits {
			if h.Load() > 0 {
				n++
			}
		}
		return n == 100 && recv[0].served.Load() > 150 && recv[1].served.Load() > 150
	})
	reached := time.Now()
	t.Logf("100 healthy endpoints in %s", reached.Sub(start).Round(time.Millisecond))
	for k, r := range recv {
		if hung := time.Unix(0, r.hungSince.Load()); !hung.Before(reached) {
			t.Errorf("receiver %d began to hang at %s, after the healthy endpoints were reached: the test shows nothing", k, hung.Sub(start))
		}
		t.Logf("receiver %d: up to %d requests at once while fast, %d while hanging", k, r.fastMax.Load(), r.slowMax.Load())
		if m := r.fastMax.Load(); m <= 4 {
			t.Errorf("receiver %d answering in 2 ms had at most %d requests at once, want more than 4", k, m)
		}
		if m := r.slowMax.Load(); m > 8 {
			t.Errorf("receiver %d, hanging, held %d requests at once, want at most 8", k, m)
		}
	}
}

// TestHangingEndpointsSpreadOverJobsDoNotStopTheRest: 24 endpoints that
// never answer, each of one subscriber, one in every 32 subscribers, so
// that nearly every job of several holds one hanging send; the 744 others
// share a receiver that answers at once. A job is held until its slowest
// send ends (15 s here), so the consumer must hand out more jobs than the
// ones held, or the healthy deliveries wait for the timeouts.
func TestHangingEndpointsSpreadOverJobsDoNotStopTheRest(t *testing.T) {
	release := make(chan struct{})
	hang := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	var hanging []string
	for range 24 {
		srv := httptest.NewServer(hang)
		t.Cleanup(srv.Close)
		hanging = append(hanging, srv.URL+"/hook")
	}
	var healthy atomic.Int64
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		healthy.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(ok.Close)
	svc, _ := testService(t, func(c *Config) { c.WebhookAllowPrivate, c.WebhookOutbox = true, "false" })
	t.Cleanup(func() { close(release) })
	putHooks(t, svc, 768, func(i int) string {
		if i%32 == 0 {
			return hanging[i/32]
		}
		return ok.URL + fmt.Sprintf("/hook/%d", i)
	})
	start := time.Now()
	publishEvent(t, svc, faultEvent("spread-1"))
	deadline := time.Now().Add(8 * time.Second)
	for healthy.Load() < 744 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := healthy.Load(); n < 744 {
		t.Fatalf("%d of 744 healthy deliveries made in 8 s while 24 sends hang", n)
	}
	t.Logf("744 healthy deliveries in %s while 24 sends hang", time.Since(start).Round(time.Millisecond))
}

// TestRetryEveryFailedDeliveryOfAnEvent: after an outage of the receivers,
// `varsel deliveries retry --failed --event ID` queues every delivery of
// the event that failed for a reason an outage explains, in one command,
// and they are delivered; those that failed for good (here a 404) are
// left, and counted.
func TestRetryEveryFailedDeliveryOfAnEvent(t *testing.T) {
	var fixed atomic.Bool
	urls, hits := endpoints(t, 30, func(i int, w http.ResponseWriter) {
		if !fixed.Load() {
			http.Error(w, "not here", http.StatusNotFound)
		}
	})
	svc := webhookService(t, urls)
	ctx := context.Background()
	publishEvent(t, svc, faultEvent("retry-all-1"))
	var failed []*notifier.DeliveryRecord
	list := func() int {
		failed = failed[:0]
		_ = svc.conn.Deliveries.List(ctx, jetstream.DeliveryFilter{EventID: "retry-all-1", Status: notifier.StatusFailed}, func(r *notifier.DeliveryRecord) error {
			failed = append(failed, r)
			return nil
		})
		return len(failed)
	}
	waitFor(t, "30 failed deliveries", func() bool { return list() == 30 })
	// Twenty of them as an outage leaves them: a server error to the last
	// attempt (waiting out the schedule's 27 hours is not for a test).
	transient := map[string]bool{}
	for _, r := range failed[:20] {
		if _, err := svc.conn.Deliveries.Update(ctx, r.ID, func(r *notifier.DeliveryRecord) error {
			r.Reason, r.LastError = notifier.ReasonServer, "server_error: post to http://127.0.0.1: HTTP 503"
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		transient[r.SubscriberID] = true
	}
	fixed.Store(true)
	out, err := varsel(t, "deliveries", "retry", "--failed", "--event", "retry-all-1", "--nats", svc.conn.ClientURL())
	if err != nil || !strings.Contains(out, "queued 20 of 20 failed deliveries of retry-all-1 again") || !strings.Contains(out, "left 10 that failed for good") {
		t.Fatalf("retry --failed: %v\n%s", err, out)
	}
	waitFor(t, "the twenty endpoints reached again", func() bool {
		for i, h := range hits {
			if transient[fmt.Sprintf("h%03d", i)] && h.Load() < 2 {
				return false
			}
		}
		return true
	})
	waitFor(t, "only the ten left failed", func() bool { return list() == 10 })
	for i, h := range hits {
		if !transient[fmt.Sprintf("h%03d", i)] && h.Load() != 1 {
			t.Errorf("h%03d, failed for good, was tried %d times", i, h.Load())
		}
	}
}
