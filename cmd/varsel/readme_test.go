package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// readmeSection returns the text of the README section under heading,
// up to the next heading of the same level.
func readmeSection(t *testing.T, readme, heading string) string {
	t.Helper()
	i := strings.Index(readme, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("README has no %q section", heading)
	}
	rest := readme[i+len(heading)+2:]
	if j := strings.Index(rest, "\n## "); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

// tourCommand is one command line of the README's tour: its arguments
// after `go run ./cmd/varsel`, its standard input, and the comment above it.
type tourCommand struct {
	line, comment, stdin string
	args                 []string
}

// tourCommands parses the first ```sh block of section: every
// `go run ./cmd/varsel ARGS` line, alone or fed by `echo '…' |`.
func tourCommands(t *testing.T, section string) []tourCommand {
	t.Helper()
	m := regexp.MustCompile("(?s)```sh\n(.*?)```").FindStringSubmatch(section)
	if m == nil {
		t.Fatal("the tour has no sh block")
	}
	var cmds []tourCommand
	var comment []string
	for line := range strings.SplitSeq(m[1], "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
			continue
		case strings.HasPrefix(line, "#"):
			comment = append(comment, strings.TrimSpace(strings.TrimPrefix(line, "#")))
			continue
		}
		c := tourCommand{line: line, comment: strings.Join(comment, " ")}
		comment = nil
		cmdline := line
		if before, after, ok := strings.Cut(line, " | "); ok {
			words := shellWords(t, before)
			if len(words) != 2 || words[0] != "echo" {
				t.Fatalf("tour line %q: only `echo '…' |` is understood before a pipe", line)
			}
			c.stdin, cmdline = words[1]+"\n", after
		}
		words := shellWords(t, cmdline)
		if len(words) < 3 || words[0] != "go" || words[1] != "run" || words[2] != "./cmd/varsel" {
			t.Fatalf("tour line %q is not `go run ./cmd/varsel …`", line)
		}
		for _, w := range words[3:] {
			// The README runs from the repository's root, the test in cmd/varsel.
			if strings.HasPrefix(w, "examples/") {
				w = "../../" + w
			}
			c.args = append(c.args, w)
		}
		cmds = append(cmds, c)
	}
	return cmds
}

