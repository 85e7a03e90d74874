package sms

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"time"
)

// maxErrorBody bounds how much of a Twilio error answer is read.
const maxErrorBody = 64 << 10

// attempt is the http.RoundTripper of one Twilio API call. It sends each
// request to cfg.APIURL instead of the host twilio-go hard-codes, under
// the call's context (twilio-go uses context.Background), and notes what
// happened on the wire so a failure can be classified: whether the
// request was written (a timeout after that is ambiguous), the HTTP status
// and Retry-After.
type attempt struct {
	ctx        context.Context
	ch         *Channel
	wrote      atomic.Bool
	status     atomic.Int32
	retryAfter atomic.Int64
}

// RoundTrip implements http.RoundTripper.
func (a *attempt) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := httptrace.WithClientTrace(a.ctx, &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				a.wrote.Store(true)
			}
		},
	})
	out := req.Clone(ctx)
	out.URL.Scheme = a.ch.base.Scheme
	out.URL.Host = a.ch.base.Host
	out.URL.Path = strings.TrimRight(a.ch.base.Path, "/") + out.URL.Path
	out.URL.RawPath = ""
	out.Host = ""
	resp, err := a.ch.transport.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	a.status.Store(int32(resp.StatusCode))
	if resp.StatusCode >= 400 {
		a.retryAfter.Store(int64(parseRetryAfter(resp.Header.Get("Retry-After"), a.ch.now())))
		// twilio-go never closes an error answer's body, which would pin
		// the connection; hand it a copy and close the real one.
		b, rerr := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
		if rerr != nil {
			return nil, rerr
		}
		resp.Body = io.NopCloser(bytes.NewReader(b))
	}
	return resp, nil
}

func (a *attempt) statusCode() int { return int(a.status.Load()) }

func (a *attempt) retryAfterDelay() time.Duration { return time.Duration(a.retryAfter.Load()) }
