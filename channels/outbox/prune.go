package outbox

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultKeep is how long the outbox keeps what it wrote unless told
// otherwise (VARSEL_OUTBOX_KEEP).
const DefaultKeep = 168 * time.Hour

// PruneInterval is how often `varsel serve` prunes its outbox (and once at
// start).
const PruneInterval = 10 * time.Minute

// Pruned counts what Prune removed.
type Pruned struct {
	Emails       int // .eml files
	EventDirs    int // email/<event> directories left empty
	SMSLines     int // lines of sms.jsonl
	WebhookLines int // lines of webhook.jsonl
}

// Total is everything removed.
func (p Pruned) Total() int { return p.Emails + p.EventDirs + p.SMSLines + p.WebhookLines }

// Prune removes from the outbox at dir what was written before now-keep:
// .eml files by their modification time (then the email/<event>
// directories left empty), and the lines of sms.jsonl and webhook.jsonl by
// their "at" time. Each .jsonl file is rewritten to a temporary file and
// renamed over the old one, under the lock a Channel takes to append, so a
// running serve loses no line; a line without a readable "at" is kept.
// keep 0 keeps everything. A missing outbox is not an error.
func Prune(dir string, keep time.Duration, now time.Time) (Pruned, error) {
	var p Pruned
	if keep <= 0 {
		return p, nil
	}
	cutoff := now.Add(-keep)
	var errs []error
	emails, dirs, err := pruneEmail(filepath.Join(dir, "email"), cutoff)
	p.Emails, p.EventDirs = emails, dirs
	errs = append(errs, err)
	p.SMSLines, err = pruneLines(filepath.Join(dir, "sms.jsonl"), cutoff)
	errs = append(errs, err)
	p.WebhookLines, err = pruneLines(filepath.Join(dir, "webhook.jsonl"), cutoff)
	errs = append(errs, err)
	return p, errors.Join(errs...)
}

func pruneEmail(root string, cutoff time.Time) (files, dirs int, err error) {
	events, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	var errs []error
	for _, ev := range events {
		if !ev.IsDir() {
			continue
		}
		evDir := filepath.Join(root, ev.Name())
		entries, err := os.ReadDir(evDir)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		left, removed := 0, 0
		for _, e := range entries {
			info, err := e.Info()
			// An .eml older than the cutoff goes, and so does what a
			// crash left half written (tempSuffix), uncounted.
			partial := strings.HasSuffix(e.Name(), tempSuffix)
			if err != nil || e.IsDir() || !strings.HasSuffix(e.Name(), ".eml") && !partial || !info.ModTime().Before(cutoff) {
				left++
				continue
			}
			if err := os.Remove(filepath.Join(evDir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
				left++
				continue
			}
			if !partial {
				removed++
			}
		}
		files += removed
		if left > 0 {
			continue
		}
		// An empty directory goes when its files just went or it is old
		// itself: a new one may be about to get its first file (and the
		// writer makes it again if it was removed under it).
		if info, err := os.Stat(evDir); removed > 0 || err == nil && info.ModTime().Before(cutoff) {
			if err := os.Remove(evDir); err == nil {
				dirs++
			}
		}
	}
	return files, dirs, errors.Join(errs...)
}

// pruneLines rewrites path without the lines older than cutoff. It holds
// the file's flock (the one Channel.appendLocked takes) from the read to
// the rename.
func pruneLines(path string, cutoff time.Time) (int, error) {
	for {
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) {
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		n, retry, err := pruneLocked(f, path, cutoff)
		_ = f.Close() // releases the flock
		if !retry {
			return n, err
		}
	}
}

func pruneLocked(f *os.File, path string, cutoff time.Time) (n int, retry bool, err error) {
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		return 0, false, fmt.Errorf("lock %s: %w", path, err)
	}
	// Another prune may have replaced the file while we waited.
	held, err1 := f.Stat()
	cur, err2 := os.Stat(path)
	if err1 != nil || err2 != nil || !os.SameFile(held, cur) {
		return 0, true, nil
	}
	var kept bytes.Buffer
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			if old(line, cutoff) {
				n++
			} else {
				kept.Write(line)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, false, fmt.Errorf("read %s: %w", path, err)
		}
	}
	if n == 0 {
		return 0, false, nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return 0, false, err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if err := tmp.Chmod(held.Mode().Perm()); err == nil {
		_, err = tmp.Write(kept.Bytes())
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return 0, false, fmt.Errorf("rewrite %s: %w", path, err)
	}
	return n, false, nil
}

// old reports whether a JSON line's "at" is before cutoff.
func old(line []byte, cutoff time.Time) bool {
	var v struct {
		At time.Time `json:"at"`
	}
	if err := json.Unmarshal(line, &v); err != nil || v.At.IsZero() {
		return false
	}
	return v.At.Before(cutoff)
}
