package main

import (
	"flag"
	"io"
	"strings"
	"testing"
)

// TestConfigReportsEveryProblemAtOnce: a value that does not parse (a
// duration, a whole number) no longer stops the check; it is reported with
// the rest, naming the variable or flag and the value, and `serve` stops
// before starting anything.
func TestConfigReportsEveryProblemAtOnce(t *testing.T) {
	want := func(t *testing.T, err error, parts ...string) {
		t.Helper()
		if err == nil {
			t.Fatal("invalid configuration accepted")
		}
		for _, p := range parts {
			if !strings.Contains(err.Error(), p) {
				t.Errorf("the error does not say %q:\n%v", p, err)
			}
		}
	}
	t.Run("environment", func(t *testing.T) {
		t.Setenv("VARSEL_REMIND_BEFORE", "soon")
		t.Setenv("VARSEL_EMAIL_BOUNCE_LIMIT", "many")
		t.Setenv("VARSEL_PUBLIC_URL", "ftp://status.example.com")
		t.Setenv("VARSEL_DEFAULT_LOCALE", "de")
		t.Setenv("VARSEL_LOG_LEVEL", "loud")
		t.Setenv("VARSEL_DATA_DIR", t.TempDir())
		_, err := varsel(t, "serve", "--nats-listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--metrics-addr", "")
		want(t, err, `VARSEL_REMIND_BEFORE="soon": want a duration`, `VARSEL_EMAIL_BOUNCE_LIMIT="many": want a whole number`,
			`VARSEL_PUBLIC_URL: "ftp://status.example.com" is not an http(s) URL`, `VARSEL_DEFAULT_LOCALE: "de"`, `VARSEL_LOG_LEVEL: "loud"`)
		// A bad value leaves the default, so it is not reported twice.
		if strings.Count(err.Error(), "VARSEL_REMIND_BEFORE") != 1 || strings.Count(err.Error(), "VARSEL_EMAIL_BOUNCE_LIMIT") != 1 {
			t.Errorf("a setting reported twice:\n%v", err)
		}
	})
	t.Run("flags", func(t *testing.T) {
		t.Setenv("VARSEL_DATA_DIR", t.TempDir())
		_, err := varsel(t, "serve", "--nats-listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--metrics-addr", "",
			"--remind-before", "soon", "--email-bounce-limit=many", "--public-url", "ftp://status.example.com", "--default-locale", "de",
			"--sms-rate", "fast", "--webhook-allow-private=maybe")
		want(t, err, `--remind-before="soon" (VARSEL_REMIND_BEFORE): want a duration`, `--email-bounce-limit="many" (VARSEL_EMAIL_BOUNCE_LIMIT): want a whole number`,
			"VARSEL_PUBLIC_URL", "VARSEL_DEFAULT_LOCALE", `--sms-rate="fast"`, `--webhook-allow-private="maybe"`)
	})
	t.Run("a flag replaces a bad variable", func(t *testing.T) {
		t.Setenv("VARSEL_REMIND_BEFORE", "soon")
		var cfg Config
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		check := cfg.bindFlags(fs)
		if err := check(); err == nil || !strings.Contains(err.Error(), "VARSEL_REMIND_BEFORE") {
			t.Errorf("bad variable not reported: %v", err)
		}
		if err := fs.Parse([]string{"--remind-before", "5m", "--webhook-allow-private"}); err != nil {
			t.Fatal(err)
		}
		if err := check(); err != nil || cfg.RemindBefore.String() != "5m0s" || !cfg.WebhookAllowPrivate {
			t.Errorf("after --remind-before 5m: %v, %s, allow private %t", err, cfg.RemindBefore, cfg.WebhookAllowPrivate)
		}
	})
}

// TestLogLevel: VARSEL_LOG_LEVEL (serve --log-level) takes debug, info,
// warn or error, and nothing else.
func TestLogLevel(t *testing.T) {
	for _, tc := range []struct {
		level string
		ok    bool
	}{{"debug", true}, {"info", true}, {"WARN", true}, {"error", true}, {"", true}, {"loud", false}, {"verbose", false}} {
		cfg := testConfig(t.TempDir())
		cfg.LogLevel = tc.level
		err := cfg.Validate()
		if tc.ok != (err == nil) || !tc.ok && !strings.Contains(err.Error(), "VARSEL_LOG_LEVEL") {
			t.Errorf("log level %q: %v", tc.level, err)
		}
	}
	var cfg Config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	check := cfg.bindFlags(fs)
	if err := fs.Parse([]string{"--log-level", "warn"}); err != nil || check() != nil || cfg.LogLevel != "warn" {
		t.Fatalf("--log-level warn: %v %v %q", err, check(), cfg.LogLevel)
	}
	if !cfg.logger(io.Discard).Enabled(t.Context(), 4) || cfg.logger(io.Discard).Enabled(t.Context(), 0) {
		t.Error("--log-level warn does not log warnings only")
	}
}
