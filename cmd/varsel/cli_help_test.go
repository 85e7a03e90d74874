package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/varsel/varsel/notifier"
)

// runCLI runs one command line and keeps stdout and stderr apart.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = run(context.Background(), args, strings.NewReader(""), &out, &errOut)
	return out.String(), errOut.String(), err
}

var flagLine = regexp.MustCompile(`(?m)^  -([a-z][a-z0-9-]*)`)

// TestHelpOnEveryCommand: -h, --help and help print the command's own
// usage, with its own flags only, on stdout, and exit 0.
func TestHelpOnEveryCommand(t *testing.T) {
	nats := []string{"context", "nats"}
	with := func(more ...string) []string { return append(slices.Clone(nats), more...) }
	for _, tc := range []struct {
		cmd   string
		flags []string // nil: not checked one by one
	}{
		{"serve", nil},
		{"demo", nil},
		{"publish", with("watch")},
		{"subscribers add", with("allow-private-webhooks", "default-region", "id", "name", "email", "phone", "webhook-url", "webhook-secret", "locale", "timezone", "components")},
		{"subscribers import", with("allow-private-webhooks", "default-region")},
		{"subscribers list", nats},
		{"subscribers show", nats},
		{"subscribers export", nats},
		{"subscribers remove", nats},
		{"subscribers enable", with("channel", "force")},
		{"letter preview", []string{"locale", "timezone", "channel"}},
		{"letter send", with("locale", "timezone", "dry-run", "test-to", "watch")},
		{"deliveries list", with("event", "status", "summary")},
		{"deliveries retry", with("failed", "event")},
		{"staff add", with("email", "name", "locale", "password-stdin")},
		{"staff list", nats},
		{"staff remove", nats},
		{"rejected list", nats},
		{"status export", nats},
		{"templates check", []string{}},
		{"bench", []string{"subscribers", "channels", "events", "repeat", "idle", "json", "cpuprofile", "memprofile", "data-dir"}},
		{"version", []string{}},
		{"healthcheck", []string{"url"}},
	} {
		for _, h := range []string{"-h", "--help", "help"} {
			args := append(strings.Fields(tc.cmd), h)
			out, errOut, err := runCLI(t, args...)
			name := "varsel " + strings.Join(args, " ")
			if err != nil || errOut != "" {
				t.Errorf("%s: err=%v stderr=%q", name, err, errOut)
				continue
			}
			if !strings.HasPrefix(out, "Usage: varsel "+tc.cmd) || strings.Contains(out, "help requested") {
				t.Errorf("%s printed:\n%s", name, out)
				continue
			}
			if tc.flags == nil {
				if !strings.Contains(out, "-nats-listen") || !strings.Contains(out, "VARSEL_HTTP_ADDR") {
					t.Errorf("%s does not list serve's settings:\n%s", name, out)
				}
				continue
			}
			var got []string
			for _, m := range flagLine.FindAllStringSubmatch(out, -1) {
				got = append(got, m[1])
			}
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tc.flags))
			if !slices.Equal(got, want) {
				t.Errorf("%s lists flags %v, want %v:\n%s", name, got, want, out)
			}
		}
	}
	// Commands made of subcommands list them.
	for group, subs := range map[string][]string{
		"subscribers": {"add", "import", "list", "show", "export", "remove", "enable"},
		"deliveries":  {"list", "retry"},
		"letter":      {"preview", "send"},
		"staff":       {"add", "list", "remove"},
		"status":      {"export"},
		"templates":   {"check"},
		"rejected":    {"list"},
	} {
		for _, h := range []string{"-h", "--help", "help"} {
			out, errOut, err := runCLI(t, group, h)
			if err != nil || errOut != "" || !strings.HasPrefix(out, "Usage: varsel "+group+" COMMAND") {
				t.Errorf("varsel %s %s: err=%v stderr=%q\n%s", group, h, err, errOut, out)
				continue
			}
			for _, sub := range subs {
				if !regexp.MustCompile(`(?m)^  ` + sub + `\b`).MatchString(out) {
					t.Errorf("varsel %s %s does not list %s:\n%s", group, h, sub, out)
				}
			}
		}
	}
	// The top level, and help COMMAND.
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}} {
		out, _, err := runCLI(t, args...)
		if err != nil || !strings.Contains(out, "varsel healthcheck") || !strings.Contains(out, "varsel version") {
			t.Errorf("varsel %s: %v\n%s", args[0], err, out)
		}
	}
	if out, _, err := runCLI(t, "help", "deliveries", "retry"); err != nil || !strings.HasPrefix(out, "Usage: varsel deliveries retry ID") {
		t.Errorf("varsel help deliveries retry: %v\n%s", err, out)
	}
}

