package sms

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/varsel/varsel/notifier"
)

// Defaults applied by New to the zero fields of a Config.
const (
	// DefaultAPIURL is Twilio's REST base URL.
	DefaultAPIURL = "https://api.twilio.com"
	// DefaultRate is one segment per second: what Twilio allows a long
	// code (toll-free numbers get 3/s, short codes 100/s).
	DefaultRate = 1.0
	// DefaultValidityPeriod is how long Twilio may keep trying to hand an
	// SMS to the carrier. An outage notice that arrives more than an hour
	// late has usually been overtaken by the next update (the seed status
	// page posted one every two hours) and reads as a new outage on a lock
	// screen, so it is better dropped; an hour still covers a phone that
	// is briefly off or out of coverage.
	DefaultValidityPeriod = time.Hour
	// DefaultTimeout bounds one call to the Twilio API (twilio-go's own
	// default).
	DefaultTimeout = 10 * time.Second
)

// Twilio's limits for ValidityPeriod: 1 to 36000 seconds.
const (
	minValidity = time.Second
	maxValidity = 36000 * time.Second
)

// twilio-go refuses credentials that are not plain letters and digits.
var alphanumeric = regexp.MustCompile(`^[A-Za-z0-9]+$`)

// Config configures the SMS channel. It is plain data: a zero field takes
// its default (see New), and Validate reports every problem at once.
// Config never shows AuthToken when printed or logged.
type Config struct {
	// AccountSID (VARSEL_TWILIO_ACCOUNT_SID) is the Twilio account, "AC…".
	AccountSID string
	// AuthToken (VARSEL_TWILIO_AUTH_TOKEN) authenticates API calls and
	// signs Twilio's callbacks. Secret.
	AuthToken string
	// From (VARSEL_TWILIO_FROM) is the sender number in E.164 or an
	// alphanumeric sender id. Exactly one of From and MessagingServiceSID.
	From string
	// MessagingServiceSID (VARSEL_TWILIO_MESSAGING_SERVICE_SID), "MG…",
	// lets Twilio pick the sender from a pool.
	MessagingServiceSID string
	// APIURL (VARSEL_TWILIO_API_URL) is the Twilio REST base URL; tests and
	// staging point it at a fake. Empty means DefaultAPIURL.
	APIURL string
	// PublicURL (VARSEL_PUBLIC_URL) is where Twilio reaches Varsel: each
	// message asks for receipts at PublicURL/twilio/status?delivery=<id>.
	// Empty means no delivery receipts are requested.
	PublicURL string
	// Rate (VARSEL_SMS_RATE) is how many segments per second this sender
	// may hand to Twilio. Zero means DefaultRate. With several Varsel
	// instances sharing one sender, give each its share.
	Rate float64
	// ValidityPeriod is how long Twilio may queue a message before giving
	// up on it; whole seconds from 1 s to 10 h. Zero means
	// DefaultValidityPeriod (1 h).
	ValidityPeriod time.Duration
	// Timeout bounds each call to the Twilio API. Zero means
	// DefaultTimeout (10 s).
	Timeout time.Duration
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.APIURL == "" {
		c.APIURL = DefaultAPIURL
	}
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.ValidityPeriod == 0 {
		c.ValidityPeriod = DefaultValidityPeriod
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	return c
}

// sender is the key of the rate limit: the number or messaging service
// that messages go out from.
func (c Config) sender() string {
	if c.From != "" {
		return c.From
	}
	return c.MessagingServiceSID
}

// Validate reports every problem with c at once, or nil. Zero values of
// the optional fields are valid: they mean the defaults.
func (c Config) Validate() error {
	var errs []error
	switch {
	case c.AccountSID == "":
		errs = append(errs, errors.New("account SID is required"))
	case !alphanumeric.MatchString(c.AccountSID) || !strings.HasPrefix(c.AccountSID, "AC"):
		errs = append(errs, fmt.Errorf("account SID %q must be AC followed by letters and digits", c.AccountSID))
	}
	switch {
	case c.AuthToken == "":
		errs = append(errs, errors.New("auth token is required"))
	case !alphanumeric.MatchString(c.AuthToken):
		// The token itself is never printed.
		errs = append(errs, errors.New("auth token must be letters and digits only"))
	}
	switch {
	case c.From == "" && c.MessagingServiceSID == "":
		errs = append(errs, errors.New("one of from and messaging service SID is required"))
	case c.From != "" && c.MessagingServiceSID != "":
		errs = append(errs, errors.New("from and messaging service SID are both set; set exactly one"))
	case c.From != "" && strings.HasPrefix(c.From, "+") && !notifier.ValidPhone(c.From):
		errs = append(errs, fmt.Errorf("from %q is not an E.164 number such as +4791234567", c.From))
	case c.MessagingServiceSID != "" && (!strings.HasPrefix(c.MessagingServiceSID, "MG") || !alphanumeric.MatchString(c.MessagingServiceSID)):
		errs = append(errs, fmt.Errorf("messaging service SID %q must be MG followed by letters and digits", c.MessagingServiceSID))
	}
	if c.APIURL != "" {
		if err := checkBaseURL(c.APIURL); err != nil {
			errs = append(errs, fmt.Errorf("API URL: %w", err))
		}
	}
	if c.PublicURL != "" {
		if err := checkBaseURL(c.PublicURL); err != nil {
			errs = append(errs, fmt.Errorf("public URL: %w", err))
		}
	}
	if c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) {
		errs = append(errs, fmt.Errorf("rate %v must be a positive number of segments per second", c.Rate))
	}
	if c.ValidityPeriod != 0 {
		switch {
		case c.ValidityPeriod < minValidity || c.ValidityPeriod > maxValidity:
			errs = append(errs, fmt.Errorf("validity period %v is outside Twilio's 1s–10h", c.ValidityPeriod))
		case c.ValidityPeriod%time.Second != 0:
			errs = append(errs, fmt.Errorf("validity period %v is not whole seconds", c.ValidityPeriod))
		}
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %v is negative", c.Timeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sms config: %w", err)
	}
	return nil
}

func checkBaseURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return err
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q: scheme must be http or https", raw)
	case u.Host == "":
		return fmt.Errorf("%q has no host", raw)
	case u.User != nil:
		return fmt.Errorf("%q must not carry credentials", u.Redacted())
	case u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("%q must not have a query or fragment", raw)
	}
	return nil
}

// String describes c without the auth token.
func (c Config) String() string {
	return fmt.Sprintf("sms.Config{AccountSID:%s AuthToken:%s From:%s MessagingServiceSID:%s APIURL:%s PublicURL:%s Rate:%v ValidityPeriod:%v Timeout:%v}",
		c.AccountSID, redactedToken(c.AuthToken), c.From, c.MessagingServiceSID, c.APIURL, c.PublicURL, c.Rate, c.ValidityPeriod, c.Timeout)
}

// GoString is String, so %#v does not print the auth token either.
func (c Config) GoString() string { return c.String() }

// LogValue logs c without the auth token.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("account_sid", c.AccountSID),
		slog.String("auth_token", redactedToken(c.AuthToken)),
		slog.String("from", c.From),
		slog.String("messaging_service_sid", c.MessagingServiceSID),
		slog.String("api_url", c.APIURL),
		slog.String("public_url", c.PublicURL),
		slog.Float64("rate", c.Rate),
		slog.Duration("validity_period", c.ValidityPeriod),
		slog.Duration("timeout", c.Timeout),
	)
}

func redactedToken(t string) string {
	if t == "" {
		return ""
	}
	return "[redacted]"
}
