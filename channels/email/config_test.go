package email

import (
	"strings"
	"testing"
	"time"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want Config
	}{
		{"starttls with auth", "smtp://user%40example.com:p%40ss@smtp.example.com:587?tls=starttls",
			Config{Host: "smtp.example.com", Port: 587, Username: "user@example.com", Password: "p@ss", TLS: TLSStartTLS}},
		{"implicit tls and pool", "smtp://u:p@mail.example.com:465?tls=TLS&pool=8",
			Config{Host: "mail.example.com", Port: 465, Username: "u", Password: "p", TLS: TLSImplicit, PoolSize: 8}},
		{"smtps scheme", "smtps://mail.example.com", Config{Host: "mail.example.com", TLS: TLSImplicit}},
		{"local relay without auth", "smtp://127.0.0.1:1025?tls=none", Config{Host: "127.0.0.1", Port: 1025, TLS: TLSNone}},
		{"pipelining off", "smtp://relay.example.com?pipelining=OFF", Config{Host: "relay.example.com", Pipelining: PipeliningOff}},
		{"login auth", "smtp://u:p@[::1]:25?tls=none&auth=LOGIN", Config{Host: "::1", Port: 25, Username: "u", Password: "p", TLS: TLSNone, Auth: "login"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseURL(tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tt.want.String() || got.Password != tt.want.Password || got.Auth != tt.want.Auth {
				t.Errorf("ParseURL = %s (auth %q), want %s (auth %q)", got, got.Auth, tt.want, tt.want.Auth)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
	for _, raw := range []string{"http://host", "smtp://host:x", "smtp://host?pool=many", "smtp://u:secretpw@ho st"} {
		if _, err := ParseURL(raw); err == nil {
			t.Errorf("ParseURL(%q) accepted", raw)
		} else if strings.Contains(err.Error(), "secretpw") {
			t.Errorf("ParseURL error shows the password: %v", err)
		}
	}
}

func TestDefaults(t *testing.T) {
	c := Config{Host: "h"}.withDefaults()
	if c.TLS != TLSStartTLS || c.Port != 587 || c.From != DefaultFrom || c.PoolSize != 8 ||
		c.DialTimeout != DefaultDialTimeout || c.SendTimeout != DefaultSendTimeout || c.Auth != "plain" {
		t.Errorf("defaults = %+v", c)
	}
	if p := (Config{Host: "h", TLS: TLSImplicit}).withDefaults().Port; p != 465 {
		t.Errorf("tls port = %d, want 465", p)
	}
	if p := (Config{Host: "h", TLS: TLSNone}).withDefaults().Port; p != 25 {
		t.Errorf("none port = %d, want 25", p)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Config{
		Port: 70000, TLS: "ssl", Auth: "ntlm", Password: "x", From: "not an address",
		PoolSize: -1, SendTimeout: -time.Second, Pipelining: "yes",
		DKIM: &DKIMConfig{KeyFile: "/nonexistent/key.pem"},
	}
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate accepted a bad config")
	}
	for _, want := range []string{"host", "port", "tls", "auth", "user name", "from", "pool", "pipelining \"yes\"", "send timeout",
		"dkim domain", "dkim selector", "read dkim key"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error does not mention %q:\n%v", want, err)
		}
	}
	clear := Config{Host: "smtp.example.com", TLS: TLSNone, Username: "u", Password: "p"}
	if err := clear.Validate(); err == nil || !strings.Contains(err.Error(), "clear text") {
		t.Errorf("password over tls=none to a remote host: %v", err)
	}
	if err := (Config{Host: "localhost", TLS: TLSNone, Username: "u", Password: "p"}).Validate(); err != nil {
		t.Errorf("tls=none with auth on loopback: %v", err)
	}
	if _, err := New(c, nil); err == nil {
		t.Error("New accepted a bad config")
	}
}
