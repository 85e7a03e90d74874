package web

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/varsel/varsel/notifier"
)

const cancelPrefix = "http://status.example.com/subscribe/cancel/"

// cancelPath returns the path of a confirmation email's List-Unsubscribe
// link, which must be the signed cancel link.
func cancelPath(t *testing.T, m *notifier.Message) string {
	t.Helper()
	if !strings.HasPrefix(m.UnsubscribeURL, cancelPrefix) || len(m.UnsubscribeURL) < len(cancelPrefix)+40 {
		t.Fatalf("List-Unsubscribe URL %q, want a signed %s… link", m.UnsubscribeURL, cancelPrefix)
	}
	return strings.TrimPrefix(m.UnsubscribeURL, "http://status.example.com")
}

// TestSignupEmailOneClickCancels: the confirmation email's List-Unsubscribe
// is an RFC 8058 one-click link: a GET only asks; the POST a mail client
// sends (List-Unsubscribe=One-Click, no cookies) answers 200 and cancels
// the sign-up: its confirmation link stops working, and a new sign-up for
// the address sends nothing for SignupDeclineFor, with the same answer.
func TestSignupEmailOneClickCancels(t *testing.T) {
	mb := &mailbox{}
	f, logs := newSignupFixture(t, mb.send)
	ctx := context.Background()
	res, first := f.do(t, http.MethodPost, "/subscribe", "", form("email", "kari@example.com", "locale", "nb"))
	sent := mb.all()
	if res.StatusCode != 200 || len(sent) != 1 {
		t.Fatalf("POST /subscribe: %d, %d emails", res.StatusCode, len(sent))
	}
	link, cancel := linkPath(t, sent[0].M), cancelPath(t, sent[0].M)
	if strings.Contains(sent[0].M.Text+sent[0].M.HTML, cancel) {
		t.Error("the cancel link is in the body; it belongs in the header only")
	}

	// GET asks, in the sign-up's language, and changes nothing.
	res, body := f.do(t, http.MethodGet, cancel, "", nil)
	if res.StatusCode != 200 || !strings.Contains(body, "Vil du avbryte påmeldingen?") || !strings.Contains(body, "30 dager") ||
		!strings.Contains(body, `<form method="post" action="`+cancel+`"`) || !strings.Contains(body, "Avbryt påmeldingen</button>") {
		t.Fatalf("GET cancel: %d\n%s", res.StatusCode, body)
	}
	if at, _ := f.conn.Subscribers.SignupDeclined(ctx, "kari@example.com", time.Time{}); !at.IsZero() {
		t.Fatal("GET recorded a decline")
	}
	// English when asked for.
	if body := f.getInLanguage(t, cancel+"?lang=en", "en"); !strings.Contains(body, "Cancel this sign-up?") || strings.Contains(body, "påmeldingen") {
		t.Errorf("GET cancel?lang=en:\n%s", body)
	}

	// The mail client's one-click POST.
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+cancel, strings.NewReader("List-Unsubscribe=One-Click"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("one-click POST: %d, want 200", res.StatusCode)
	}
	at, err := f.conn.Subscribers.SignupDeclined(ctx, "KARI@example.com ", time.Now().Add(-time.Minute))
	if err != nil || at.IsZero() {
		t.Fatalf("no decline recorded: %v %v", at, err)
	}
	// Again, from the page's button: the same answer.
	res, body = f.do(t, http.MethodPost, cancel, "", nil)
	if res.StatusCode != 200 || !strings.Contains(body, "Påmeldingen er avbrutt") {
		t.Errorf("second POST: %d\n%s", res.StatusCode, body)
	}

	// The confirmation link no longer works (nor for a link checker).
	res, body = f.do(t, http.MethodGet, link, "", nil)
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(body, "Denne påmeldingen ble avbrutt fra e-posten") {
		t.Errorf("confirm after cancel: %d\n%s", res.StatusCode, body)
	}
	if res, _ := f.do(t, http.MethodHead, link, "", nil); res.StatusCode != http.StatusBadRequest {
		t.Errorf("HEAD confirm after cancel: %d", res.StatusCode)
	}
	if n := countSubscribers(t, f); n != 0 {
		t.Errorf("%d subscribers after a cancelled sign-up", n)
	}

	// A new sign-up for the address: the same answer, no email.
	res, again := f.do(t, http.MethodPost, "/subscribe", "", form("email", "Kari@Example.com", "locale", "nb"))
	if res.StatusCode != 200 || again != first {
		t.Errorf("sign-up after cancel: %d, answer differs from a sent one:\n%s", res.StatusCode, again)
	}
	if n := len(mb.all()); n != 1 {
		t.Errorf("%d emails, want no new one after the cancel", n)
	}
	if !strings.Contains(logs.String(), "the address cancelled a sign-up") {
		t.Errorf("the log does not say why nothing was sent:\n%s", logs)
	}
	// Another address is not affected.
	f.do(t, http.MethodPost, "/subscribe", "", form("email", "ola@example.com"))
	if n := len(mb.all()); n != 2 {
		t.Errorf("%d emails, want one to another address", n)
	}
	// After SignupDeclineFor the decline is forgotten, and erased.
	later := time.Now().Add(SignupDeclineFor + time.Hour)
	if at, err := f.conn.Subscribers.SignupDeclined(ctx, "kari@example.com", later.Add(-SignupDeclineFor)); err != nil || !at.IsZero() {
		t.Errorf("decline after %v: %v %v", SignupDeclineFor, at, err)
	}
	if at, _ := f.conn.Subscribers.SignupDeclined(ctx, "kari@example.com", time.Time{}); !at.IsZero() {
		t.Error("an old decline was not erased")
	}
	for _, secret := range []string{"kari@example.com", "Kari@Example.com", strings.TrimPrefix(cancel, "/subscribe/cancel/")[:20]} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log contains %q", secret)
		}
	}
}

