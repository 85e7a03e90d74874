// Command smtpblast sends n emails to an SMTP server on loopback over a
// number of persistent go-mail connections, as fast as they go, and prints
// the rate: the raw capacity that tools/external.sh sets Varsel's fan-out
// against. Each email is composed by email.Compose, as Varsel composes
// its own, with a body of about Varsel's size. With -hooks it also posts
// that many webhooks at once, each Varsel's payload for the same update
// signed by webhook.Sign, over -hook-conns keep-alive connections (32, as
// Varsel's webhook workers), and prints both rates and the combined one.
//
//	go run ./tools/smtpblast -n 20000 -conns 8 -addr 127.0.0.1:2525
//	go run ./tools/smtpblast -n 20000 -hooks 20000 -hook-url http://127.0.0.1:9098/hook
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/mail"
	"net/url"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/varsel/varsel/channels/email"
	"github.com/varsel/varsel/channels/webhook"
	"github.com/varsel/varsel/internal/benchsink"
	"github.com/varsel/varsel/notifier"
)

func main() {
	n := flag.Int("n", 20000, "emails to send")
	conns := flag.Int("conns", 8, "SMTP connections, as Varsel's pool=")
	addr := flag.String("addr", "127.0.0.1:2525", "SMTP server (loopback only)")
	hooks := flag.Int("hooks", 0, "webhooks to post at the same time (0: none)")
	hookURL := flag.String("hook-url", "http://127.0.0.1:9098/hook", "webhook endpoint (loopback only)")
	hookConns := flag.Int("hook-conns", 32, "keep-alive connections for the webhooks, as Varsel's webhook workers")
	flag.Parse()
	if !loopback(*addr) {
		log.Fatalf("smtpblast: %s is not a loopback address", *addr)
	}
	if *n < 1 || *conns < 1 || *hooks < 0 || *hookConns < 1 {
		log.Fatal("smtpblast: -n, -conns and -hook-conns must be at least 1, -hooks at least 0")
	}
	u, err := url.Parse(*hookURL)
	if *hooks > 0 && (err != nil || !loopbackHost(u.Hostname())) {
		log.Fatalf("smtpblast: %s is not a URL on a loopback address", *hookURL)
	}
	from, err := mail.ParseAddress("Status <status@localhost>")
	if err != nil {
		log.Fatal(err)
	}
	// About the size of Varsel's email for an update: 3.3 KB of HTML and
	// 0.9 KB of text, with Norwegian letters to quote-print.
	msg := &notifier.Message{Subject: "Problemer med innlogging",
		Text:           strings.Repeat("Vi vet om problemet og jobber med å løse det.\n", 18),
		HTML:           strings.Repeat("<p style=\"margin:0 0 16px 0;\">Vi vet om problemet og jobber med å løse det.</p>\n", 40),
		UnsubscribeURL: "http://127.0.0.1:8080/unsubscribe/token", Locale: "nb"}
	ev := &notifier.Event{ID: "blast", Type: notifier.IncidentUpdated, Time: time.Now()}
	var hook *webhook.Signed
	if *hooks > 0 {
		if hook, err = signedHook(); err != nil {
			log.Fatal(err)
		}
	}
	type result struct {
		what string
		n    int
		took time.Duration
		err  error
	}
	results := make(chan result, 2)
	start := time.Now()
	go func() {
		err := benchsink.BlastEmail(context.Background(), *addr, *n, *conns, func(i int) (*gomail.Msg, error) {
			d := &notifier.Delivery{ID: "blast", Channel: notifier.Email, Event: ev, Message: msg,
				Subscriber: &notifier.Subscriber{ID: fmt.Sprintf("m%05d", i), Email: fmt.Sprintf("user%05d@example.com", i)}}
			m, _, err := email.Compose(d, from)
			return m, err
		})
		results <- result{fmt.Sprintf("emails on %d connections", *conns), *n, time.Since(start), err}
	}()
	if *hooks > 0 {
		go func() {
			err := benchsink.BlastHTTP(context.Background(), *hookURL, *hooks, *hookConns, hook.Body, hook.Header)
			results <- result{fmt.Sprintf("webhooks on %d connections", *hookConns), *hooks, time.Since(start), err}
		}()
	}
	var took time.Duration
	for range min(*hooks, 1) + 1 {
		r := <-results
		if r.err != nil {
			log.Fatal(r.err)
		}
		took = max(took, r.took)
		fmt.Printf("smtpblast: %d %s in %.2f s = %.0f/s\n", r.n, r.what, r.took.Seconds(), float64(r.n)/r.took.Seconds())
	}
	if *hooks > 0 {
		fmt.Printf("smtpblast: %d messages in %.2f s = %.0f/s\n", *n+*hooks, took.Seconds(), float64(*n+*hooks)/took.Seconds())
	}
}

// signedHook is Varsel's webhook for an update to a reader, signed as
// Varsel signs it.
func signedHook() (*webhook.Signed, error) {
	ev, err := notifier.DecodeEvent([]byte(`{"id":"blast-1","type":"incident.updated","time":"2019-09-17T10:00:00+02:00",
		"incident":{"id":"blast","title":{"en":"Slow logins","nb":"Treg innlogging"},"status":"identified","impact":"minor",
		"components":["web"],"started_at":"2019-09-17T09:00:00+02:00","message":{"en":"We are on it.","nb":"Vi jobber med saken."}}}`))
	if err != nil {
		return nil, err
	}
	inc := &notifier.IncidentState{}
	inc.Apply(ev)
	sub := &notifier.Subscriber{ID: "m00000", WebhookURL: "http://127.0.0.1/hook",
		WebhookSecret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", Locale: "nb"}
	m := &notifier.Message{Locale: "nb", WebhookText: "Treg innlogging: Vi jobber med saken. Neste oppdatering kl. 12:00.",
		StatusURL: "http://127.0.0.1:8080/", IncidentURL: "http://127.0.0.1:8080/incidents/blast"}
	d := &notifier.Delivery{ID: notifier.DeliveryID(ev.ID, sub.ID, notifier.Webhook), Channel: notifier.Webhook,
		Event: ev, Incident: inc, Subscriber: sub, Message: m, Attempt: 1}
	return webhook.Sign(d, time.Now(), "", nil)
}

func loopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	return err == nil && loopbackHost(host)
}

// loopbackHost: a loopback IP address (a name could resolve elsewhere).
func loopbackHost(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
