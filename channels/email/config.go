package email

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// TLS policies for Config.TLS.
const (
	TLSStartTLS = "starttls" // plain connect, then STARTTLS; refuse servers without it
	TLSImplicit = "tls"      // TLS from the first byte (SMTPS, usually port 465)
	TLSNone     = "none"     // no encryption; only sensible on loopback or a trusted network
)

// Pipelining policies: how much of a mail transaction goes out before
// the relay answers.
const (
	// PipeliningAuto (default) uses what the relay offers: with
	// PIPELINING (RFC 2920) MAIL, RCPT and DATA in one write, and with
	// CHUNKING (RFC 3030) too, the message itself as BDAT's chunk in that
	// write: one round trip an email.
	PipeliningAuto = "auto"
	// PipeliningCommands pipelines the commands, never BDAT: two round
	// trips, for a relay whose CHUNKING misbehaves.
	PipeliningCommands = "commands"
	// PipeliningOff sends one command at a time (go-mail's Send): four
	// round trips.
	PipeliningOff = "off"
)

// Defaults for zero Config fields.
const (
	DefaultFrom        = "Status <status@localhost>"
	DefaultPoolSize    = 8
	DefaultDialTimeout = 10 * time.Second
	DefaultSendTimeout = 30 * time.Second
)

// Config says how to reach the SMTP server. It is plain data: the zero value
// of a field means its default. Build it with ParseURL from VARSEL_SMTP_URL
// and set From from VARSEL_MAIL_FROM.
type Config struct {
	Host string
	// Port defaults by TLS policy: 587 for starttls, 465 for tls, 25 for none.
	Port     int
	Username string
	// Password is never printed by String, GoString or LogValue.
	Password string
	// TLS is "starttls" (default), "tls" or "none".
	TLS string
	// Auth is the SMTP AUTH mechanism used when Username is set: "plain"
	// (default), "login" or "cram-md5". PLAIN and LOGIN are refused by the
	// client on an unencrypted connection to anything but loopback.
	Auth string
	// From is the From header, e.g. "Driftsstatus <status@example.com>";
	// default "Status <status@localhost>". Its domain also names Message-IDs.
	From string
	// PoolSize is the most SMTP connections kept open at once; default 8.
	// Each carries one message at a time, one to four round trips each
	// (Pipelining), so the pool, not the CPU, bounds the rate to a distant
	// relay (docs/operations.md).
	PoolSize int
	// Pipelining is "auto" (default), "commands" or "off"; see
	// PipeliningAuto.
	Pipelining string
	// DialTimeout bounds connecting (TCP and implicit TLS); default 10s.
	// The greeting, EHLO, STARTTLS and AUTH after it are within SendTimeout.
	DialTimeout time.Duration
	// SendTimeout bounds one message, including a re-dial, and each SMTP
	// command on the connection; default 30s.
	SendTimeout time.Duration
	// DKIM signs every message when set (relaxed/relaxed, RSA-SHA256 or
	// Ed25519-SHA256 after the key).
	DKIM *DKIMConfig
	// DKIMRSA, when set along with DKIM, adds a second signature with an
	// RSA key, for verifiers that do not know Ed25519 (RFC 8463 section 4:
	// sign with both). Its Domain defaults to DKIM's; its Selector must
	// differ, since each key needs its own DNS record.
	DKIMRSA *DKIMConfig
}

// DKIMConfig is the DKIM signing key and where its public half is published
// (<Selector>._domainkey.<Domain>).
type DKIMConfig struct {
	Domain   string
	Selector string
	// KeyFile is a PEM file holding an unencrypted RSA (PKCS#1 or PKCS#8,
	// at least 1024 bits, 2048 recommended) or Ed25519 (PKCS#8) private
	// key. Key, when set, is used instead.
	KeyFile string
	// Key is the PEM-encoded private key itself; never printed.
	Key []byte
}

// ErrBadURL means VARSEL_SMTP_URL could not be understood. Its text never
// includes the URL, which may hold a password.
var ErrBadURL = errors.New("invalid SMTP URL")

