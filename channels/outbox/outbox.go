// Package outbox is the development channel: it writes what would have been
// sent to files, so `varsel serve` works end to end on a bare machine.
// Email becomes one .eml file per delivery (a resend gets a numbered twin,
// so duplicates can be counted); SMS and webhooks become JSON lines, a
// webhook with the exact body and signed headers it would have carried.
// Prune removes what is older than a retention (VARSEL_OUTBOX_KEEP).
package outbox

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/mail"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/varsel/varsel/channels/email"
	"github.com/varsel/varsel/channels/webhook"
	"github.com/varsel/varsel/notifier"
)

// Channel writes one channel's messages to the outbox.
type Channel struct {
	name   notifier.ChannelName
	cfg    Config
	logger *slog.Logger

	mu   sync.Mutex // serializes appends to the JSON lines file
	file *os.File
	dirs sync.Map // event directories already created
	from *mail.Address
}

var _ notifier.Channel = (*Channel)(nil)

// New returns the outbox for one channel, creating its directory.
func New(cfg Config, name notifier.ChannelName, logger *slog.Logger) (*Channel, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("outbox From %q: %w", cfg.From, err)
	}
	c := &Channel{name: name, cfg: cfg, from: from, logger: logger.With("channel", name, "sink", "outbox")}
	switch name {
	case notifier.Email:
		if err := os.MkdirAll(filepath.Join(cfg.Dir, "email"), 0o750); err != nil {
			return nil, fmt.Errorf("create outbox: %w", err)
		}
	case notifier.SMS, notifier.Webhook:
		if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
			return nil, fmt.Errorf("create outbox: %w", err)
		}
		f, err := os.OpenFile(c.LinesFile(), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
		if err != nil {
			return nil, fmt.Errorf("open outbox: %w", err)
		}
		c.file = f
	default:
		return nil, fmt.Errorf("outbox: unknown channel %q", name)
	}
	return c, nil
}

// Name implements notifier.Channel.
func (c *Channel) Name() notifier.ChannelName { return c.name }

// LinesFile is the JSON lines file of the SMS or webhook outbox.
func (c *Channel) LinesFile() string { return filepath.Join(c.cfg.Dir, string(c.name)+".jsonl") }

// Close closes the JSON lines file.
func (c *Channel) Close() error {
	if c.file != nil {
		return c.file.Close()
	}
	return nil
}

// Notify implements notifier.Channel. Disk errors are worth a retry.
func (c *Channel) Notify(ctx context.Context, d *notifier.Delivery) (notifier.Receipt, bool, error) {
	if err := ctx.Err(); err != nil {
		return notifier.Receipt{}, true, &notifier.SendError{Reason: notifier.ReasonTimeout, Err: err}
	}
	var (
		r   notifier.Receipt
		err error
	)
	switch c.name {
	case notifier.Email:
		r, err = c.writeEmail(d)
	case notifier.SMS:
		r, err = c.appendLine(SMSLine{ID: d.ID, To: d.Subscriber.Phone, Body: d.Message.SMS, Segments: d.Message.Segments,
			Locale: d.Message.Locale, At: time.Now().UTC()})
		r.Segments = d.Message.Segments
	case notifier.Webhook:
		r, err = c.appendWebhook(d)
	}
	var se *notifier.SendError
	if errors.As(err, &se) {
		return notifier.Receipt{}, false, err
	}
	if err != nil {
		return notifier.Receipt{}, true, &notifier.SendError{Reason: notifier.ReasonNetwork, Err: err}
	}
	c.logger.Debug("written to outbox", "delivery", d.ID, "to", notifier.MaskContact(c.name, d.Subscriber.Contact(c.name)))
	return r, false, nil
}

// writers are reused buffers for .eml files, so a fan-out does not
// allocate one per message.
var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 16<<10) }}

// SMSLine is one SMS in sms.jsonl.
type SMSLine struct {
	ID       string    `json:"id"`
	To       string    `json:"to"`
	Body     string    `json:"body"`
	Segments int       `json:"segments"`
	Locale   string    `json:"locale"`
	At       time.Time `json:"at"`
}

// WebhookLine is one webhook in webhook.jsonl: the request the webhook
// channel would have posted, signed with the subscriber's secret, so a
// receiver's verification can be tried on it (the body, as a string, is
// byte for byte what would have been sent: `jq -r .body`).
type WebhookLine struct {
	ID       string             `json:"id"`
	URL      string             `json:"url"`
	Type     notifier.EventType `json:"type"`
	EventID  string             `json:"event_id"`
	Sequence int64              `json:"sequence"`
	Locale   string             `json:"locale"`
	Text     string             `json:"text"`
	At       time.Time          `json:"at"`
	// Method is always POST.
	Method string `json:"method"`
	// Headers are every header Varsel sets: Content-Type, User-Agent,
	// webhook-id, webhook-timestamp and webhook-signature.
	Headers map[string]string `json:"headers"`
	// Body is the exact JSON body (docs/webhooks.md).
	Body string `json:"body"`
}

