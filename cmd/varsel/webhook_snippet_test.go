package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/varsel/varsel/examples"
	"github.com/varsel/varsel/notifier"
)

// webhookDoc is docs/webhooks.md.
func webhookDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../docs/webhooks.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// snippet returns the install line (the first `…` paragraph naming the
// installer) and the code block (```lang) of the docs' section heading.
func snippet(t *testing.T, doc, heading, installer, lang string) (install, code string) {
	t.Helper()
	i := strings.Index(doc, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("docs/webhooks.md has no %q section", heading)
	}
	sec := doc[i+len(heading)+2:]
	if j := strings.Index(sec, "\n### "); j >= 0 {
		sec = sec[:j]
	}
	if m := regexp.MustCompile("`(" + installer + " [^`]+)`").FindStringSubmatch(sec); m != nil {
		install = m[1]
	}
	m := regexp.MustCompile("(?s)```" + lang + "\n(.*?)```").FindStringSubmatch(sec)
	if m == nil {
		t.Fatalf("%s has no ```%s block", heading, lang)
	}
	return install, m[1]
}

// need finds a program of the machine: CI must have it; elsewhere the test
// is skipped without it, saying so.
func need(t *testing.T, program string) string {
	t.Helper()
	path, err := exec.LookPath(program)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed: CI needs it for the webhook snippets", program)
		}
		t.Skipf("%s is not on PATH", program)
	}
	return path
}

// nodePins are the versions the Node snippet is tested with, for each
// package its install line names.
var nodePins = map[string]string{"express": "5.2.1", "standardwebhooks": "1.1.1"}

// nodeModules installs the packages of the install line (at nodePins)
// once, in the user's cache, and returns the node_modules directory.
func nodeModules(t *testing.T, install string) string {
	t.Helper()
	npm := need(t, "npm")
	words := strings.Fields(install)
	if len(words) < 3 || words[0] != "npm" || words[1] != "install" {
		t.Fatalf("the install line %q is not `npm install PACKAGES`", install)
	}
	var specs []string
	for _, name := range words[2:] {
		v, ok := nodePins[name]
		if !ok {
			t.Fatalf("the install line names %s: pin its version in nodePins", name)
		}
		specs = append(specs, name+"@"+v)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	sum := sha256.Sum256([]byte(strings.Join(specs, " ")))
	dir := filepath.Join(cache, "varsel-test", "node-webhook-"+hex.EncodeToString(sum[:6]))
	modules := filepath.Join(dir, "node_modules")
	if _, err := os.Stat(filepath.Join(dir, "installed")); err == nil {
		return modules
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "installing-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	if err := os.WriteFile(filepath.Join(tmp, "package.json"), []byte(`{"private": true, "type": "module"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, append([]string{"install", "--no-audit", "--no-fund", "--save-exact"}, specs...)...)
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		reason := fmt.Sprintf("npm install %s: %v\n%s", strings.Join(specs, " "), err, out)
		offline := regexp.MustCompile(`ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|network`).Match(out) || ctx.Err() != nil
		if offline && os.Getenv("CI") == "" {
			t.Skipf("npm cannot reach its registry: %s", reason)
		}
		t.Fatal(reason)
	}
	if err := os.WriteFile(filepath.Join(tmp, "installed"), []byte(strings.Join(specs, " ")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another run installed it meanwhile.
		if _, statErr := os.Stat(filepath.Join(dir, "installed")); statErr != nil {
			t.Fatal(err)
		}
	}
	return modules
}

// nodeOutput collects a process's output while the test reads it.
type nodeOutput struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *nodeOutput) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *nodeOutput) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// captured is one request Varsel made, and the answer it got.
type captured struct {
	header http.Header
	body   []byte
	status int
}

