package webhook

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// Config.Self lets exactly Varsel's own loopback URLs through without
// AllowPrivate: another path, port or host on loopback is still refused.
func TestSelfURLsAreTheOnlyLoopbackTargetsCalled(t *testing.T) {
	secret := newSecret(t)
	rc := newReceiver(t, nil, secret)
	self := rc.srv.URL + "/demo/webhook"
	c, err := New(Config{Self: []string{self}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	if _, _, err := c.Notify(context.Background(), incidentDelivery(self, secret)); err != nil {
		t.Fatalf("own URL: %v", err)
	}
	if reqs := rc.requests(); len(reqs) != 1 || reqs[0].verified[secret] != nil {
		t.Fatalf("receiver got %d requests", len(reqs))
	}
	for _, other := range []string{rc.srv.URL + "/hook", self + "?x=1", strings.Replace(self, "127.0.0.1", "localhost", 1)} {
		_, retry, err := c.Notify(context.Background(), incidentDelivery(other, secret))
		var te *TargetError
		if !errors.As(err, &te) || retry {
			t.Errorf("%s: err %v, retry %v; want refused", other, err, retry)
		}
	}
	if n := len(rc.requests()); n != 1 {
		t.Errorf("receiver got %d requests, want only the own URL's", n)
	}
	for _, bad := range []string{"https://example.com/hook", "http://10.0.0.1/hook", "http://localhost:8080/demo/webhook"} {
		if _, err := New(Config{Self: []string{bad}}, nil); err == nil {
			t.Errorf("Self %q accepted", bad)
		}
	}
}
