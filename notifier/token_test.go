package notifier

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
)

// flip changes the first character of s.
func flip(s string) string {
	if s[0] == 'A' {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}

func TestTokensRoundTripAndRefuseTampering(t *testing.T) {
	tokens, err := NewTokens([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	c := TokenClaims{Purpose: PurposeUnsubscribe, SubscriberID: "kari-nordmann", Channel: Email}
	tok := tokens.Sign(c)
	// The format is fixed: links in messages already sent must keep working.
	m := hmac.New(sha256.New, []byte("0123456789abcdef0123456789abcdef"))
	m.Write([]byte("varsel-link-v1|u|kari-nordmann|email"))
	want := base64.RawURLEncoding.EncodeToString([]byte("u|kari-nordmann|email")) + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	if tok != want {
		t.Errorf("token = %s, want %s", tok, want)
	}
	got, err := tokens.Verify(tok)
	if err != nil || got != c {
		t.Fatalf("Verify = %+v, %v", got, err)
	}
	other, _ := NewTokens([]byte("another secret, another secret!!"))
	p, sig, _ := strings.Cut(tok, ".")
	for name, bad := range map[string]string{
		"other secret":    other.Sign(c),
		"altered payload": "e" + p[1:] + "." + sig,
		"altered sig":     p + "." + flip(sig),
		"no dot":          p + sig,
		"empty":           "",
	} {
		if _, err := tokens.Verify(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewTokens([]byte("short")); err == nil {
		t.Error("a 5-byte secret was accepted")
	}
}

func BenchmarkTokenSign(b *testing.B) {
	tokens, _ := NewTokens([]byte("0123456789abcdef0123456789abcdef"))
	c := TokenClaims{Purpose: PurposeUnsubscribe, SubscriberID: "kari-nordmann", Channel: Email}
	b.ReportAllocs()
	for b.Loop() {
		tokens.Sign(c)
	}
}