// TestWebhookSnippetNode runs the Node receiver of docs/webhooks.md, as
// written there, with its packages installed as the docs say, and has
// Varsel deliver a real signed webhook to it: the snippet accepts it,
// prints what it received, and refuses the same delivery tampered with.
// The delivery's data.text is the documented one.
func TestWebhookSnippetNode(t *testing.T) {
	node := need(t, "node")
	doc := webhookDoc(t)
	install, code := snippet(t, doc, "### Node.js", "npm install", "js")
	modules := nodeModules(t, install)

	// The file as the docs name it, beside its packages.
	name := "server.mjs"
	if m := regexp.MustCompile("save it as `([^`]+)`").FindStringSubmatch(doc[strings.Index(doc, "### Node.js"):]); m != nil {
		name = m[1]
	}
	listen := "app.listen(8080);"
	if !strings.Contains(code, listen) {
		t.Fatalf("the Node snippet no longer ends in %q: update this test", listen)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	// Only the port and address differ from the docs: a loopback port of the test's.
	code = strings.Replace(code, listen, fmt.Sprintf(`app.listen(%d, "127.0.0.1", () => console.log("listening"));`, port), 1)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(modules, filepath.Join(dir, "node_modules")); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	secret := "whsec_" + base64.StdEncoding.EncodeToString(key)

	var out nodeOutput
	cmd := exec.Command(node, name)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "VARSEL_WEBHOOK_SECRET="+secret)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "listening") {
		select {
		case err := <-exited:
			t.Fatalf("node %s exited: %v\n%s", name, err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s does not listen:\n%s", name, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	receiver := fmt.Sprintf("http://127.0.0.1:%d/hooks/varsel", port)

	// Between Varsel and the snippet: a recorder that passes everything on.
	got := make(chan captured, 10)
	recorder := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		status, _ := post(receiver, r.Header, body)
		got <- captured{header: r.Header.Clone(), body: body, status: status}
		w.WriteHeader(status)
	}))
	t.Cleanup(recorder.Close)

	site, err := examples.Site()
	if err != nil {
		t.Fatal(err)
	}
	svc, _ := testService(t, func(c *Config) {
		c.WebhookAllowPrivate = true
		c.WebhookOutbox = "false"
		c.PublicURL = "https://status.example.com" // as in the docs' examples
		c.site = site
	})
	ctx := context.Background()
	if err := svc.conn.Subscribers.Put(ctx, &notifier.Subscriber{ID: "acme", Locale: "en", WebhookURL: recorder.URL + "/hooks/varsel", WebhookSecret: secret}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("../../examples/styreweb/06-2019-09-17-1000-updated.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.conn.PublishEvent(ctx, raw); err != nil {
		t.Fatal(err)
	}
	var d captured
	select {
	case d = <-got:
	case <-time.After(20 * time.Second):
		t.Fatalf("no delivery reached the snippet; it printed:\n%s", out.String())
	}
	id := d.header.Get("webhook-id")
	if d.status != http.StatusNoContent {
		t.Fatalf("the snippet answered %d to a real delivery, want 204:\n%s", d.status, out.String())
	}
	waitFor(t, "the snippet's line for the delivery", func() bool {
		return strings.Contains(out.String(), id+" incident.updated styreweb-2019-09-17-1000")
	})

	// Tampered with: the body, or the signature, or stale.
	tampered := bytes.Replace(d.body, []byte(`"impact":"critical"`), []byte(`"impact":"minor"`), 1)
	if bytes.Equal(tampered, d.body) {
		t.Fatalf("no impact to tamper with in %s", d.body)
	}
	badSig := d.header.Clone()
	badSig.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(make([]byte, 32)))
	stale := d.header.Clone()
	stale.Set("webhook-timestamp", fmt.Sprint(time.Now().Add(-time.Hour).Unix()))
	for what, req := range map[string]captured{
		"a changed body":      {header: d.header, body: tampered},
		"a wrong signature":   {header: badSig, body: d.body},
		"an hour old":         {header: stale, body: d.body},
		"no signature at all": {header: http.Header{"Content-Type": {"application/json"}}, body: d.body},
	} {
		status, answer := post(receiver, req.header, req.body)
		if status != http.StatusUnauthorized {
			t.Errorf("the snippet answered %d (%s) to a delivery with %s, want 401", status, answer, what)
		}
	}
	if status, answer := post(receiver, d.header, d.body); status != http.StatusNoContent {
		t.Errorf("the snippet answered %d (%s) to the same delivery sent again, want 204", status, answer)
	}

	// What was sent is what the docs show for this event.
	var sent, documented struct {
		Type string `json:"type"`
		Data struct {
			Locale         string            `json:"locale"`
			Text           string            `json:"text"`
			ComponentNames map[string]string `json:"component_names"`
			Links          map[string]string `json:"links"`
		} `json:"data"`
	}
	if err := json.Unmarshal(d.body, &sent); err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile("(?s)```json\n(.*?)```").FindAllStringSubmatch(doc, -1) {
		if json.Unmarshal([]byte(m[1]), &documented) == nil && documented.Type == "incident.updated" {
			break
		}
	}
	if documented.Data.Text == "" {
		t.Fatal("docs/webhooks.md has no incident.updated example")
	}
	if sent.Data.Text != documented.Data.Text {
		t.Errorf("data.text sent:\n%s\ndocumented:\n%s", sent.Data.Text, documented.Data.Text)
	}
	if fmt.Sprint(sent.Data.ComponentNames, sent.Data.Links, sent.Data.Locale) != fmt.Sprint(documented.Data.ComponentNames, documented.Data.Links, documented.Data.Locale) {
		t.Errorf("sent %v %v %s, documented %v %v %s", sent.Data.ComponentNames, sent.Data.Links, sent.Data.Locale,
			documented.Data.ComponentNames, documented.Data.Links, documented.Data.Locale)
	}
}

