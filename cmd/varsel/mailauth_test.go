package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeKey writes key as PKCS#8 PEM into dir and returns the path.
func writeKey(t *testing.T, dir, name string, key any) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigDKIMKeysCheckedAtStart(t *testing.T) {
	dir := t.TempDir()
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edFile, rsaFile, ecFile := writeKey(t, dir, "ed.pem", edKey), writeKey(t, dir, "rsa.pem", rsaKey), writeKey(t, dir, "ec.pem", ecKey)
	textFile := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(textFile, []byte("selector: varsel\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")

	base := func() Config {
		return Config{NATSListen: "127.0.0.1:0", NATSReplicas: 1, DataDir: "x", HTTPAddr: ":8080", PublicURL: "http://localhost:8080",
			SMSRate: 1, DefaultLocale: "en", Timezone: "Europe/Oslo", WebhookOutbox: "auto", RemindBefore: 10 * time.Minute, DeliveryRetention: 720 * time.Hour,
			DKIMDomain: "example.com", DKIMSelector: "ed", DKIMKeyFile: edFile}
	}
	for name, tc := range map[string]struct {
		edit func(*Config)
		want []string // every one must be in the error; none: no error
	}{
		"ed25519 alone":    {func(*Config) {}, nil},
		"rsa alone":        {func(c *Config) { c.DKIMKeyFile = rsaFile }, nil},
		"ed25519 and rsa":  {func(c *Config) { c.DKIMRSASelector, c.DKIMRSAKeyFile = "rsa", rsaFile }, nil},
		"no dkim":          {func(c *Config) { c.DKIMDomain, c.DKIMSelector, c.DKIMKeyFile = "", "", "" }, nil},
		"missing file":     {func(c *Config) { c.DKIMKeyFile = missing }, []string{"VARSEL_DKIM_KEY_FILE", missing, "no such file"}},
		"not pem":          {func(c *Config) { c.DKIMKeyFile = textFile }, []string{"VARSEL_DKIM_KEY_FILE", textFile, "not a PEM file"}},
		"ecdsa":            {func(c *Config) { c.DKIMKeyFile = ecFile }, []string{"VARSEL_DKIM_KEY_FILE", ecFile, "RSA or Ed25519 only"}},
		"second not rsa":   {func(c *Config) { c.DKIMRSASelector, c.DKIMRSAKeyFile = "rsa", edFile }, []string{"VARSEL_DKIM_RSA_KEY_FILE", edFile, "must be RSA"}},
		"second missing":   {func(c *Config) { c.DKIMRSASelector, c.DKIMRSAKeyFile = "rsa", missing }, []string{"VARSEL_DKIM_RSA_KEY_FILE", missing}},
		"second no file":   {func(c *Config) { c.DKIMRSASelector = "rsa" }, []string{"VARSEL_DKIM_RSA_SELECTOR", "or neither"}},
		"second same sel":  {func(c *Config) { c.DKIMRSASelector, c.DKIMRSAKeyFile = "ed", rsaFile }, []string{"VARSEL_DKIM_RSA_SELECTOR", "of its own"}},
		"second, no first": {func(c *Config) { c.DKIMDomain, c.DKIMRSASelector, c.DKIMRSAKeyFile = "", "rsa", rsaFile }, []string{"VARSEL_DKIM_RSA_SELECTOR", "needs the first"}},
		"both bad at once": {func(c *Config) { c.DKIMKeyFile, c.DKIMRSASelector, c.DKIMRSAKeyFile = missing, "rsa", textFile },
			[]string{"VARSEL_DKIM_KEY_FILE", "VARSEL_DKIM_RSA_KEY_FILE", missing, textFile}},
	} {
		cfg := base()
		tc.edit(&cfg)
		err := cfg.Validate()
		if len(tc.want) == 0 {
			if err != nil {
				t.Errorf("%s: Validate() = %v", name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error does not say %q:\n%v", name, w, err)
			}
		}
	}

	// The flags and variables reach the email channel's settings.
	t.Setenv("VARSEL_DKIM_RSA_SELECTOR", "rsa2026")
	var cfg Config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	if err := cfg.bindFlags(fs)(); err != nil {
		t.Fatal(err)
	}
	if err := fs.Parse([]string{"--dkim-domain", "example.com", "--dkim-selector", "ed", "--dkim-key-file", edFile, "--dkim-rsa-key-file", rsaFile}); err != nil {
		t.Fatal(err)
	}
	first, second := cfg.emailDKIM()
	if first == nil || second == nil || first.Selector != "ed" || first.KeyFile != edFile ||
		second.Domain != "example.com" || second.Selector != "rsa2026" || second.KeyFile != rsaFile {
		t.Errorf("emailDKIM() = %v, %v", first, second)
	}
	cfg.DKIMRSAKeyFile = ""
	if _, second := cfg.emailDKIM(); second != nil {
		t.Errorf("a second signature without its key file: %v", second)
	}
}

func TestConfigPublicURLWarnsWithoutHTTPS(t *testing.T) {
	for url, warn := range map[string]bool{
		"http://status.example.com":      true,
		"http://10.0.0.5:8080":           true,
		"http://localhost.example.com":   true,
		"https://status.example.com":     false,
		"http://localhost:8080":          false,
		"http://LOCALHOST":               false,
		"http://127.0.0.1:8080/varsel":   false,
		"http://127.10.0.1":              false,
		"http://[::1]:8080":              false,
		"HTTPS://status.example.com/x/y": false,
	} {
		var buf bytes.Buffer
		warnPublicURL(slog.New(slog.NewTextHandler(&buf, nil)), url)
		out := buf.String()
		if got := strings.Contains(out, "level=WARN") && strings.Contains(out, "RFC 8058"); got != warn {
			t.Errorf("%s: warned %v, want %v: %q", url, got, warn, out)
		}
		if n := strings.Count(out, "\n"); warn && n != 1 {
			t.Errorf("%s: %d lines logged, want 1", url, n)
		}
	}
}