// TestUnknownCommandsSaySo: an unknown command or subcommand, or a flag
// the command does not have, is named, with the usage, exit 2.
func TestUnknownCommandsSaySo(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"nope"}, []string{`unknown command "nope"`, "Usage:"}},
		{[]string{"subscribers", "nope"}, []string{`unknown subscribers command "nope"`, "Commands:", "enable ID"}},
		{[]string{"deliveries", "nope"}, []string{`unknown deliveries command "nope"`, "retry ID"}},
		{[]string{"letter", "nope"}, []string{`unknown letter command "nope"`, "preview FILE"}},
		{[]string{"staff", "nope"}, []string{`unknown staff command "nope"`, "remove EMAIL"}},
		{[]string{"status", "nope"}, []string{`unknown status command "nope"`, "export DIR"}},
		{[]string{"templates", "nope"}, []string{`unknown templates command "nope"`, "check"}},
		{[]string{"rejected", "nope"}, []string{`unknown rejected command "nope"`}},
		{[]string{"subscribers"}, []string{"needs a command"}},
		{[]string{"deliveries", "retry", "x", "--event", "e"}, []string{"--failed and --event go together"}},
		{[]string{"deliveries", "retry", "x", "--failed", "--event", "e"}, []string{"varsel deliveries retry ID, or varsel deliveries retry --failed --event ID"}},
		{[]string{"deliveries", "retry"}, []string{"varsel deliveries retry ID, or varsel deliveries retry --failed --event ID"}},
		{[]string{"help", "nope"}, []string{`unknown command "nope"`}},
	} {
		out, errOut, err := runCLI(t, tc.args...)
		all := errOut
		if err != nil {
			all += err.Error()
		}
		if !errors.Is(err, errUsage) {
			t.Errorf("varsel %s: err=%v, want a usage error (exit 2)", strings.Join(tc.args, " "), err)
		}
		for _, w := range tc.want {
			if !strings.Contains(all, w) {
				t.Errorf("varsel %s: %q missing from:\n%s", strings.Join(tc.args, " "), w, all)
			}
		}
		if out != "" {
			t.Errorf("varsel %s wrote to stdout: %q", strings.Join(tc.args, " "), out)
		}
	}
}

func TestVersion(t *testing.T) {
	out, _, err := runCLI(t, "version")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"varsel " + version + "\n", "commit ", "go           go1.", "nats-server  v2."} {
		if !strings.Contains(out, want) {
			t.Errorf("version lacks %q:\n%s", want, out)
		}
	}
}

func TestHealthcheck(t *testing.T) {
	svc, _ := testService(t, nil)
	addr := svc.listener.Addr().String()
	waitFor(t, "ready", func() bool {
		_, _, err := runCLI(t, "healthcheck", "--url", "http://"+addr+"/readyz")
		return err == nil
	})
	// The default comes from VARSEL_HTTP_ADDR; :PORT is asked on 127.0.0.1.
	_, port, _ := net.SplitHostPort(addr)
	t.Setenv("VARSEL_HTTP_ADDR", ":"+port)
	if out, _, err := runCLI(t, "healthcheck"); err != nil || out != "ready: http://127.0.0.1:"+port+"/readyz\n" {
		t.Errorf("healthcheck from VARSEL_HTTP_ADDR: %v %q", err, out)
	}
	// Nothing listening: exit 1, with the URL and the reason.
	t.Setenv("VARSEL_HTTP_ADDR", "127.0.0.1:"+closedPort(t))
	_, _, err := runCLI(t, "healthcheck")
	if err == nil || errors.Is(err, errUsage) || !strings.Contains(err.Error(), "not ready: http://127.0.0.1:") || !strings.Contains(err.Error(), "refused") {
		t.Errorf("healthcheck of a closed port: %v", err)
	}
}

// closedPort is a loopback port nothing listens on (just closed).
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	return port
}

