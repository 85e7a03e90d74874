// Command faultsinks runs the failing recipients the reliability
// measurements need, on loopback: an SMTP server (go-smtp) that greylists
// some addresses for ever (451 at RCPT), and a set of webhook endpoints of
// which some answer 500 and one hangs. It writes a subscriber CSV for
// `varsel subscribers import` and serves counts at /stats, so a script can
// time how long the healthy recipients wait. See docs/reliability.md.
//
// With -hook-sink, every email subscriber also has a webhook to one
// net/http endpoint there, which takes every request (the fan-out shape
// of tools/external.sh's both-channel rounds), and /wait?hooks=N waits
// for its requests as /wait?emails=N does for the emails.
package main

import (
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"
)

type counts struct {
	mu      sync.Mutex
	emails  map[string]int
	hooks   map[string]int
	refused atomic.Int64
	// sinkHooks counts the requests the -hook-sink endpoint took.
	sinkHooks atomic.Int64
	// lastEmail and lastSinkHook are when the last email and the last
	// -hook-sink request came, in Unix nanoseconds: when each channel of a
	// fan-out ended.
	lastEmail, lastSinkHook atomic.Int64
	// firstEmail and firstSinkHook are when the first of each came: with
	// the last, where a fan-out's time went (planning before the first).
	firstEmail, firstSinkHook atomic.Int64
	// emailsIn counts emails taken; emailsAtLastHook is that count when
	// the last -hook-sink request came: how far the emails were when the
	// webhooks ended.
	emailsIn, emailsAtLastHook atomic.Int64
	failed                     atomic.Int64
	started                    time.Time
	lastHappy                  time.Time
	// maxGap is the longest wait between two healthy deliveries: the
	// stall a fault caused.
	maxGap time.Duration
}

// happy notes a healthy delivery; c.mu is held.
func (c *counts) happy() {
	now := time.Now()
	if !c.lastHappy.IsZero() && now.Sub(c.lastHappy) > c.maxGap {
		c.maxGap = now.Sub(c.lastHappy)
	}
	c.lastHappy = now
}

