package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/varsel/varsel/notifier"
)

// TestSubscribersAddNormalizesPhoneAndSignupCodeGoesToOutbox: the CLI
// writes a number without a country code in E.164 of the default region
// and refuses an invalid one; a sign-up's code (a message with an SMS body
// through web.Deps.SendEmail) goes out on the SMS channel, the outbox here.
func TestSubscribersAddNormalizesPhoneAndSignupCodeGoesToOutbox(t *testing.T) {
	svc, dir := testService(t, nil)
	nats := svc.conn.ClientURL()
	if out, err := varsel(t, "subscribers", "add", "--id", "kari", "--phone", "922 11 333", "--nats", nats); err != nil {
		t.Fatalf("add: %v\n%s", err, out)
	}
	sub, err := svc.conn.Subscribers.Get(context.Background(), "kari")
	if err != nil || sub.Phone != "+4792211333" || sub.PhoneUnverified {
		t.Fatalf("stored %+v, %v", sub, err)
	}
	if out, err := varsel(t, "subscribers", "add", "--id", "bad", "--phone", "+47 123 45", "--nats", nats); err == nil || !strings.Contains(err.Error(), "not a valid phone number") {
		t.Fatalf("add an invalid number: %v\n%s", err, out)
	}
	if out, err := varsel(t, "subscribers", "add", "--id", "se", "--phone", "070 123 45 67", "--default-region", "SE", "--nats", nats); err != nil {
		t.Fatalf("add in SE: %v\n%s", err, out)
	}
	if sub, _ := svc.conn.Subscribers.Get(context.Background(), "se"); sub == nil || sub.Phone != "+46701234567" {
		t.Fatalf("stored in SE: %+v", sub)
	}
	t.Cleanup(func() { _ = notifier.SetDefaultRegion(notifier.FallbackRegion) })
	if err := svc.sendSignupEmail(context.Background(), "+4792211333", &notifier.Message{Locale: "nb", SMS: "Koden din for driftsmeldinger på SMS: 123456.", Segments: 1}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "outbox", "sms.jsonl"))
	if err != nil || !strings.Contains(string(b), "123456") || !strings.Contains(string(b), "+4792211333") {
		t.Fatalf("outbox sms: %v\n%s", err, b)
	}
}