// lockedBuffer is a bytes.Buffer for a writer in another goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *lockedBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *lockedBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestCLIFindsAMovedServe: `varsel serve` moved off 4222 with
// VARSEL_NATS_LISTEN is found by the CLI without --nats; one exported
// VARSEL_NATS_URL naming that address serves both serve and the CLI; and
// serve warns when its links point at another port than it listens on.
func TestCLIFindsAMovedServe(t *testing.T) {
	dir := t.TempDir()
	port := closedPort(t)
	listen := "127.0.0.1:" + port
	for k, v := range map[string]string{
		"VARSEL_DATA_DIR": dir, "VARSEL_HTTP_ADDR": "127.0.0.1:0", "VARSEL_METRICS_ADDR": "", "VARSEL_NATS_LISTEN": listen,
		"VARSEL_NATS_URL": "nats://" + listen, "VARSEL_PUBLIC_URL": "http://localhost:8080", "VARSEL_NATS_CONTEXT": "",
		"VARSEL_SMTP_URL": "", "VARSEL_TWILIO_ACCOUNT_SID": "", "VARSEL_SITE_FILE": "", "VARSEL_EXPORT_DIR": "",
	} {
		t.Setenv(k, v)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var logs lockedBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, strings.NewReader(""), &logs, &logs) }()
	t.Cleanup(func() { cancel(); <-done })
	// VARSEL_NATS_URL exported for the CLI: serve runs its embedded server there.
	waitFor(t, "the CLI to reach serve by VARSEL_NATS_URL", func() bool {
		select {
		case err := <-done:
			t.Fatalf("serve stopped: %v\n%s", err, logs.String())
		default:
		}
		_, _, err := runCLI(t, "subscribers", "list")
		return err == nil
	})
	if !strings.Contains(logs.String(), "names this serve's own VARSEL_NATS_LISTEN address") {
		t.Errorf("serve did not say it took VARSEL_NATS_URL for its own address:\n%s", logs.String())
	}
	waitFor(t, "a warning for links to :8080 while serving elsewhere", func() bool {
		return strings.Contains(logs.String(), "VARSEL_PUBLIC_URL is on this machine but not on the port serve listens on")
	})
	// Without VARSEL_NATS_URL: the data directory's varsel.json.
	t.Setenv("VARSEL_NATS_URL", "")
	t.Setenv("VARSEL_NATS_LISTEN", "")
	if out, errOut, err := runCLI(t, "subscribers", "list"); err != nil {
		t.Errorf("by VARSEL_DATA_DIR: %v\n%s%s", err, out, errOut)
	}
	// A context file without a url: VARSEL_NATS_LISTEN gives it.
	raw, err := os.ReadFile(filepath.Join(dir, "nats", "varsel.json"))
	if err != nil {
		t.Fatal(err)
	}
	var nc map[string]any
	if err := json.Unmarshal(raw, &nc); err != nil {
		t.Fatal(err)
	}
	delete(nc, "url")
	noURL, _ := json.Marshal(nc)
	ctxFile := filepath.Join(t.TempDir(), "varsel.json")
	if err := os.WriteFile(ctxFile, noURL, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VARSEL_NATS_CONTEXT", ctxFile)
	t.Setenv("VARSEL_NATS_LISTEN", listen)
	if out, errOut, err := runCLI(t, "subscribers", "list"); err != nil {
		t.Errorf("by VARSEL_NATS_LISTEN: %v\n%s%s", err, out, errOut)
	}
	// Nothing there: the error names the URL, where it came from, and the fix.
	other := "127.0.0.1:" + closedPort(t)
	t.Setenv("VARSEL_NATS_LISTEN", other)
	_, _, err = runCLI(t, "subscribers", "list")
	for _, want := range []string{"nats://" + other, "VARSEL_NATS_LISTEN", "--nats", "VARSEL_NATS_URL", "VARSEL_DATA_DIR"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("failed connect does not say %q: %v", want, err)
		}
	}
}

func TestNamesListen(t *testing.T) {
	for _, tc := range []struct {
		url, listen string
		want        bool
	}{
		{"nats://127.0.0.1:4333", "127.0.0.1:4333", true},
		{"nats://localhost:4333", "127.0.0.1:4333", true},
		{"127.0.0.1:4333", "0.0.0.0:4333", true},
		{"nats://127.0.0.1:4333", ":4333", true},
		{"nats://127.0.0.1:4222", "127.0.0.1:4333", false},
		{"nats://nats:4333", "0.0.0.0:4333", false},
		{"nats://127.0.0.1:4333,nats://127.0.0.1:4334", "127.0.0.1:4333", false},
		{"nats://127.0.0.1:4333", "10.0.0.5:4333", false},
	} {
		if got := namesListen(tc.url, tc.listen); got != tc.want {
			t.Errorf("namesListen(%q, %q) = %v", tc.url, tc.listen, got)
		}
	}
}