// ParseURL reads
// smtp://user:pass@host:587?tls=starttls|tls|none&pool=8&auth=plain&pipelining=auto|commands|off.
// The scheme "smtps" means tls=tls. Missing parts keep their defaults; the
// result still needs Validate. Errors never contain the password.
func ParseURL(raw string) (Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the whole URL, password included
		}
		return Config{}, fmt.Errorf("%w: %v", ErrBadURL, redact(err.Error(), raw))
	}
	var cfg Config
	switch u.Scheme {
	case "smtp":
	case "smtps":
		cfg.TLS = TLSImplicit
	default:
		return Config{}, fmt.Errorf("%w: scheme must be smtp or smtps, not %q", ErrBadURL, u.Scheme)
	}
	cfg.Host = u.Hostname()
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil {
			return Config{}, fmt.Errorf("%w: port %q is not a number", ErrBadURL, p)
		}
		cfg.Port = n
	}
	if u.User != nil {
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	q := u.Query()
	if v := q.Get("tls"); v != "" {
		cfg.TLS = strings.ToLower(v)
	}
	if v := q.Get("auth"); v != "" {
		cfg.Auth = strings.ToLower(v)
	}
	if v := q.Get("pipelining"); v != "" {
		cfg.Pipelining = strings.ToLower(v)
	}
	if v := q.Get("pool"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return Config{}, fmt.Errorf("%w: pool %q is not a number", ErrBadURL, v)
		}
		cfg.PoolSize = n
	}
	return cfg, nil
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.TLS == "" {
		c.TLS = TLSStartTLS
	}
	if c.Port == 0 {
		switch c.TLS {
		case TLSImplicit:
			c.Port = 465
		case TLSNone:
			c.Port = 25
		default:
			c.Port = 587
		}
	}
	if c.Auth == "" {
		c.Auth = "plain"
	}
	if c.Pipelining == "" {
		c.Pipelining = PipeliningAuto
	}
	if c.From == "" {
		c.From = DefaultFrom
	}
	if c.PoolSize == 0 {
		c.PoolSize = DefaultPoolSize
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.SendTimeout == 0 {
		c.SendTimeout = DefaultSendTimeout
	}
	if c.DKIMRSA != nil && c.DKIMRSA.Domain == "" && c.DKIM != nil {
		d := *c.DKIMRSA
		d.Domain = c.DKIM.Domain
		c.DKIMRSA = &d
	}
	return c
}

// Validate reports every problem with c at once, or nil. Zero fields are
// valid: they take their defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Host == "" {
		add("host is required")
	}
	if c.Port < 1 || c.Port > 65535 {
		add("port %d is out of range 1–65535", c.Port)
	}
	switch c.TLS {
	case TLSStartTLS, TLSImplicit, TLSNone:
	default:
		add("tls %q must be starttls, tls or none", c.TLS)
	}
	if _, ok := authTypes[c.Auth]; !ok {
		add("auth %q must be plain, login or cram-md5", c.Auth)
	}
	if c.Password != "" && c.Username == "" {
		add("password given without a user name")
	}
	if c.Username != "" && c.TLS == TLSNone && c.Auth != "cram-md5" && !isLoopback(c.Host) {
		add("tls=none would send the password in clear text to %s; use tls=starttls or tls=tls", c.Host)
	}
	if a, err := mail.ParseAddress(c.From); err != nil {
		add("from %q is not an address such as \"Status <status@example.com>\": %v", c.From, err)
	} else if !strings.Contains(a.Address, "@") {
		add("from %q has no domain", c.From)
	}
	if c.PoolSize < 1 {
		add("pool size %d must be at least 1", c.PoolSize)
	}
	switch c.Pipelining {
	case PipeliningAuto, PipeliningCommands, PipeliningOff:
	default:
		add("pipelining %q must be auto, commands or off", c.Pipelining)
	}
	if c.DialTimeout < 0 {
		add("dial timeout %v must not be negative", c.DialTimeout)
	}
	if c.SendTimeout < 0 {
		add("send timeout %v must not be negative", c.SendTimeout)
	}
	if c.DKIM != nil {
		if c.DKIM.Domain == "" {
			add("dkim domain is required")
		}
		if c.DKIM.Selector == "" {
			add("dkim selector is required")
		}
		if _, err := c.DKIM.signer(); err != nil {
			errs = append(errs, err)
		}
	}
	if d := c.DKIMRSA; d != nil {
		switch {
		case c.DKIM == nil:
			add("a second (RSA) dkim signature needs the first one configured")
		case d.Selector == "":
			add("dkim rsa selector is required")
		case d.Selector == c.DKIM.Selector && d.Domain == c.DKIM.Domain:
			add("dkim rsa selector %q is the same as the first key's: each key needs its own DNS record", d.Selector)
		}
		if k, err := d.signer(); err != nil {
			errs = append(errs, fmt.Errorf("second (rsa) signature: %w", err))
		} else if alg, _ := keyAlgorithm(k); alg != "rsa" {
			add("second dkim key is %s, want RSA (the first key may be Ed25519)", alg)
		}
	}
	return errors.Join(errs...)
}

