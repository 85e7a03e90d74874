// Package benchsink has the receiving end of `varsel bench`: an SMTP server
// (go-smtp), a webhook receiver (net/http) and a Twilio API stand-in, all on
// loopback, each noting when every message arrived. It also has the plain
// blasters that measure what those sinks take at most, with the libraries
// and concurrency Varsel uses (go-mail on 8 connections, net/http on 32
// keep-alive connections, twilio-go), so Varsel's rate can be given as a
// share of the sinks' raw capacity measured in the same run.
package benchsink

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Arrivals records when messages arrived.
type Arrivals struct {
	mu sync.Mutex
	// forgotten is how many arrived before times begins.
	forgotten int
	times     []int64 // Unix nanoseconds
}

func (a *Arrivals) add(t time.Time) {
	a.mu.Lock()
	a.times = append(a.times, t.UnixNano())
	a.mu.Unlock()
}

// Count is how many have arrived.
func (a *Arrivals) Count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.forgotten + len(a.times)
}

// Since returns the arrival times from the i-th arrival on.
func (a *Arrivals) Since(i int) []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	i -= a.forgotten
	if i < 0 {
		i = 0
	}
	var out []time.Time
	for _, ns := range a.times[min(i, len(a.times)):] {
		out = append(out, time.Unix(0, ns))
	}
	return out
}

// forget drops the times recorded so far; Count keeps counting them.
func (a *Arrivals) forget() {
	a.mu.Lock()
	a.forgotten += len(a.times)
	a.times = nil
	a.mu.Unlock()
}

// Sinks are the three receivers.
type Sinks struct {
	SMTPAddr   string // host:port of the SMTP server
	WebhookURL string // the webhook receiver
	TwilioURL  string // base URL of the Twilio stand-in
	Email      Arrivals
	Webhook    Arrivals
	SMS        Arrivals

	closers []func() error
}

// Start starts the sinks on loopback ports.
func Start() (*Sinks, error) {
	s := &Sinks{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := smtp.NewServer(backend{s})
	srv.Domain = "localhost"
	srv.ErrorLog = log.New(io.Discard, "", 0)
	srv.MaxMessageBytes = 10 << 20
	srv.ReadTimeout, srv.WriteTimeout = time.Minute, time.Minute
	go func() { _ = srv.Serve(l) }()
	s.SMTPAddr = l.Addr().String()
	s.closers = append(s.closers, srv.Close)

	hook, err := serveHTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		s.Webhook.add(time.Now())
		w.WriteHeader(http.StatusNoContent)
	}))
	if err != nil {
		s.Close()
		return nil, err
	}
	s.WebhookURL = "http://" + hook.addr + "/hook"
	s.closers = append(s.closers, hook.close)

	var sid int64
	var sidMu sync.Mutex
	twilio, err := serveHTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		sidMu.Lock()
		sid++
		n := sid
		sidMu.Unlock()
		s.SMS.add(time.Now())
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"sid":"SM%032x","status":"queued","num_segments":"1","error_code":null}`, n)
	}))
	if err != nil {
		s.Close()
		return nil, err
	}
	s.TwilioURL = "http://" + twilio.addr
	s.closers = append(s.closers, twilio.close)
	return s, nil
}

// Forget drops the arrival times recorded so far, so a long run does not
// hold them all; the counts go on.
func (s *Sinks) Forget() {
	s.Email.forget()
	s.Webhook.forget()
	s.SMS.forget()
}

// Close stops the sinks.
func (s *Sinks) Close() {
	for _, c := range s.closers {
		_ = c()
	}
}

type httpSink struct {
	addr  string
	close func() error
}

func serveHTTP(h http.Handler) (*httpSink, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = srv.Serve(l) }()
	return &httpSink{addr: l.Addr().String(), close: srv.Close}, nil
}

type backend struct{ s *Sinks }

func (b backend) NewSession(*smtp.Conn) (smtp.Session, error) { return session{b.s}, nil }

type session struct{ s *Sinks }

func (session) Mail(string, *smtp.MailOptions) error { return nil }
func (session) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (session) Reset()                               {}
func (session) Logout() error                        { return nil }
func (x session) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	x.s.Email.add(time.Now())
	return nil
}

// Percentile returns the p-th percentile (0–100) of ds, 0 when empty.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

// waitAll runs n jobs on conns goroutines, each taking the next index.
func waitAll(ctx context.Context, n, conns int, setup func() (func(i int) error, func(), error)) error {
	var next int
	var mu sync.Mutex
	take := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if next >= n || ctx.Err() != nil {
			return 0, false
		}
		next++
		return next - 1, true
	}
	errs := make(chan error, conns)
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			send, done, err := setup()
			if err != nil {
				errs <- err
				return
			}
			defer done()
			for {
				i, ok := take()
				if !ok {
					return
				}
				if err := send(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}