// TestCLIAnswersAreTrue: duplicate publish, unknown subscribers, the
// webhook column, times with their zone, and an own opt-out kept.
func TestCLIAnswersAreTrue(t *testing.T) {
	svc, _ := testService(t, nil)
	nats := svc.conn.ClientURL()
	ctx := context.Background()
	t.Setenv("VARSEL_TIMEZONE", "Europe/Oslo")

	if out, err := varsel(t, "subscribers", "add", "--id", "kari", "--name", "Kari", "--email", "kari@example.com", "--phone", "+4791234567", "--nats", nats); err != nil {
		t.Fatalf("add: %v\n%s", err, out)
	}
	event := "../../examples/styreweb/01-2019-09-16-1100-opened.json"
	if out, err := varsel(t, "publish", event, "--nats", nats); err != nil || !strings.Contains(out, "published styreweb-2019-09-16-1100") {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	out, err := varsel(t, "publish", event, "--nats", nats)
	if err != nil || !strings.Contains(out, "styreweb-2019-09-16-1100 already published") || !strings.Contains(out, "nothing sent") || strings.Contains(out, "published styreweb") {
		t.Errorf("duplicate publish: %v\n%s", err, out)
	}

	// Unknown ids: exit 1, "no subscriber X", no bucket name.
	for _, sub := range [][]string{{"remove", "nobody"}, {"show", "nobody"}, {"export", "nobody"}, {"enable", "nobody", "--channel", "email"}} {
		out, err := varsel(t, append(append([]string{"subscribers"}, sub...), "--nats", nats)...)
		if err == nil || errors.Is(err, errUsage) || err.Error() != "no subscriber nobody" || strings.Contains(out, "removed") {
			t.Errorf("subscribers %s: err=%v out=%q", sub[0], err, out)
		}
	}

	if _, err := varsel(t, "deliveries", "retry", "nothing.email", "--nats", nats); err == nil || err.Error() != "no delivery nothing.email (the ids are in `varsel deliveries list`)" {
		t.Errorf("retry of an unknown delivery: %v", err)
	}

	// The WEBHOOK column: "-" without a webhook.
	out, err = varsel(t, "subscribers", "list", "--nats", nats)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[0] == "kari" && f[4] != "-" {
			t.Errorf("WEBHOOK of kari is %q:\n%s", f[4], out)
		}
	}

	// Delivery times carry their zone.
	zoned := regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (CET|CEST)\b`)
	waitFor(t, "kari's deliveries", func() bool {
		out, err = varsel(t, "deliveries", "list", "--event", "styreweb-2019-09-16-1100", "--nats", nats)
		return err == nil && strings.Contains(out, "sent")
	})
	if !zoned.MatchString(out) {
		t.Errorf("deliveries list times have no zone:\n%s", out)
	}
	t.Setenv("VARSEL_TIMEZONE", "UTC")
	if out, _ := varsel(t, "deliveries", "list", "--nats", nats); !regexp.MustCompile(`:\d\d UTC\b`).MatchString(out) {
		t.Errorf("deliveries list in UTC:\n%s", out)
	}

	// A person's own opt-out is lifted only with --force; a bounce without.
	if _, err := svc.conn.Subscribers.Update(ctx, "kari", func(s *notifier.Subscriber) error {
		s.Suppressed = map[notifier.ChannelName]notifier.Suppression{
			notifier.Email: {Reason: notifier.ReasonOptedOut, Detail: notifier.OptOutByLink, At: time.Now()},
			notifier.SMS:   {Reason: notifier.ReasonBounced, At: time.Now()},
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	out, err = varsel(t, "subscribers", "enable", "kari", "--channel", "email", "--nats", nats)
	if err == nil || errors.Is(err, errUsage) || !strings.Contains(err.Error(), "their own choice") || !strings.Contains(err.Error(), "--force") {
		t.Errorf("enable of an own opt-out: err=%v out=%s", err, out)
	}
	if s, _ := svc.conn.Subscribers.Get(ctx, "kari"); s == nil || s.Reachable(notifier.Email) {
		t.Error("the refused enable lifted the opt-out")
	}
	if out, err := varsel(t, "subscribers", "enable", "kari", "--channel", "sms", "--nats", nats); err != nil || !strings.Contains(out, "enabled sms for kari") {
		t.Errorf("enable of a bounced channel: %v %s", err, out)
	}
	if out, err := varsel(t, "subscribers", "enable", "kari", "--channel", "email", "--force", "--nats", nats); err != nil || !strings.Contains(out, "enabled email for kari") {
		t.Errorf("enable --force: %v %s", err, out)
	}
	if s, _ := svc.conn.Subscribers.Get(ctx, "kari"); s == nil || !s.Reachable(notifier.Email) || !s.Reachable(notifier.SMS) {
		t.Errorf("after enabling: %+v", s)
	}
}

// TestLetterDryRunNeverSends: --dry-run with --test-to is refused before
// anything is written or sent; a letter send of another event type says
// so in good English.
func TestLetterDryRunNeverSends(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("VARSEL_DATA_DIR", dir)
	t.Setenv("VARSEL_SMTP_URL", "")
	_, _, err := runCLI(t, "letter", "send", "../../examples/led/letter.json", "--dry-run", "--test-to", "me@example.com", "--nats", "nats://127.0.0.1:1")
	if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "nothing sent") {
		t.Errorf("--dry-run --test-to: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Errorf("--dry-run --test-to wrote %v", entries)
	}
	_, _, err = runCLI(t, "letter", "send", "../../examples/led/02-updated.json", "--nats", "nats://127.0.0.1:1")
	if err == nil || !strings.Contains(err.Error(), "is an incident.updated event") {
		t.Errorf("letter send of an update: %v", err)
	}
}
