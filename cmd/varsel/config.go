package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/mail"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/text/language"

	"github.com/varsel/varsel/notifier"
)

// Config is every setting of `varsel serve`: each from an environment
// variable, each also a flag. Defaults run a working service on a bare
// machine (embedded NATS, outbox for email and SMS).
type Config struct {
	NATSURL             string
	NATSListen          string
	NATSReplicas        int
	DataDir             string
	HTTPAddr            string
	PublicURL           string
	AdminToken          string
	Secret              string
	SMTPURL             string
	MailFrom            string
	DKIMDomain          string
	DKIMSelector        string
	DKIMKeyFile         string
	DKIMRSASelector     string
	DKIMRSAKeyFile      string
	TwilioAccountSID    string
	TwilioAuthToken     string
	TwilioFrom          string
	TwilioMessagingSID  string
	TwilioAPIURL        string
	SMSRate             float64
	WebhookAllowPrivate bool
	WebhookOutbox       string
	EmailBounceLimit    int
	WebhookFailureLimit int
	DefaultLocale       string
	DefaultRegion       string
	Timezone            string
	TemplatesDir        string
	StaffEmail          string
	StaffWebhookURL     string
	RemindBefore        time.Duration
	DeliveryRetention   time.Duration
	OutboxKeep          time.Duration
	NATSContext         string
	EncryptionKey       string
	EncryptionKeyPrev   string
	MetricsAddr         string
	SiteFile            string
	ExportDir           string
	LogLevel            string
	// site is the site to use when SiteFile is empty (the demo's).
	site *notifier.Site
}

