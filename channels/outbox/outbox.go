// Package outbox is the development channel: it writes what would have been
// sent to files, so `varsel serve` works end to end on a bare machine.
// Email becomes one .eml file per delivery (a resend gets a numbered twin,
// so duplicates can be counted); SMS and webhooks become JSON lines.
package outbox

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/varsel/varsel/channels/email"
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
		r, err = c.appendLine(WebhookLine{ID: d.ID, URL: d.Subscriber.WebhookURL, Type: d.Event.Type, EventID: d.Event.ID,
			Sequence: sequence(d), Locale: d.Message.Locale, Text: d.Message.WebhookText, At: time.Now().UTC()})
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

// WebhookLine is one webhook in webhook.jsonl.
type WebhookLine struct {
	ID       string             `json:"id"`
	URL      string             `json:"url"`
	Type     notifier.EventType `json:"type"`
	EventID  string             `json:"event_id"`
	Sequence int64              `json:"sequence"`
	Locale   string             `json:"locale"`
	Text     string             `json:"text"`
	At       time.Time          `json:"at"`
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
	if _, err := c.file.Write(b); err != nil {
		return notifier.Receipt{}, fmt.Errorf("append to %s: %w", c.LinesFile(), err)
	}
	return notifier.Receipt{ProviderID: "outbox"}, nil
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
	for n := 1; ; n++ {
		name := d.Subscriber.ID + ".eml"
		if n > 1 {
			name = d.Subscriber.ID + "~" + strconv.Itoa(n) + ".eml"
		}
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return notifier.Receipt{}, fmt.Errorf("create %s: %w", name, err)
		}
		// go-mail writes in many small pieces: buffer them into a few
		// system calls.
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
		if werr != nil {
			return notifier.Receipt{}, fmt.Errorf("write %s: %w", name, werr)
		}
		return notifier.Receipt{ProviderID: "<" + msgID + ">"}, nil
	}
}