// appendWebhook signs d as the webhook channel would (its own code) and
// appends the request. An unusable secret fails as it would for real.
func (c *Channel) appendWebhook(d *notifier.Delivery) (notifier.Receipt, error) {
	now := time.Now()
	signed, err := webhook.Sign(d, now, c.cfg.UserAgent, c.logger)
	if err != nil {
		return notifier.Receipt{}, &notifier.SendError{Reason: notifier.ReasonRejected, Err: err}
	}
	headers := make(map[string]string, len(signed.Header))
	for k := range signed.Header {
		name := k
		if strings.HasPrefix(k, "Webhook-") {
			name = strings.ToLower(k) // as Standard Webhooks spells them
		}
		headers[name] = signed.Header.Get(k)
	}
	r, err := c.appendLine(WebhookLine{ID: d.ID, URL: d.Subscriber.WebhookURL, Type: d.Event.Type, EventID: d.Event.ID,
		Sequence: sequence(d), Locale: d.Message.Locale, Text: d.Message.WebhookText, At: now.UTC(),
		Method: http.MethodPost, Headers: headers, Body: string(signed.Body)})
	if err == nil {
		r.ProviderID = signed.ID
	}
	return r, err
}

func sequence(d *notifier.Delivery) int64 {
	if d.Incident != nil {
		if u := d.Incident.UpdateFor(d.Event.ID); u != nil {
			return u.Sequence
		}
	}
	return 0
}

func (c *Channel) appendLine(v any) (notifier.Receipt, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return notifier.Receipt{}, err
	}
	b = append(b, '\n')
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.appendLocked(b); err != nil {
		return notifier.Receipt{}, fmt.Errorf("append to %s: %w", c.LinesFile(), err)
	}
	return notifier.Receipt{ProviderID: "outbox"}, nil
}

// appendLocked appends b under the file's flock, reopening the file first
// when Prune (in this process or `varsel outbox prune` in another) has
// replaced it, so no line goes to a file no one will read.
func (c *Channel) appendLocked(b []byte) error {
	for {
		fd := int(c.file.Fd())
		if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
			return err
		}
		cur, err1 := c.file.Stat()
		now, err2 := os.Stat(c.LinesFile())
		if err1 == nil && err2 == nil && os.SameFile(cur, now) {
			_, err := c.file.Write(b)
			_ = unix.Flock(fd, unix.LOCK_UN)
			return err
		}
		_ = unix.Flock(fd, unix.LOCK_UN)
		f, err := os.OpenFile(c.LinesFile(), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
		if err != nil {
			return err
		}
		_ = c.file.Close()
		c.file = f
	}
}

// writeEmail writes the message, composed exactly as the email channel
// sends it, as an .eml file. The first send of a
// delivery is <subscriber>.eml; a second send (which the pipeline should
// never make) is <subscriber>~2.eml, so it shows rather than overwrites.
func (c *Channel) writeEmail(d *notifier.Delivery) (notifier.Receipt, error) {
	m, msgID, err := email.Compose(d, c.from)
	if err != nil {
		return notifier.Receipt{}, err
	}
	dir := filepath.Join(c.cfg.Dir, "email", d.Event.ID)
	if _, ok := c.dirs.Load(dir); !ok {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return notifier.Receipt{}, fmt.Errorf("create %s: %w", dir, err)
		}
		c.dirs.Store(dir, true)
	}
	// The message is written to a temporary file first and linked under
	// its name when whole, so a reader of the outbox never finds half of
	// one. The name is the first of id.eml, id~2.eml, … not taken.
	tmp, err := c.writeTemp(dir, d.Subscriber.ID, m)
	if err != nil {
		return notifier.Receipt{}, err
	}
	defer os.Remove(tmp)
	for n := 1; ; n++ {
		name := d.Subscriber.ID + ".eml"
		if n > 1 {
			name = d.Subscriber.ID + "~" + strconv.Itoa(n) + ".eml"
		}
		err := os.Link(tmp, filepath.Join(dir, name))
		if err != nil && !errors.Is(err, os.ErrExist) {
			// A file system without hard links: take the name, then move
			// the whole message over it (a reader may see it empty for a
			// moment, never half written).
			err = claimAndRename(tmp, filepath.Join(dir, name))
		}
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return notifier.Receipt{}, fmt.Errorf("create %s: %w", name, err)
		}
		return notifier.Receipt{ProviderID: "<" + msgID + ">"}, nil
	}
}

// writeTemp writes m to a new hidden file in dir (made again if prune
// removed it) and returns its path. Its name ends in tempSuffix.
func (c *Channel) writeTemp(dir, id string, m io.WriterTo) (string, error) {
	f, err := os.CreateTemp(dir, "."+id+".*"+tempSuffix)
	if errors.Is(err, os.ErrNotExist) {
		// Prune removed the event's directory since: make it again.
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return "", fmt.Errorf("create %s: %w", dir, err)
		}
		f, err = os.CreateTemp(dir, "."+id+".*"+tempSuffix)
	}
	if err != nil {
		return "", fmt.Errorf("create a file in %s: %w", dir, err)
	}
	// go-mail writes in many small pieces: buffer them into a few system
	// calls.
	buf := writers.Get().(*bufio.Writer)
	buf.Reset(f)
	_, werr := m.WriteTo(buf)
	if werr == nil {
		werr = buf.Flush()
	}
	buf.Reset(nil)
	writers.Put(buf)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(f.Name(), 0o640)
	}
	if werr != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("write %s: %w", f.Name(), werr)
	}
	return f.Name(), nil
}

// claimAndRename creates path, failing with os.ErrExist if it is there,
// and renames tmp over it.
func claimAndRename(tmp, path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// tempSuffix ends the name of a message being written; prune removes old
// ones a crash left behind.
const tempSuffix = ".part"