// TestSignupCancelRefusesTamperedTokens: a cancel link that is not ours,
// or another link's token, gets 403 and changes nothing.
func TestSignupCancelRefusesTamperedTokens(t *testing.T) {
	mb := &mailbox{}
	f, _ := newSignupFixture(t, mb.send)
	f.do(t, http.MethodPost, "/subscribe", "", form("email", "kari@example.com"))
	sent := mb.all()
	cancel := cancelPath(t, sent[0].M)
	token := strings.TrimPrefix(cancel, "/subscribe/cancel/")
	payload, sig, _ := strings.Cut(token, ".")
	// The first character: the last one's low bits may be padding.
	flip := func(s string) string {
		b := []byte(s)
		if b[0] == 'A' {
			b[0] = 'B'
		} else {
			b[0] = 'A'
		}
		return string(b)
	}
	other := signPending(f.tokens, pending{Email: "ola@example.com", Locale: "en", Expires: time.Now().Add(time.Hour).Unix()})
	for name, bad := range map[string]string{
		"altered signature":  payload + "." + flip(sig),
		"altered payload":    flip(payload) + "." + sig,
		"confirmation token": other,
		"unsubscribe token":  f.tokens.Sign(notifier.TokenClaims{Purpose: notifier.PurposeUnsubscribe, SubscriberID: "kari", Channel: notifier.Email}),
		"garbage":            "nonsense",
	} {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			res, body := f.do(t, method, "/subscribe/cancel/"+bad, "", strings.NewReader("List-Unsubscribe=One-Click"))
			if res.StatusCode != http.StatusForbidden || !strings.Contains(body, "This link does not work") {
				t.Errorf("%s %s: %d\n%s", method, name, res.StatusCode, body)
			}
		}
	}
	if at, _ := f.conn.Subscribers.SignupDeclined(context.Background(), "kari@example.com", time.Time{}); !at.IsZero() {
		t.Error("a tampered token recorded a decline")
	}
	if res, _ := f.do(t, http.MethodGet, linkPath(t, sent[0].M), "", nil); res.StatusCode != 200 {
		t.Errorf("the confirmation link stopped working: %d", res.StatusCode)
	}
}

// TestSignupCancelAfterConfirming: "unsubscribe" on a confirmation email
// whose link was opened already unsubscribes the address from email.
func TestSignupCancelAfterConfirming(t *testing.T) {
	mb := &mailbox{}
	f, _ := newSignupFixture(t, mb.send)
	f.do(t, http.MethodPost, "/subscribe", "", form("email", "kari@example.com"))
	m := mb.all()[0].M
	if res, _ := f.do(t, http.MethodGet, linkPath(t, m), "", nil); res.StatusCode != 200 {
		t.Fatalf("confirm: %d", res.StatusCode)
	}
	res, body := f.do(t, http.MethodPost, cancelPath(t, m), "", strings.NewReader("List-Unsubscribe=One-Click"))
	if res.StatusCode != 200 || !strings.Contains(body, "The sign-up is cancelled") {
		t.Fatalf("one-click: %d\n%s", res.StatusCode, body)
	}
	sub, err := f.conn.Subscribers.Get(context.Background(), SubscriberID("kari@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	if why, ok := sub.Suppressed[notifier.Email]; !ok || why.Reason != notifier.ReasonOptedOut || why.Detail != notifier.OptOutByLink {
		t.Errorf("email suppression %+v (%v), want an opt-out by link", why, ok)
	}
}
