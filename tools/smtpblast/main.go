// Command smtpblast sends n emails to an SMTP server on loopback over a
// number of persistent go-mail connections, as fast as they go, and prints
// the rate: the raw capacity that tools/external.sh sets Varsel's fan-out
// against. Each email is composed by email.Compose, as Varsel composes
// its own, with a body of about Varsel's size.
//
//	go run ./tools/smtpblast -n 20000 -conns 8 -addr 127.0.0.1:2525
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/mail"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/varsel/varsel/channels/email"
	"github.com/varsel/varsel/internal/benchsink"
	"github.com/varsel/varsel/notifier"
)

func main() {
	n := flag.Int("n", 20000, "emails to send")
	conns := flag.Int("conns", 8, "SMTP connections, as Varsel's pool=")
	addr := flag.String("addr", "127.0.0.1:2525", "SMTP server (loopback only)")
	flag.Parse()
	host, _, err := net.SplitHostPort(*addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		log.Fatalf("smtpblast: %s is not a loopback address", *addr)
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
	start := time.Now()
	err = benchsink.BlastEmail(context.Background(), *addr, *n, *conns, func(i int) (*gomail.Msg, error) {
		d := &notifier.Delivery{ID: "blast", Channel: notifier.Email, Event: ev, Message: msg,
			Subscriber: &notifier.Subscriber{ID: fmt.Sprintf("m%05d", i), Email: fmt.Sprintf("user%05d@example.com", i)}}
		m, _, err := email.Compose(d, from)
		return m, err
	})
	if err != nil {
		log.Fatal(err)
	}
	took := time.Since(start)
	fmt.Printf("smtpblast: %d emails on %d connections in %.2f s = %.0f/s\n", *n, *conns, took.Seconds(), float64(*n)/took.Seconds())
}