// staffEmails are the addresses in VARSEL_STAFF_EMAIL.
func (c *Config) staffEmails() []string {
	var out []string
	for a := range strings.SplitSeq(c.StaffEmail, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

type setting struct {
	env, flag, def, help string
	str                  *string
	f64                  *float64
	integer              *int
	boolean              *bool
	dur                  *time.Duration
}

func (c *Config) settings() []setting {
	return []setting{
		{env: "VARSEL_NATS_URL", flag: "nats", help: "external NATS URL(s), comma-separated; empty starts an embedded server", str: &c.NATSURL},
		{env: "VARSEL_NATS_LISTEN", flag: "nats-listen", def: "127.0.0.1:4222", help: "where the embedded NATS server listens", str: &c.NATSListen},
		{env: "VARSEL_NATS_REPLICAS", flag: "nats-replicas", def: "1", help: "replicas of every stream and bucket on a NATS cluster (1-5)", integer: &c.NATSReplicas},
		{env: "VARSEL_DATA_DIR", flag: "data-dir", def: "./data", help: "embedded JetStream store and outbox", str: &c.DataDir},
		{env: "VARSEL_HTTP_ADDR", flag: "http", def: ":8080", help: "status page, console, admin API, callbacks (metrics: VARSEL_METRICS_ADDR)", str: &c.HTTPAddr},
		{env: "VARSEL_PUBLIC_URL", flag: "public-url", def: "http://localhost:8080", help: "base of every link in messages", str: &c.PublicURL},
		{env: "VARSEL_ADMIN_TOKEN", flag: "admin-token", help: "bearer token for the admin API; empty refuses it", str: &c.AdminToken},
		{env: "VARSEL_SECRET", flag: "secret", help: "key for link tokens; empty: generated once and kept in NATS", str: &c.Secret},
		{env: "VARSEL_SMTP_URL", flag: "smtp", help: "smtp://user:pass@host:587?tls=starttls|tls|none; empty: email goes to the outbox", str: &c.SMTPURL},
		{env: "VARSEL_MAIL_FROM", flag: "mail-from", def: "Status <status@localhost>", help: "From header", str: &c.MailFrom},
		{env: "VARSEL_DKIM_DOMAIN", flag: "dkim-domain", help: "DKIM signing domain (optional)", str: &c.DKIMDomain},
		{env: "VARSEL_DKIM_SELECTOR", flag: "dkim-selector", help: "DKIM selector", str: &c.DKIMSelector},
		{env: "VARSEL_DKIM_KEY_FILE", flag: "dkim-key-file", help: "PEM private key (RSA of 1024+ bits, or Ed25519)", str: &c.DKIMKeyFile},
		{env: "VARSEL_DKIM_RSA_SELECTOR", flag: "dkim-rsa-selector", help: "selector of a second DKIM signature with an RSA key, same domain (optional)", str: &c.DKIMRSASelector},
		{env: "VARSEL_DKIM_RSA_KEY_FILE", flag: "dkim-rsa-key-file", help: "PEM RSA private key of the second signature", str: &c.DKIMRSAKeyFile},
		{env: "VARSEL_TWILIO_ACCOUNT_SID", flag: "twilio-account-sid", help: "Twilio account SID; empty: SMS goes to the outbox", str: &c.TwilioAccountSID},
		{env: "VARSEL_TWILIO_AUTH_TOKEN", flag: "twilio-auth-token", help: "Twilio auth token", str: &c.TwilioAuthToken},
		{env: "VARSEL_TWILIO_FROM", flag: "twilio-from", help: "sender number (E.164)", str: &c.TwilioFrom},
		{env: "VARSEL_TWILIO_MESSAGING_SERVICE_SID", flag: "twilio-messaging-service-sid", help: "sender messaging service", str: &c.TwilioMessagingSID},
		{env: "VARSEL_TWILIO_API_URL", flag: "twilio-api-url", def: "https://api.twilio.com", help: "Twilio REST base URL", str: &c.TwilioAPIURL},
		{env: "VARSEL_SMS_RATE", flag: "sms-rate", def: "1", help: "SMS segments per second per sender", f64: &c.SMSRate},
		{env: "VARSEL_WEBHOOK_ALLOW_PRIVATE", flag: "webhook-allow-private", def: "false", help: "allow webhook targets on private, loopback and link-local addresses", boolean: &c.WebhookAllowPrivate},
		{env: "VARSEL_WEBHOOK_OUTBOX", flag: "webhook-outbox", def: "auto", help: "write webhooks to the outbox instead of calling them: true, false, or auto (outbox only while neither SMTP nor Twilio is configured)", str: &c.WebhookOutbox},
		{env: "VARSEL_EMAIL_BOUNCE_LIMIT", flag: "email-bounce-limit", def: "3", help: "hard bounces in a row that pause email for a subscriber (0: never)", integer: &c.EmailBounceLimit},
		{env: "VARSEL_WEBHOOK_FAILURE_LIMIT", flag: "webhook-failure-limit", def: "5", help: "failed deliveries in a row that disable a webhook (0: never)", integer: &c.WebhookFailureLimit},
		{env: "VARSEL_DEFAULT_LOCALE", flag: "default-locale", def: "en", help: "language when a subscriber's is missing (en or nb)", str: &c.DefaultLocale},
		{env: "VARSEL_DEFAULT_REGION", flag: "default-region", def: notifier.FallbackRegion, help: "region of phone numbers written without a country code (NO, SE, GB, …)", str: &c.DefaultRegion},
		{env: "VARSEL_TIMEZONE", flag: "timezone", def: "Europe/Oslo", help: "time zone when a subscriber's is missing", str: &c.Timezone},
		{env: "VARSEL_TEMPLATES_DIR", flag: "templates-dir", help: "directory of template files overriding the embedded ones", str: &c.TemplatesDir},
		{env: "VARSEL_STAFF_EMAIL", flag: "staff-email", help: "comma-separated addresses that get reminders of promised updates (empty: none)", str: &c.StaffEmail},
		{env: "VARSEL_STAFF_WEBHOOK_URL", flag: "staff-webhook-url", help: `also post reminders there as {"text": ...} (Slack, Teams, Mattermost)`, str: &c.StaffWebhookURL},
		{env: "VARSEL_REMIND_BEFORE", flag: "remind-before", def: "10m", help: "how long before a promised update staff are reminded; a second reminder when it is overdue", dur: &c.RemindBefore},
		{env: "VARSEL_DELIVERY_RETENTION", flag: "delivery-retention", def: "720h", help: "how long per-delivery records are kept; the per-event summaries stay", dur: &c.DeliveryRetention},
		{env: "VARSEL_OUTBOX_KEEP", flag: "outbox-keep", def: "168h", help: "how long outbox files and lines are kept (0: for ever)", dur: &c.OutboxKeep},
		{env: "VARSEL_NATS_CONTEXT", flag: "nats-context", help: "nats CLI context file or .creds file to connect to an external NATS with", str: &c.NATSContext},
		{env: "VARSEL_ENCRYPTION_KEY", flag: "encryption-key", help: "encrypt the embedded JetStream store at rest with this key (32+ characters; prefer the environment to the flag)", str: &c.EncryptionKey},
		{env: "VARSEL_ENCRYPTION_KEY_PREVIOUS", flag: "encryption-key-previous", help: "the key the store was encrypted with until now, during a rotation", str: &c.EncryptionKeyPrev},
		{env: "VARSEL_SITE_FILE", flag: "site-file", help: "TOML file with the site's name and its components, each named in every language", str: &c.SiteFile},
		{env: "VARSEL_EXPORT_DIR", flag: "export-dir", help: "keep a static mirror of the status page in this directory, rewritten on every change", str: &c.ExportDir},
		{env: "VARSEL_LOG_LEVEL", flag: "log-level", def: "info", help: "debug, info, warn or error; debug logs every send (addresses masked)", str: &c.LogLevel},
		{env: "VARSEL_METRICS_ADDR", flag: "metrics-addr", def: "127.0.0.1:9090", help: "where /metrics is served (empty: not served)", str: &c.MetricsAddr},
	}
}

// bindFlags registers every setting on fs with its environment value (or
// default) as the flag's default, and returns a check for values that did
// not parse. A bad value, in a variable or a flag, never stops the parse:
// the check names each one (the variable or flag and its value), so that
// they are reported together with the problems Validate finds. A flag
// given after a bad variable replaces its value and its problem.
func (c *Config) bindFlags(fs *flag.FlagSet) func() error {
	bad := map[string]error{}
	var order []string
	for _, s := range c.settings() {
		val, ok := os.LookupEnv(s.env)
		if !ok {
			val = s.def
		}
		if s.str != nil { // any text is a string: nothing to report
			fs.StringVar(s.str, s.flag, val, s.help+" ("+s.env+")")
			continue
		}
		order = append(order, s.env)
		v := &settingValue{s: s, bad: bad}
		// The default first, so that a bad value leaves it in place and
		// Validate does not report the same setting a second time.
		if s.def != "" {
			_ = v.set(s.def, "")
		}
		if ok {
			_ = v.set(val, s.env+"=")
		}
		// -h shows what kind of value each takes (flag.UnquoteUsage).
		kind := ""
		switch {
		case s.f64 != nil:
			kind = ", a `number`"
		case s.integer != nil:
			kind = ", a whole `number`"
		case s.dur != nil:
			kind = ", a `duration`"
		}
		fs.Var(v, s.flag, s.help+" ("+s.env+kind+")")
		// The help shows the default the environment gives.
		fs.Lookup(s.flag).DefValue = val
	}
	return func() error {
		var errs []error
		for _, env := range order {
			if err := bad[env]; err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
}

// settingValue is one setting of a type other than string as a flag.Value. Set never fails: a value
// that does not parse is kept in bad, keyed by the setting's variable.
type settingValue struct {
	s   setting
	bad map[string]error
}

func (v *settingValue) String() string {
	switch s := v.s; {
	case v.bad == nil: // the zero value flag.PrintDefaults makes
		return ""
	case s.f64 != nil:
		return strconv.FormatFloat(*s.f64, 'g', -1, 64)
	case s.integer != nil:
		return strconv.Itoa(*s.integer)
	case s.boolean != nil:
		return strconv.FormatBool(*s.boolean)
	case s.dur != nil:
		return s.dur.String()
	}
	return ""
}

// IsBoolFlag lets a boolean setting be given as a bare --flag.
func (v *settingValue) IsBoolFlag() bool { return v.s.boolean != nil }

func (v *settingValue) Set(val string) error {
	return v.set(val, "--"+v.s.flag+"=")
}

// set parses val into the setting; source names where val came from
// ("VARSEL_X=" or "--x="), or is empty for the built-in default.
func (v *settingValue) set(val, source string) error {
	var want string
	switch s := v.s; {
	case s.f64 != nil:
		if f, err := strconv.ParseFloat(val, 64); err == nil {
			*s.f64 = f
		} else {
			want = "not a number"
		}
	case s.integer != nil:
		if n, err := strconv.Atoi(val); err == nil {
			*s.integer = n
		} else {
			want = "want a whole number"
		}
	case s.boolean != nil:
		if b, err := strconv.ParseBool(val); err == nil {
			*s.boolean = b
		} else {
			want = "want true or false"
		}
	case s.dur != nil:
		if d, err := time.ParseDuration(val); err == nil {
			*s.dur = d
		} else {
			want = "want a duration such as 10m or 1h30m"
		}
	}
	if source == "" {
		return nil
	}
	if want == "" {
		delete(v.bad, v.s.env)
		return nil
	}
	name := source + fmt.Sprintf("%q", val)
	if !strings.HasPrefix(source, v.s.env) {
		name += " (" + v.s.env + ")"
	}
	v.bad[v.s.env] = fmt.Errorf("%s: %s", name, want)
	return nil
}

// webhooksToOutbox resolves VARSEL_WEBHOOK_OUTBOX: "auto" keeps a bare
// development machine from calling out, and calls real endpoints as soon
// as the service is set up to send real email or SMS.
func (c *Config) webhooksToOutbox() bool {
	if c.WebhookOutbox == "auto" {
		return c.SMTPURL == "" && c.TwilioAccountSID == ""
	}
	return c.WebhookOutbox == "true"
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(env, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", env, fmt.Sprintf(format, args...)))
	}
	if c.NATSURL == "" {
		if _, _, err := net.SplitHostPort(c.NATSListen); err != nil {
			bad("VARSEL_NATS_LISTEN", "%q is not host:port", c.NATSListen)
		}
		if c.DataDir == "" {
			bad("VARSEL_DATA_DIR", "required with the embedded server")
		}
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		bad("VARSEL_HTTP_ADDR", "%q is not host:port or :port", c.HTTPAddr)
	}
	if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("VARSEL_PUBLIC_URL", "%q is not an http(s) URL", c.PublicURL)
	}
	if c.Secret != "" && len(c.Secret) < 16 {
		bad("VARSEL_SECRET", "must be at least 16 characters")
	}
	if (c.TwilioAccountSID == "") != (c.TwilioAuthToken == "") {
		bad("VARSEL_TWILIO_AUTH_TOKEN", "set both VARSEL_TWILIO_ACCOUNT_SID and VARSEL_TWILIO_AUTH_TOKEN, or neither")
	}
	if c.TwilioAccountSID != "" && (c.TwilioFrom == "") == (c.TwilioMessagingSID == "") {
		bad("VARSEL_TWILIO_FROM", "set exactly one of VARSEL_TWILIO_FROM and VARSEL_TWILIO_MESSAGING_SERVICE_SID")
	}
	if c.SMSRate <= 0 {
		bad("VARSEL_SMS_RATE", "must be above 0 (segments per second)")
	}
	if (c.DKIMDomain != "") && (c.DKIMSelector == "" || c.DKIMKeyFile == "") {
		bad("VARSEL_DKIM_DOMAIN", "DKIM needs VARSEL_DKIM_SELECTOR and VARSEL_DKIM_KEY_FILE too")
	}
	c.validateDKIM(bad)
	if t, err := language.Parse(c.DefaultLocale); err != nil {
		bad("VARSEL_DEFAULT_LOCALE", "%q is not a language tag", c.DefaultLocale)
	} else if b, _ := t.Base(); b.String() != "en" && b.String() != "nb" && b.String() != "no" && b.String() != "nn" {
		bad("VARSEL_DEFAULT_LOCALE", "%q: Varsel writes English (en) and Norwegian Bokmål (nb)", c.DefaultLocale)
	}
	if r := strings.ToUpper(c.DefaultRegion); r != "" && !notifier.ValidRegion(r) { // "": NO
		bad("VARSEL_DEFAULT_REGION", "%q is not a region with a phone numbering plan, such as NO, SE or GB (upper case)", c.DefaultRegion)
	}
	if _, err := time.LoadLocation(c.Timezone); err != nil {
		bad("VARSEL_TIMEZONE", "%q is not an IANA time zone such as Europe/Oslo", c.Timezone)
	}
	if c.NATSReplicas < 1 || c.NATSReplicas > 5 {
		bad("VARSEL_NATS_REPLICAS", "%d: want a whole number from 1 to 5", c.NATSReplicas)
	} else if c.NATSReplicas > 1 && c.NATSURL == "" {
		bad("VARSEL_NATS_REPLICAS", "%d replicas need a NATS cluster (VARSEL_NATS_URL); the embedded server keeps 1", c.NATSReplicas)
	}
	if c.EmailBounceLimit < 0 {
		bad("VARSEL_EMAIL_BOUNCE_LIMIT", "%d: want a whole number, 0 or more", c.EmailBounceLimit)
	}
	if c.WebhookFailureLimit < 0 {
		bad("VARSEL_WEBHOOK_FAILURE_LIMIT", "%d: want a whole number, 0 or more", c.WebhookFailureLimit)
	}
	switch c.WebhookOutbox {
	case "auto", "true", "false":
	default:
		bad("VARSEL_WEBHOOK_OUTBOX", "%q: want auto, true or false", c.WebhookOutbox)
	}
	for _, a := range c.staffEmails() {
		if m, err := mail.ParseAddress(a); err != nil || m.Address != a {
			bad("VARSEL_STAFF_EMAIL", "%q is not an address such as ops@example.com", a)
		}
	}
	if c.StaffWebhookURL != "" {
		if u, err := url.Parse(c.StaffWebhookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("VARSEL_STAFF_WEBHOOK_URL", "%q is not an http(s) URL", c.StaffWebhookURL)
		}
	}
	if c.AdminToken != "" && len(c.AdminToken) < 16 {
		bad("VARSEL_ADMIN_TOKEN", "%d characters: a token must be at least 16, random (e.g. `openssl rand -hex 24`), or empty to refuse the admin API", len(c.AdminToken))
	} else if c.AdminToken != "" && distinctRunes(c.AdminToken) < 8 {
		bad("VARSEL_ADMIN_TOKEN", "only %d different characters: it is not random (e.g. `openssl rand -hex 24`)", distinctRunes(c.AdminToken))
	}
	if c.EncryptionKey != "" && len(c.EncryptionKey) < 32 {
		bad("VARSEL_ENCRYPTION_KEY", "%d characters: want at least 32, random (e.g. `openssl rand -hex 32`)", len(c.EncryptionKey))
	}
	if c.EncryptionKey != "" && c.NATSURL != "" {
		bad("VARSEL_ENCRYPTION_KEY", "encrypts the embedded server's store; an external NATS encrypts its own (its jetstream { cipher, key } settings)")
	}
	if c.EncryptionKeyPrev != "" && c.EncryptionKey == "" {
		bad("VARSEL_ENCRYPTION_KEY_PREVIOUS", "needs the new key in VARSEL_ENCRYPTION_KEY")
	}
	if c.NATSContext != "" && c.NATSURL == "" && !strings.HasSuffix(c.NATSContext, ".json") {
		bad("VARSEL_NATS_CONTEXT", "a .creds file names no server: set VARSEL_NATS_URL too")
	}
	if c.SiteFile != "" {
		if _, err := notifier.LoadSite(c.SiteFile); err != nil {
			bad("VARSEL_SITE_FILE", "%v", err)
		}
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			bad("VARSEL_METRICS_ADDR", "%q is not host:port", c.MetricsAddr)
		}
	}
	if c.DeliveryRetention < time.Hour {
		bad("VARSEL_DELIVERY_RETENTION", "%s: want at least 1h (records are looked up while retries run), such as 720h", c.DeliveryRetention)
	}
	if c.OutboxKeep != 0 && c.OutboxKeep < time.Minute {
		bad("VARSEL_OUTBOX_KEEP", "%s: want at least 1m, such as 168h, or 0 to keep the outbox for ever", c.OutboxKeep)
	}
	if c.RemindBefore <= 0 {
		bad("VARSEL_REMIND_BEFORE", "%s: want a duration above 0, such as 10m", c.RemindBefore)
	}
	if _, ok := parseLogLevel(c.LogLevel); !ok {
		bad("VARSEL_LOG_LEVEL", "%q: want debug, info, warn or error", c.LogLevel)
	}
	if c.TemplatesDir != "" {
		if st, err := os.Stat(c.TemplatesDir); err != nil || !st.IsDir() {
			bad("VARSEL_TEMPLATES_DIR", "%q is not a directory", c.TemplatesDir)
		}
	}
	return errors.Join(errs...)
}

// parseLogLevel reads VARSEL_LOG_LEVEL: debug, info, warn or error (any
// case); empty is info.
func parseLogLevel(s string) (slog.Level, bool) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, true
	case "", "info":
		return slog.LevelInfo, true
	case "warn":
		return slog.LevelWarn, true
	case "error":
		return slog.LevelError, true
	}
	return slog.LevelInfo, false
}

// logger writes JSON logs to w at the configured level.
func (c *Config) logger(w io.Writer) *slog.Logger {
	level, _ := parseLogLevel(c.LogLevel)
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

func distinctRunes(s string) int {
	seen := map[rune]bool{}
	for _, r := range s {
		seen[r] = true
	}
	return len(seen)
}
