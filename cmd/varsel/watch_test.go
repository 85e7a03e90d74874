package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/varsel/varsel/notifier"
)

// TestTOMLLetterIsTheJSONLetter: the example letter written as TOML, with
// its paragraphs as multi-line strings, is the same event as the JSON one.
func TestTOMLLetterIsTheJSONLetter(t *testing.T) {
	_, fromJSON, err := readEvent("../../examples/led/letter.json", nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, fromTOML, err := readEvent("../../examples/led/letter.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(raw) {
		t.Fatalf("the TOML letter is not published as JSON: %s", raw)
	}
	a, _ := json.Marshal(fromJSON)
	b, _ := json.Marshal(fromTOML)
	if !bytes.Equal(a, b) {
		t.Errorf("TOML and JSON letters differ:\njson: %s\ntoml: %s", a, b)
	}
	if !strings.Contains(fromTOML.Letter.Sections.WhatHappened["nb"], "\n\nLED har nå kjørt") {
		t.Errorf("paragraphs of the multi-line string are lost: %q", fromTOML.Letter.Sections.WhatHappened["nb"][:200])
	}
}

// TestTOMLMistakesSayWhere: a TOML syntax error names its line, a time
// without an offset names its key, and a bad field is reported as for JSON.
func TestTOMLMistakesSayWhere(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ name, src, want string }{
		{"syntax", "id = \"x\"\ntype = \n", "line 2"},
		{"local time", "id = \"x\"\ntype = \"letter.broadcast\"\ntime = 2019-03-06T22:30:00\n", "time: 2019-03-06T22:30:00 has no UTC offset"},
		{"bad type", "id = \"x\"\ntype = \"letter.sent\"\ntime = 2019-03-06T22:30:00Z\n", "letter.sent"},
	} {
		f := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".toml")
		if err := os.WriteFile(f, []byte(c.src), 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err := readEvent(f, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), f) {
			t.Errorf("%s: err = %v, want the file and %q", c.name, err, c.want)
		}
	}
}

func TestProgressLineRateAndTimeLeft(t *testing.T) {
	p := &notifier.Progress{Planned: true}
	p.Set(notifier.Email, notifier.CountPlanned, 4000)
	p.Set(notifier.Email, notifier.CountSent, 790)
	p.Set(notifier.Email, notifier.CountFailed, 10)
	p.Set(notifier.Email, notifier.CountRetrying, 5)
	t0 := time.Unix(0, 0)
	line := progressLine(p, []sample{{t0, 0}, {t0.Add(2 * time.Second), 800}})
	want := "800 of 4000: 790 sent, 10 failed, 0 skipped, 3200 waiting (5 for a retry) · 400/s · about 8s left"
	if line != want {
		t.Errorf("progress line\n got %q\nwant %q", line, want)
	}
	p.Planned = false
	if line := progressLine(p, nil); line != "planning (4000 so far): 790 sent, 10 failed, 0 skipped (5 for a retry)" {
		t.Errorf("while planning: %q", line)
	}
}

// fakeProgress is a progress source whose counters stand still while the
// log is ahead of them, as after a process died between the two writes.
type fakeProgress struct {
	mu       sync.Mutex
	progress notifier.Progress
	log      []*notifier.DeliveryRecord
	taken    bool
}

func (f *fakeProgress) Event(_ context.Context, id string) (*notifier.EventRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.taken {
		return nil, fmt.Errorf("event %s: %w", id, notifier.ErrNotFound)
	}
	now := time.Now()
	return &notifier.EventRecord{PlannedAt: &now}, nil
}

func (f *fakeProgress) Progress(context.Context, string) (*notifier.Progress, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := &notifier.Progress{Planned: f.progress.Planned}
	for ch, c := range f.progress.Channels {
		p.Set(ch, notifier.CountPlanned, c.Planned)
		p.Set(ch, notifier.CountSent, c.Sent)
	}
	return p, nil
}