// shellWords splits a command line as sh would for plain words and quotes.
func shellWords(t *testing.T, s string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	inWord, quote := false, rune(0)
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		t.Fatalf("unbalanced quote in %q", s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// runTour runs one command as the shell would show it: what it prints
// (main's "varsel: " line included) and its exit status.
func runTour(t *testing.T, args []string, stdin string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(stdin), &out, &out)
	switch {
	case err == nil:
		return out.String(), 0
	case errors.Is(err, errUsage):
		return out.String() + err.Error() + "\n", 2
	}
	return out.String() + "varsel: " + err.Error() + "\n", 1
}

// emlText is the decoded text of every text part of an email.
func emlText(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	msg, err := mail.ReadMessage(f)
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	var walk func(h map[string][]string, body io.Reader)
	walk = func(h map[string][]string, body io.Reader) {
		header := http.Header(h)
		mt, params, _ := mime.ParseMediaType(header.Get("Content-Type"))
		if strings.HasPrefix(mt, "multipart/") {
			mr := multipart.NewReader(body, params["boundary"])
			for {
				p, err := mr.NextRawPart()
				if err != nil {
					return
				}
				walk(p.Header, p)
			}
		}
		switch strings.ToLower(header.Get("Content-Transfer-Encoding")) {
		case "quoted-printable":
			body = quotedprintable.NewReader(body)
		case "base64":
			body = base64.NewDecoder(base64.StdEncoding, body)
		}
		b, _ := io.ReadAll(body)
		text.Write(b)
		text.WriteString("\n")
	}
	walk(msg.Header, msg.Body)
	// Wrapped lines and no-break spaces are still the sentence the README quotes.
	return strings.Join(strings.Fields(strings.ReplaceAll(text.String(), "\u00a0", " ")), " ")
}

// TestReadmeTour runs every command of the README's "A two-minute tour",
// in order, on a fresh store, and holds each to what the README says of it:
// the comment above the command, and the files and pages it points at after.
func TestReadmeTour(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	tour := readmeSection(t, readme, "## A two-minute tour")
	cmds := tourCommands(t, tour)
	if len(cmds) != 4 {
		t.Fatalf("the tour has %d commands; this test knows 4 (import, publish, deliveries list, an invalid event): teach it the new ones", len(cmds))
	}
	svc, dir := testService(t, nil)
	nats := []string{"--nats", svc.conn.ClientURL()}
	base := "http://" + svc.listener.Addr().String()

	var eventID string
	for _, c := range cmds {
		out, status := runTour(t, append(slices.Clone(c.args), nats...), c.stdin)
		t.Logf("$ %s\n%s", c.line, out)
		switch {
		case c.args[0] == "subscribers" && c.args[1] == "import":
			rows := csvRows(t, strings.TrimPrefix(c.args[2], "../../"))
			if want := fmt.Sprintf("imported %d subscribers", len(rows)); status != 0 || !strings.Contains(out, want) {
				t.Errorf("%s: exit %d, want 0 and %q", c.line, status, want)
			}
			// "without it they are refused with the reason"
			if strings.Contains(c.comment, "without it they are refused with the reason") {
				hooks := 0
				for _, r := range rows {
					if r["webhook_url"] != "" {
						hooks++
					}
				}
				args := slices.DeleteFunc(slices.Clone(c.args), func(a string) bool { return a == "--allow-private-webhooks" })
				out, _ := runTour(t, append(args, nats...), "")
				if !strings.Contains(out, fmt.Sprintf("%d rows refused", hooks)) || !strings.Contains(out, "127.0.0.1") {
					t.Errorf("without --allow-private-webhooks the %d webhook rows are not refused with the reason:\n%s", hooks, out)
				}
			}
		case c.args[0] == "publish" && c.stdin == "":
			_, ev, err := readEvent(c.args[1], nil)
			if err != nil {
				t.Fatal(err)
			}
			eventID = ev.ID
			if status != 0 || !strings.Contains(out, "published "+ev.ID) {
				t.Errorf("%s: exit %d, want 0 and \"published %s\"", c.line, status, ev.ID)
			}
			if m := regexp.MustCompile(`next update promised at (\d\d:\d\d)`).FindStringSubmatch(c.comment); m != nil {
				if ev.Incident.NextUpdateAt == nil || ev.Incident.NextUpdateAt.Format("15:04") != m[1] {
					t.Errorf("the README promises the next update at %s; the event says %v", m[1], ev.Incident.NextUpdateAt)
				}
			}
		case c.args[0] == "deliveries":
			if status != 0 || c.args[2] != "--event" || c.args[3] != eventID {
				t.Errorf("%s: exit %d, or not the event just published (%s)", c.line, status, eventID)
			}
			// "What happened to each message": once the pipeline is done,
			// every message in the outbox has its line, as sent.
			waitFor(t, "the event's messages to be settled", func() bool {
				out, status = runTour(t, append(slices.Clone(c.args), nats...), "")
				return status == 0 && !strings.Contains(out, "queued") && !strings.Contains(out, "planned") && strings.Contains(out, " deliveries\n") &&
					!strings.HasPrefix(out[strings.LastIndex(strings.TrimSuffix(out, "\n"), "\n")+1:], "0 deliveries")
			})
			emails, _ := filepath.Glob(filepath.Join(dir, "outbox", "email", eventID, "*.eml"))
			if len(emails) == 0 {
				t.Fatalf("no email of %s in the outbox", eventID)
			}
			for _, e := range emails {
				id := eventID + "." + strings.TrimSuffix(filepath.Base(e), ".eml") + ".email"
				if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(id) + `\s+sent\s`).MatchString(out) {
					t.Errorf("deliveries list has no sent line for %s:\n%s", id, out)
				}
			}
		case c.args[0] == "publish" && c.stdin != "":
			// "An invalid event is refused with the field at fault (exit status 1)"
			if m := regexp.MustCompile(`exit status (\d)`).FindStringSubmatch(c.comment); m == nil || fmt.Sprint(status) != m[1] {
				t.Errorf("%s: exit status %d; the README says %q", c.line, status, c.comment)
			}
			if !strings.Contains(out, "incident: required") {
				t.Errorf("%s: the refusal does not name the missing field:\n%s", c.line, out)
			}
		default:
			t.Errorf("tour command %q: this test does not know what to expect of it", c.line)
		}
	}

	// "Then look at:"
	look := tour[strings.Index(tour, "Then look at:"):]
	emailDir := filepath.Join(dir, "outbox", "email", eventID)
	if !strings.Contains(look, "data/outbox/email/"+eventID+"/*.eml") {
		t.Errorf("the README points at the emails of another event than the tour's %s", eventID)
	}
	// Kari reads Norwegian ("…"); James in New York reads English in his own zone ("…").
	readers := regexp.MustCompile(`(\p{Lu}\w+)(?: in ([\p{Lu}][\w ]+?))? reads \w+[^("]*\("([^"]+)"\)`).FindAllStringSubmatch(strings.Join(strings.Fields(look), " "), -1)
	if len(readers) < 2 {
		t.Fatalf("found %d readers quoted after the tour, want Kari and James", len(readers))
	}
	subs := csvRows(t, "examples/subscribers.csv")
	for _, r := range readers {
		name, city, quote := r[1], r[2], r[3]
		i := slices.IndexFunc(subs, func(s map[string]string) bool { return strings.HasPrefix(s["name"], name+" ") })
		if i < 0 {
			t.Errorf("the README quotes %s, who is not in examples/subscribers.csv", name)
			continue
		}
		sub := subs[i]
		if city != "" && !strings.HasSuffix(sub["timezone"], "/"+strings.ReplaceAll(city, " ", "_")) {
			t.Errorf("the README puts %s in %s; examples/subscribers.csv in %s", name, city, sub["timezone"])
		}
		if text := emlText(t, filepath.Join(emailDir, sub["id"]+".eml")); !strings.Contains(text, quote) {
			t.Errorf("%s's email does not say %q:\n%s", name, quote, text)
		}
	}
	for _, f := range []string{"sms.jsonl", "webhook.jsonl"} {
		if !strings.Contains(look, "data/outbox/"+f) {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(dir, "outbox", f)); err != nil || !bytes.Contains(b, []byte(eventID)) {
			t.Errorf("data/outbox/%s has no line of %s (%v)", f, eventID, err)
		}
	}
	// The status page in Norwegian, the incident's timeline, the feed.
	for path, want := range map[string]string{
		"/?lang=nb":                         "Problemer med innlogging i StyreWeb",
		"/incidents/styreweb-login-2019-09": "Login problems in StyreWeb",
		"/feed.atom":                        "styreweb-login-2019-09",
	} {
		if !strings.Contains(look, path) {
			t.Errorf("the README no longer points at %s: update this test", path)
		}
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !bytes.Contains(page, []byte(want)) {
			t.Errorf("GET %s: %s, want 200 with %q", path, res.Status, want)
		}
	}
}