func main() {
	smtpAddr := flag.String("smtp", "127.0.0.1:2525", "SMTP listen address")
	httpAddr := flag.String("http", "127.0.0.1:9099", "listen address of /stats")
	emails := flag.Int("emails", 1000, "email subscribers")
	greyEvery := flag.Int("grey-every", 25, "every Nth address is greylisted for ever (0: none)")
	hooks := flag.Int("hooks", 240, "webhook subscribers, one endpoint each")
	failEvery := flag.Int("fail-every", 6, "every Nth endpoint answers 500 (0: none)")
	csvPath := flag.String("csv", "faults.csv", "where to write the subscribers")
	hookSink := flag.String("hook-sink", "", "if set, a webhook endpoint at this address that every email subscriber also has, taking every request")
	flag.Parse()

	c := &counts{emails: map[string]int{}, hooks: map[string]int{}, started: time.Now()}
	l, err := net.Listen("tcp", *smtpAddr)
	if err != nil {
		log.Fatal(err)
	}
	s := smtp.NewServer(backend{c})
	s.Domain = "localhost"
	s.ErrorLog = log.New(io.Discard, "", 0)
	go func() { _ = s.Serve(l) }()

	rows := [][]string{{"id", "email", "webhook_url", "components"}}
	for i := range *emails {
		local := fmt.Sprintf("user%05d", i)
		if *greyEvery > 0 && i%*greyEvery == 0 {
			local = fmt.Sprintf("grey%05d", i)
		}
		hook := ""
		if *hookSink != "" {
			hook = "http://" + *hookSink + "/hook"
		}
		rows = append(rows, []string{fmt.Sprintf("m%05d", i), local + "@example.com", hook, ""})
	}
	if *hookSink != "" {
		hl, err := net.Listen("tcp", *hookSink)
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			_ = http.Serve(hl, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if _, err := io.Copy(io.Discard, r.Body); err == nil {
					c.sinkHooks.Add(1)
					now := time.Now().UnixNano()
					c.firstSinkHook.CompareAndSwap(0, now)
					c.lastSinkHook.Store(now)
					c.emailsAtLastHook.Store(c.emailsIn.Load())
				}
			}))
		}()
	}
	for i := range *hooks {
		hl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			log.Fatal(err)
		}
		fail := *failEvery > 0 && i%*failEvery == 0
		name := fmt.Sprintf("h%05d", i)
		go func() {
			_ = http.Serve(hl, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				if fail {
					c.failed.Add(1)
					http.Error(w, "down", http.StatusInternalServerError)
					return
				}
				c.mu.Lock()
				c.hooks[name]++
				c.happy()
				c.mu.Unlock()
			}))
		}()
		rows = append(rows, []string{name, "", "http://" + hl.Addr().String() + "/hook", ""})
	}
	f, err := os.Create(*csvPath)
	if err != nil {
		log.Fatal(err)
	}
	w := csv.NewWriter(f)
	_ = w.WriteAll(rows)
	_ = f.Close()

	http.HandleFunc("/stats", func(w http.ResponseWriter, _ *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{
			"emails_delivered": len(c.emails), "emails_total": total(c.emails), "emails_greylisted_rcpts": c.refused.Load(),
			"hooks_delivered": len(c.hooks), "hooks_failed_requests": c.failed.Load(), "hook_sink_requests": c.sinkHooks.Load(),
			"first_email_at": unixNano(c.firstEmail.Load()), "first_hook_sink_at": unixNano(c.firstSinkHook.Load()),
			"last_email_at": unixNano(c.lastEmail.Load()), "last_hook_sink_at": unixNano(c.lastSinkHook.Load()),
			"emails_at_last_hook_sink": c.emailsAtLastHook.Load(), "last_healthy_at": c.lastHappy, "max_gap_ms": c.maxGap.Milliseconds(),
		})
	})
	// /wait?emails=N&hooks=M answers once N addresses have their email
	// and the -hook-sink endpoint took M requests (or after timeout=, 60s
	// by default, with 504), so a script can time a fan-out without
	// polling /stats in a loop that would take CPU from the run. With
	// since= (Unix nanoseconds) it adds when the first and last of each
	// came.
	http.HandleFunc("/wait", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var want [2]int
		for i, k := range []string{"emails", "hooks"} {
			if v := q.Get(k); v != "" {
				n, err := strconv.Atoi(v)
				if err != nil || n < 0 {
					http.Error(w, k+"= must be a count", http.StatusBadRequest)
					return
				}
				want[i] = n
			}
		}
		timeout := time.Minute
		if t := q.Get("timeout"); t != "" {
			var err error
			if timeout, err = time.ParseDuration(t); err != nil {
				http.Error(w, "timeout= must be a duration such as 30s", http.StatusBadRequest)
				return
			}
		}
		deadline := time.Now().Add(timeout)
		for {
			c.mu.Lock()
			emails := len(c.emails)
			c.mu.Unlock()
			hooks := int(c.sinkHooks.Load())
			if emails >= want[0] && hooks >= want[1] {
				fmt.Fprintf(w, "%d emails, %d webhook requests\n", emails, hooks)
				if since, err := strconv.ParseInt(q.Get("since"), 10, 64); err == nil && since > 0 {
					// Where the fan-out's time went, in seconds from since
					// (Unix nanoseconds): the webhooks may end long before
					// the emails, and slow them while they run.
					at := func(t int64) string {
						if t == 0 {
							return "-"
						}
						return fmt.Sprintf("%.2f s", time.Duration(t-since).Seconds())
					}
					fmt.Fprintf(w, "first email %s, first webhook %s, last webhook %s (%d emails in by then), last email %s\n",
						at(c.firstEmail.Load()), at(c.firstSinkHook.Load()), at(c.lastSinkHook.Load()), c.emailsAtLastHook.Load(), at(c.lastEmail.Load()))
				}
				return
			}
			if time.Now().After(deadline) {
				http.Error(w, fmt.Sprintf("%d of %d emails and %d of %d webhook requests after %v",
					emails, want[0], hooks, want[1], timeout), http.StatusGatewayTimeout)
				return
			}
			select {
			case <-r.Context().Done():
				return // the caller went away
			case <-time.After(2 * time.Millisecond):
			}
		}
	})
	go func() { log.Fatal(http.ListenAndServe(*httpAddr, nil)) }()
	fmt.Printf("smtp %s, stats http://%s/stats, subscribers %s\n", *smtpAddr, *httpAddr, *csvPath)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
}

// unixNano is t as a time, or nil for none (0).
func unixNano(t int64) any {
	if t == 0 {
		return nil
	}
	return time.Unix(0, t).UTC().Format(time.RFC3339Nano)
}

func total(m map[string]int) (n int) {
	for _, v := range m {
		n += v
	}
	return n
}

type backend struct{ c *counts }

func (b backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{c: b.c}, nil }

type session struct {
	c  *counts
	to []string
}

func (s *session) Mail(string, *smtp.MailOptions) error { return nil }
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if strings.HasPrefix(to, "grey") {
		s.c.refused.Add(1)
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "Greylisted, try again later"}
	}
	s.to = append(s.to, to)
	return nil
}
func (s *session) Reset()        { s.to = nil }
func (s *session) Logout() error { return nil }
func (s *session) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	s.c.mu.Lock()
	for _, to := range s.to {
		s.c.emails[to]++
	}
	now := time.Now().UnixNano()
	s.c.firstEmail.CompareAndSwap(0, now)
	s.c.emailsIn.Add(1)
	s.c.lastEmail.Store(now)
	s.c.happy()
	s.c.mu.Unlock()
	return nil
}