// post sends body with header to url and returns the status and body of the answer.
func post(url string, header http.Header, body []byte) (int, string) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	for k, v := range header {
		if k != "Content-Length" && k != "Accept-Encoding" {
			req.Header[k] = v
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(res.Body, 1<<10))
	return res.StatusCode, string(answer)
}

// TestWebhookSnippetPython compiles the Python receiver of docs/webhooks.md
// and checks that its install line installs what it imports.
func TestWebhookSnippetPython(t *testing.T) {
	python := need(t, "python3")
	install, code := snippet(t, webhookDoc(t), "### Python", "pip install", "python")
	dir := t.TempDir()
	file := filepath.Join(dir, "server.py")
	if err := os.WriteFile(file, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(python, "-m", "py_compile", file).CombinedOutput(); err != nil {
		t.Fatalf("the Python snippet does not compile: %v\n%s", err, out)
	}
	for _, m := range regexp.MustCompile(`(?m)^(?:from|import) (\w+)`).FindAllStringSubmatch(code, -1) {
		if mod := m[1]; mod != "os" && !strings.Contains(" "+install+" ", " "+mod+" ") {
			t.Errorf("the snippet imports %s, which %q does not install", mod, install)
		}
	}
}

// TestWebhookSnippetGo type-checks the Go receiver of docs/webhooks.md in
// this module, whose go.mod holds the library the docs' go get names.
func TestWebhookSnippetGo(t *testing.T) {
	install, code := snippet(t, webhookDoc(t), "### Go", "go get", "go")
	gomod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	mod := strings.TrimPrefix(install, "go get ")
	if !regexp.MustCompile(`(?m)^\s*(require )?` + regexp.QuoteMeta(mod) + ` v`).Match(gomod) {
		t.Fatalf("the docs' %q names no module of go.mod", install)
	}
	for _, m := range regexp.MustCompile(`"(github\.com/[^"]+)"`).FindAllStringSubmatch(code, -1) {
		if !strings.HasPrefix(m[1], mod) {
			t.Errorf("the snippet imports %s, which %q does not fetch", m[1], install)
		}
	}
	// A directory beginning with "_" is in the module but outside ./...
	dir, err := os.MkdirTemp("../..", "_webhook_snippet_")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "vet", "./"+filepath.Base(dir))
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the Go snippet does not compile: %v\n%s", err, out)
	}
}