func (f *fakeProgress) ListDeliveries(_ context.Context, _ notifier.DeliveryFilter, fn func(*notifier.DeliveryRecord) error) error {
	for _, r := range f.log {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

func TestWatchReconcilesCountsThatStandStill(t *testing.T) {
	f := &fakeProgress{taken: true}
	f.progress.Set(notifier.Email, notifier.CountPlanned, 3)
	f.progress.Set(notifier.Email, notifier.CountSent, 2)
	for i := range 3 {
		f.log = append(f.log, &notifier.DeliveryRecord{ID: "e.s" + strconv.Itoa(i) + ".email", Channel: notifier.Email, Status: notifier.StatusSent})
	}
	var out bytes.Buffer
	w := newWatcher(f, &out)
	w.every, w.print, w.stall = 5*time.Millisecond, 0, 50*time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.watch(ctx, "e"); err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatalf("the watch did not end from the log:\n%s", out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if last := lines[len(lines)-1]; last != "done: 3 sent, 0 failed, 0 skipped" {
		t.Errorf("last line %q\n%s", last, out.String())
	}
}

func TestWatchInterruptedSaysDeliveryGoesOn(t *testing.T) {
	f := &fakeProgress{}
	var out bytes.Buffer
	w := newWatcher(f, &out)
	w.every, w.stall = 5*time.Millisecond, 30*time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := w.watch(ctx, "e"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "is `varsel serve` running") || !strings.Contains(out.String(), "goes on without you") {
		t.Errorf("an event nobody takes in, then Ctrl-C:\n%s", out.String())
	}
}

// TestWatchThatLosesTheServiceSaysWhatToDo: a read that fails for a
// moment is tried again; one that goes on failing (serve gone) ends the
// watch saying so and where the count is kept (it ended with a bare
// "context deadline exceeded").
func TestWatchThatLosesTheServiceSaysWhatToDo(t *testing.T) {
	f := &failingProgress{failFor: 3}
	var out bytes.Buffer
	w := newWatcher(f, &out)
	w.every, w.stall, w.lostAfter = 5*time.Millisecond, time.Minute, 100*time.Millisecond
	f.fakeProgress.taken = true
	f.progress.Set(notifier.Email, notifier.CountPlanned, 1)
	f.progress.Set(notifier.Email, notifier.CountSent, 1)
	if err := w.watch(t.Context(), "e"); err != nil {
		t.Fatalf("three failed reads, then the count: %v", err)
	}
	f = &failingProgress{failFor: 1 << 30}
	w = newWatcher(f, &out)
	w.every, w.stall, w.lostAfter = 5*time.Millisecond, time.Minute, 100*time.Millisecond
	err := w.watch(t.Context(), "e")
	if err == nil || !strings.Contains(err.Error(), "Is `varsel serve` (or its NATS) still running?") || !strings.Contains(err.Error(), "varsel deliveries list --event e --summary") {
		t.Errorf("a watch whose reads keep failing: %v", err)
	}
	// The event reads, its progress does not: the same.
	f = &failingProgress{progressFails: true}
	f.fakeProgress.taken = true
	w = newWatcher(f, &out)
	w.every, w.stall, w.lostAfter = 5*time.Millisecond, time.Minute, 100*time.Millisecond
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	if err := w.watch(ctx, "e"); err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "cannot read its progress") {
		t.Errorf("a watch whose progress reads keep failing: %v (ctx %v)", err, ctx.Err())
	}
}

// failingProgress fails its first failFor reads of the event, and with
// progressFails every read of the progress.
type failingProgress struct {
	fakeProgress
	failFor       int
	progressFails bool
}

func (f *failingProgress) Progress(ctx context.Context, id string) (*notifier.Progress, error) {
	if f.progressFails {
		return nil, context.DeadlineExceeded
	}
	return f.fakeProgress.Progress(ctx, id)
}

func (f *failingProgress) Event(ctx context.Context, id string) (*notifier.EventRecord, error) {
	f.mu.Lock()
	fail := f.failFor > 0
	f.failFor--
	f.mu.Unlock()
	if fail {
		return nil, context.DeadlineExceeded
	}
	return f.fakeProgress.Event(ctx, id)
}

var doneLine = regexp.MustCompile(`^done: (\d+) sent, (\d+) failed, (\d+) skipped$`)

// TestLetterSendWatchToTheLastLine: the TOML letter sent with --watch
// through a running service ends with the done line, whose counts are the
// letter's audience; sending it again says so; --summary prints the counts.
func TestLetterSendWatchToTheLastLine(t *testing.T) {
	svc, _ := testService(t, nil)
	nats := svc.conn.ClientURL()
	if out, err := varsel(t, "subscribers", "import", "../../examples/subscribers.csv", "--nats", nats, "--allow-private-webhooks"); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	dry, err := varsel(t, "letter", "send", "../../examples/led/letter.toml", "--dry-run", "--nats", nats)
	if err != nil {
		t.Fatalf("dry run: %v\n%s", err, dry)
	}
	audience := 0
	for _, l := range strings.Split(dry, "\n")[1:] {
		if f := strings.Fields(l); len(f) == 3 {
			n, _ := strconv.Atoi(f[2])
			audience += n
		}
	}
	if audience == 0 {
		t.Fatalf("the dry run counts nobody:\n%s", dry)
	}
	out, err := varsel(t, "letter", "send", "../../examples/led/letter.toml", "--watch", "--nats", nats)
	if err != nil {
		t.Fatalf("letter send --watch: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	m := doneLine.FindStringSubmatch(lines[len(lines)-1])
	if m == nil {
		t.Fatalf("last line is not the done line:\n%s", out)
	}
	sent, _ := strconv.Atoi(m[1])
	failed, _ := strconv.Atoi(m[2])
	skipped, _ := strconv.Atoi(m[3])
	if sent+failed+skipped != audience || !strings.HasPrefix(lines[0], "published led-letter-2019-03-06") {
		t.Errorf("the dry run counted %d, the watch settled %d:\n%s\n%s", audience, sent+failed+skipped, dry, out)
	}

	again, err := varsel(t, "letter", "send", "../../examples/led/letter.json", "--nats", nats)
	if err != nil || !strings.Contains(again, "already published") || !strings.Contains(again, "nothing sent") {
		t.Errorf("sending the letter twice: %v\n%s", err, again)
	}
	sum, err := varsel(t, "deliveries", "list", "--event", "led-letter-2019-03-06", "--summary", "--nats", nats)
	if err != nil || !regexp.MustCompile(`(?m)^\s*total\s+`+strconv.Itoa(audience)+`\s+`+strconv.Itoa(sent)+`\s`).MatchString(sum) || !strings.Contains(sum, "done:") {
		t.Errorf("summary: %v\n%s", err, sum)
	}
	if strings.Contains(sum, ".email") {
		t.Errorf("the summary lists deliveries:\n%s", sum)
	}
}