var authTypes = map[string]gomail.SMTPAuthType{
	"plain":    gomail.SMTPAuthPlain,
	"login":    gomail.SMTPAuthLogin,
	"cram-md5": gomail.SMTPAuthCramMD5,
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// keyPEM returns the configured private key.
func (d *DKIMConfig) keyPEM() ([]byte, error) {
	if len(d.Key) > 0 {
		return d.Key, nil
	}
	if d.KeyFile == "" {
		return nil, errors.New("dkim key or key file is required")
	}
	b, err := os.ReadFile(d.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("read dkim key: %w", err)
	}
	return b, nil
}

// String describes c without its password.
func (c Config) String() string {
	u := url.URL{Scheme: "smtp", Host: net.JoinHostPort(c.Host, strconv.Itoa(c.Port))}
	if c.Username != "" {
		if c.Password != "" {
			u.User = url.UserPassword(c.Username, "xxxxx")
		} else {
			u.User = url.User(c.Username)
		}
	}
	q := url.Values{}
	if c.TLS != "" {
		q.Set("tls", c.TLS)
	}
	if c.PoolSize != 0 {
		q.Set("pool", strconv.Itoa(c.PoolSize))
	}
	if c.Pipelining != "" && c.Pipelining != PipeliningAuto {
		q.Set("pipelining", c.Pipelining)
	}
	u.RawQuery = q.Encode()
	s := u.String()
	if c.From != "" {
		s += " from=" + strconv.Quote(c.From)
	}
	if c.DKIM != nil {
		s += " dkim=" + c.DKIM.Selector + "._domainkey." + c.DKIM.Domain
	}
	if c.DKIMRSA != nil {
		s += " dkim_rsa=" + c.DKIMRSA.Selector + "._domainkey." + c.DKIMRSA.Domain
	}
	return s
}

// GoString keeps %#v from printing the password.
func (c Config) GoString() string { return "email.Config{" + c.String() + "}" }

// LogValue logs c without its password.
func (c Config) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("host", c.Host), slog.Int("port", c.Port), slog.String("tls", c.TLS),
		slog.String("user", c.Username), slog.Bool("password_set", c.Password != ""),
		slog.String("from", c.From), slog.Int("pool", c.PoolSize),
	}
	if c.DKIM != nil {
		attrs = append(attrs, slog.String("dkim", c.DKIM.Selector+"._domainkey."+c.DKIM.Domain))
	}
	if c.DKIMRSA != nil {
		attrs = append(attrs, slog.String("dkim_rsa", c.DKIMRSA.Selector+"._domainkey."+c.DKIMRSA.Domain))
	}
	return slog.GroupValue(attrs...)
}

// String describes d without its key.
func (d DKIMConfig) String() string {
	return fmt.Sprintf("dkim %s._domainkey.%s key_file=%q key_set=%t", d.Selector, d.Domain, d.KeyFile, len(d.Key) > 0)
}

// GoString keeps %#v from printing the key.
func (d DKIMConfig) GoString() string { return "email.DKIMConfig{" + d.String() + "}" }

// redact hides the password of a raw SMTP URL inside s.
func redact(s, raw string) string {
	if i := strings.Index(raw, "://"); i >= 0 {
		rest := raw[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if _, pass, ok := strings.Cut(rest[:at], ":"); ok && pass != "" {
				s = strings.ReplaceAll(s, pass, "xxxxx")
			}
		}
	}
	return s
}
