package benchsink

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/twilio/twilio-go"
	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"
	gomail "github.com/wneessen/go-mail"
)

// BlastEmail sends n messages to the SMTP server at addr over conns
// persistent go-mail connections, as fast as they go, the way Varsel's pool
// does (no NOOP or RSET round trips). msg builds the i-th message.
func BlastEmail(ctx context.Context, addr string, n, conns int, msg func(i int) (*gomail.Msg, error)) error {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	port, _ := strconv.Atoi(portText)
	return waitAll(ctx, n, conns, func() (func(int) error, func(), error) {
		c, err := gomail.NewClient(host, gomail.WithPort(port), gomail.WithTLSPolicy(gomail.NoTLS), gomail.WithHELO("localhost"),
			gomail.WithoutNoop(), gomail.WithoutRset(), gomail.WithTimeout(30*time.Second))
		if err != nil {
			return nil, nil, err
		}
		if err := c.DialWithContext(ctx); err != nil {
			return nil, nil, fmt.Errorf("blast email: dial %s: %w", addr, err)
		}
		send := func(i int) error {
			m, err := msg(i)
			if err != nil {
				return fmt.Errorf("blast email: %w", err)
			}
			if err := c.Send(m); err != nil {
				return fmt.Errorf("blast email: %w", err)
			}
			return nil
		}
		return send, func() { _ = c.Close() }, nil
	})
}

// BlastHTTP posts body with header n times to target over conns
// keep-alive connections.
func BlastHTTP(ctx context.Context, target string, n, conns int, body []byte, header http.Header) error {
	tr := &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	return waitAll(ctx, n, conns, func() (func(int) error, func(), error) {
		send := func(int) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
			if err != nil {
				return err
			}
			req.Header = header.Clone()
			res, err := hc.Do(req)
			if err != nil {
				return fmt.Errorf("blast webhook: %w", err)
			}
			res.Body.Close()
			if res.StatusCode/100 != 2 {
				return fmt.Errorf("blast webhook: %s", res.Status)
			}
			return nil
		}
		return send, func() {}, nil
	})
}

// rewrite sends every request to base instead of Twilio's host.
type rewrite struct {
	base *url.URL
	rt   http.RoundTripper
}

func (r rewrite) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.URL.Scheme, req.URL.Host, req.Host = r.base.Scheme, r.base.Host, r.base.Host
	return r.rt.RoundTrip(req)
}

// BlastSMS creates n messages through twilio-go against the stand-in at
// base, on conns connections, as account sid with token (twilio-go takes
// letters and digits only).
func BlastSMS(ctx context.Context, base, sid, token string, n, conns int, text string) error {
	u, err := url.Parse(base)
	if err != nil {
		return err
	}
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	defer tr.CloseIdleConnections()
	tc := &client.Client{Credentials: client.NewCredentials(sid, token),
		HTTPClient: &http.Client{Transport: rewrite{base: u, rt: tr}, Timeout: 30 * time.Second}}
	tc.SetAccountSid(sid)
	rc := twilio.NewRestClientWithParams(twilio.ClientParams{Client: tc})
	rc.Edge, rc.Region = "", ""
	return waitAll(ctx, n, conns, func() (func(int) error, func(), error) {
		send := func(i int) error {
			p := &openapi.CreateMessageParams{}
			p.SetTo(fmt.Sprintf("+4790%06d", i%1_000_000))
			p.SetFrom("+4790000000")
			p.SetBody(text)
			if _, err := rc.Api.CreateMessage(p); err != nil {
				return fmt.Errorf("blast sms: %w", err)
			}
			return nil
		}
		return send, func() {}, nil
	})
}
