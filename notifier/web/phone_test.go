package web

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/varsel/varsel/notifier"
)

// smsCode is the 6-digit code in a sign-up SMS.
var smsCode = regexp.MustCompile(`\b[0-9]{6}\b`)

// smsTo returns the SMS bodies the fixture "sent" to phone.
func smsTo(mb *mailbox, phone string) []string {
	var out []string
	for _, m := range mb.all() {
		if m.To == phone && m.M.SMS != "" {
			out = append(out, m.M.SMS)
		}
	}
	return out
}

// signUp posts the form and returns the path of the confirmation link.
func signUp(t *testing.T, f *fixture, mb *mailbox, kv ...string) string {
	t.Helper()
	before := len(mb.all())
	if res, body := f.do(t, http.MethodPost, "/subscribe", "", form(kv...)); res.StatusCode != 200 {
		t.Fatalf("sign-up: %d %s", res.StatusCode, body)
	}
	sent := mb.all()
	if len(sent) != before+1 || sent[len(sent)-1].M.SMS != "" {
		t.Fatalf("sign-up sent %d messages, want one email", len(sent)-before)
	}
	return linkPath(t, sent[len(sent)-1].M)
}

// plan plans an incident opening (an SMS-worthy event) over the store and
// returns the jobs by channel and the SMS skipped for an unverified number.
func plan(t *testing.T, f *fixture, id string) (map[notifier.ChannelName][]string, float64) {
	t.Helper()
	m := notifier.NewMetrics(prometheus.NewRegistry())
	p := &notifier.Planner{Subscribers: f.conn.Subscribers, Policy: notifier.DefaultPolicy{}, Metrics: m}
	ev := &notifier.Event{ID: id, Type: notifier.IncidentOpened, Time: time.Now(),
		Incident: &notifier.Incident{ID: "i-" + id, Status: notifier.Status("investigating"), Impact: notifier.ImpactMajor}}
	jobs := map[notifier.ChannelName][]string{}
	if _, err := p.Plan(context.Background(), ev, nil, func(j notifier.Job) error {
		jobs[j.Channel] = append(jobs[j.Channel], j.SubscriberID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return jobs, testutil.ToFloat64(m.Deliveries.WithLabelValues("sms", "skipped", string(notifier.ReasonPhoneUnverified)))
}

// TestSignupVerifiesPhone: a number on the sign-up form gets a code by SMS
// when the email link is opened; no SMS alert goes to it (skipped, with the
// reason) until the code is entered; a wrong code is refused; the right one
// verifies the number and SMS alerts go to it. Neither the code nor the
// number is logged.
func TestSignupVerifiesPhone(t *testing.T) {
	mb := &mailbox{}
	f, logs := newSignupFixture(t, mb.send)
	ctx := context.Background()
	link := signUp(t, f, mb, "email", "kari@example.com", "phone", "922 11 333", "locale", "nb")
	if got := smsTo(mb, "+4792211333"); len(got) != 0 {
		t.Fatalf("an SMS before the email was confirmed: %q", got)
	}
	res, body := f.do(t, http.MethodGet, link, "", nil)
	if res.StatusCode != 200 || !strings.Contains(body, "Vi har sendt en kode på SMS til &#43;47******33.") ||
		!strings.Contains(body, `name="code"`) || !strings.Contains(body, `name="confirm" value="`+strings.TrimPrefix(link, "/confirm/")+`"`) ||
		!strings.Contains(body, "Bekreft nummeret") {
		t.Fatalf("confirm: %d %s", res.StatusCode, body)
	}
	texts := smsTo(mb, "+4792211333")
	if len(texts) != 1 || !strings.HasPrefix(texts[0], "Koden din for driftsmeldinger på SMS: ") || !strings.Contains(texts[0], "Den virker i 10 minutter.") {
		t.Fatalf("SMS %q, want one code in Norwegian", texts)
	}
	code := smsCode.FindString(texts[0])
	sub, err := f.conn.Subscribers.Get(ctx, SubscriberID("kari@example.com"))
	if err != nil || sub.Phone != "+4792211333" || !sub.PhoneUnverified || sub.PhoneCheck == nil || strings.Contains(sub.PhoneCheck.Digest, code) {
		t.Fatalf("subscriber %+v, %v", sub, err)
	}
	// Opening the link again sends no second code while this one works.
	f.do(t, http.MethodGet, link, "", nil)
	if n := len(smsTo(mb, "+4792211333")); n != 1 {
		t.Errorf("%d codes after opening the link twice", n)
	}
	jobs, skipped := plan(t, f, "before")
	if len(jobs[notifier.SMS]) != 0 || len(jobs[notifier.Email]) != 1 || skipped != 1 {
		t.Fatalf("before the code: jobs %v, skipped %v; want email only and one SMS skipped", jobs, skipped)
	}
	token := strings.TrimPrefix(link, "/confirm/")
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	res, body = f.do(t, http.MethodPost, "/subscribe", "", form("confirm", token, "code", wrong, "locale", "nb"))
	if res.StatusCode != 400 || !strings.Contains(body, "Koden stemmer ikke.") {
		t.Fatalf("wrong code: %d %s", res.StatusCode, body)
	}
	res, body = f.do(t, http.MethodGet, "/subscribe?confirm="+token, "", nil)
	if res.StatusCode != 200 || !strings.Contains(body, `name="code"`) || !strings.Contains(body, `lang="nb"`) {
		t.Fatalf("GET the code form: %d %s", res.StatusCode, body)
	}
	res, body = f.do(t, http.MethodPost, "/subscribe", "", form("confirm", token, "code", code[:3]+" "+code[3:], "locale", "nb"))
	if res.StatusCode != 200 || !strings.Contains(body, "Nummeret er bekreftet.") {
		t.Fatalf("right code: %d %s", res.StatusCode, body)
	}
	if sub, _ := f.conn.Subscribers.Get(ctx, sub.ID); sub.PhoneUnverified || sub.PhoneCheck != nil {
		t.Errorf("after the code: %+v", sub)
	}
	jobs, skipped = plan(t, f, "after")
	if len(jobs[notifier.SMS]) != 1 || skipped != 0 {
		t.Fatalf("after the code: jobs %v, skipped %v", jobs, skipped)
	}
	for _, secret := range []string{code, "92211333", "kari@"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log contains %q:\n%s", secret, logs)
		}
	}
	if !strings.Contains(logs.String(), "+47******33") {
		t.Errorf("the log does not name the masked number:\n%s", logs)
	}
}

// TestPhoneCodeLocksAndExpires: five wrong codes lock the code (the right
// one is refused after); an expired code is refused; opening the email link
// again sends a new code, in English for an English sign-up.
func TestPhoneCodeLocksAndExpires(t *testing.T) {
	mb := &mailbox{}
	f, _ := newSignupFixture(t, mb.send)
	ctx := context.Background()
	const phone = "+4792211333"
	link := signUp(t, f, mb, "email", "ola@example.com", "phone", "+47 922 11 333", "locale", "en")
	token := strings.TrimPrefix(link, "/confirm/")
	if res, body := f.do(t, http.MethodGet, link, "", nil); !strings.Contains(body, "We have sent a code by SMS to &#43;47******33.") {
		t.Fatalf("confirm: %d %s", res.StatusCode, body)
	}
	texts := smsTo(mb, phone)
	if len(texts) != 1 || !strings.HasPrefix(texts[0], "Your code for status alerts by SMS: ") || !strings.HasSuffix(texts[0], "It works for 10 minutes.") {
		t.Fatalf("SMS %q, want one code in English", texts)
	}
	code := smsCode.FindString(texts[0])
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	for i := 1; i <= notifier.PhoneCodeAttempts; i++ {
		_, body := f.do(t, http.MethodPost, "/subscribe", "", form("confirm", token, "code", wrong))
		want := "That code is not right."
		if i == notifier.PhoneCodeAttempts {
			want = "Too many wrong codes."
		}
		if !strings.Contains(body, want) {
			t.Fatalf("wrong code %d: page lacks %q: %s", i, want, body)
		}
	}
	res, body := f.do(t, http.MethodPost, "/subscribe", "", form("confirm", token, "code", code))
	if res.StatusCode != 400 || !strings.Contains(body, "Too many wrong codes.") {
		t.Fatalf("right code after the lock: %d %s", res.StatusCode, body)
	}
	id := SubscriberID("ola@example.com")
	if sub, _ := f.conn.Subscribers.Get(ctx, id); !sub.PhoneUnverified {
		t.Fatal("a locked code verified the number")
	}
	// The link again: a new code, which expires.
	f.do(t, http.MethodGet, link, "", nil)
	if texts = smsTo(mb, phone); len(texts) != 2 {
		t.Fatalf("%d codes after the lock and the link again, want 2", len(texts))
	}
	code = smsCode.FindString(texts[1])
	if _, err := f.conn.Subscribers.Update(ctx, id, func(s *notifier.Subscriber) error {
		s.PhoneCheck.Expires = time.Now().Add(-time.Second)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	res, body = f.do(t, http.MethodPost, "/subscribe", "", form("confirm", token, "code", code))
	if res.StatusCode != 400 || !strings.Contains(body, "This code has expired.") {
		t.Fatalf("expired code: %d %s", res.StatusCode, body)
	}
	if sub, _ := f.conn.Subscribers.Get(ctx, id); !sub.PhoneUnverified {
		t.Fatal("an expired code verified the number")
	}
	// A forged token gets nothing.
	if res, _ := f.do(t, http.MethodPost, "/subscribe", "", form("confirm", token+"x", "code", code)); res.StatusCode != 400 {
		t.Errorf("forged token: %d", res.StatusCode)
	}
}

// TestSignupSameAddressTwice: an address an operator imported, signed up
// twice in another case, stays one subscriber (the operator's, updated at
// confirmation only) and gets one email per event.
func TestSignupSameAddressTwice(t *testing.T) {
	mb := &mailbox{}
	f, _ := newSignupFixture(t, mb.send)
	ctx := context.Background()
	if err := f.conn.Subscribers.Put(ctx, &notifier.Subscriber{ID: "kari-nordmann", Name: "Kari", Email: "kari@example.com", Locale: "en"}); err != nil {
		t.Fatal(err)
	}
	first := signUp(t, f, mb, "email", "Kari@Example.com", "locale", "nb")
	second := signUp(t, f, mb, "email", "kari@example.com", "locale", "nb")
	if sub, _ := f.conn.Subscribers.Get(ctx, "kari-nordmann"); sub.Locale != "en" {
		t.Fatal("a sign-up changed the subscriber before its link was opened")
	}
	for _, link := range []string{first, second} {
		if res, body := f.do(t, http.MethodGet, link, "", nil); res.StatusCode != 200 {
			t.Fatalf("confirm: %d %s", res.StatusCode, body)
		}
	}
	if n := countSubscribers(t, f); n != 1 {
		t.Fatalf("%d subscribers, want 1", n)
	}
	sub, err := f.conn.Subscribers.Get(ctx, "kari-nordmann")
	if err != nil || sub.Locale != "nb" || sub.Name != "Kari" {
		t.Fatalf("subscriber %+v, %v", sub, err)
	}
	jobs, _ := plan(t, f, "twice")
	if len(jobs[notifier.Email]) != 1 {
		t.Errorf("email jobs %v, want one", jobs[notifier.Email])
	}
}