// csvRows reads a CSV file of the repository (a path from its root) as
// maps from column to value.
func csvRows(t *testing.T, path string) []map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", path))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil || len(recs) < 2 {
		t.Fatalf("%s: %v", path, err)
	}
	var rows []map[string]string
	for _, rec := range recs[1:] {
		row := map[string]string{}
		for i, col := range recs[0] {
			row[col] = rec[i]
		}
		rows = append(rows, row)
	}
	return rows
}

// TestReadmeQuickStart holds the README's quick start and configuration
// table to the code: the Go version of go.mod, serve's defaults, and every
// variable a flag of serve.
func TestReadmeQuickStart(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	gomod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(gomod)
	if goLine == nil {
		t.Fatal("go.mod has no go line")
	}
	if want := "With Go " + string(goLine[1]) + " or newer"; !strings.Contains(readme, want) {
		t.Errorf("README does not say %q (go.mod: go %s)", want, goLine[1])
	}
	var cfg Config
	defaults := map[string]string{}
	for _, s := range cfg.settings() {
		defaults[s.env] = s.def
	}
	quick := readmeSection(t, readme, "## Quick start")
	for env, said := range map[string]string{"VARSEL_DATA_DIR": "storing in `./data`", "VARSEL_NATS_LISTEN": "listening on `127.0.0.1:4222`", "VARSEL_HTTP_ADDR": "HTTP on `:8080`"} {
		if !strings.Contains(quick, said) {
			t.Errorf("the quick start no longer says %q: update this test", said)
		} else if !strings.Contains(said, "`"+defaults[env]+"`") {
			t.Errorf("the quick start says %q; %s defaults to %q", said, env, defaults[env])
		}
	}
	conf := readmeSection(t, readme, "## Configuration")
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| (`VARSEL_[^|]*)\\|").FindAllStringSubmatch(conf, -1) {
		for _, v := range regexp.MustCompile("`(VARSEL_[A-Z_]+)`").FindAllStringSubmatch(m[1], -1) {
			documented[v[1]] = true
		}
	}
	for env := range documented {
		if _, ok := defaults[env]; !ok {
			t.Errorf("README's configuration table has %s, which is no setting (and no flag) of serve", env)
		}
	}
	for env := range defaults {
		if !documented[env] {
			t.Errorf("%s is a setting of serve missing from README's configuration table", env)
		}
	}
}
