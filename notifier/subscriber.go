package notifier

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/text/language"
)

// ChannelName names a delivery channel.
type ChannelName string

// The delivery channels.
const (
	Email   ChannelName = "email"
	SMS     ChannelName = "sms"
	Webhook ChannelName = "webhook"
)

// ChannelNames lists every channel in a stable order.
var ChannelNames = []ChannelName{Email, SMS, Webhook}

// Subscriber is one person or system that receives messages.
type Subscriber struct {
	ID         string `json:"id"`
	Name       string `json:"name,omitempty"`
	Email      string `json:"email,omitempty"`
	Phone      string `json:"phone,omitempty"` // E.164
	WebhookURL string `json:"webhook_url,omitempty"`
	// WebhookSecret signs webhooks (Standard Webhooks whsec_ form).
	WebhookSecret string `json:"webhook_secret,omitempty"`
	// PreviousWebhookSecret is still signed with until PreviousSecretUntil,
	// so receivers can rotate without dropping a delivery.
	PreviousWebhookSecret string     `json:"previous_webhook_secret,omitempty"`
	PreviousSecretUntil   *time.Time `json:"previous_secret_until,omitempty"`
	Locale                string     `json:"locale,omitempty"`   // BCP 47; empty means the default locale
	Timezone              string     `json:"timezone,omitempty"` // IANA; empty means the default zone
	// Components the subscriber follows; empty means all.
	Components []string `json:"components,omitempty"`
	// Suppressed holds the channels that must not be used, and why: an
	// unsubscribe, an SMS STOP, repeated hard bounces, a webhook answering 410.
	Suppressed map[ChannelName]Suppression `json:"suppressed,omitempty"`
	// Failures counts consecutive failed deliveries per channel; a success
	// resets it.
	Failures  map[ChannelName]int `json:"failures,omitempty"`
	CreatedAt time.Time           `json:"created_at"`
	UpdatedAt time.Time           `json:"updated_at"`

	// PhoneUnverified marks a number given on the public sign-up form
	// whose SMS code has not been entered yet: no SMS alert goes to it.
	// Numbers entered by an operator (CSV, CLI, admin API) are verified.
	PhoneUnverified bool `json:"phone_unverified,omitempty"`
	// PhoneCheck is the code sent to the unverified number, if any.
	PhoneCheck *PhoneCheck `json:"phone_check,omitempty"`

	// SMSStartEndOnly limits SMS to an incident's start and end (and a
	// maintenance's): see StartOrEnd. It only narrows what the policy
	// sends; email and webhooks are not affected.
	SMSStartEndOnly bool `json:"sms_start_end_only,omitempty"`

	// secretGenerated marks a webhook secret Normalize made up because
	// none was given: a store keeps an existing subscriber's own instead.
	secretGenerated bool
}

// SecretGenerated reports whether the webhook secret was made up by
// Normalize, none being given: storing it over an existing subscriber
// keeps that subscriber's secret (an import run again must not change
// every integrator's secret).
func (s *Subscriber) SecretGenerated() bool { return s.secretGenerated }

// Details of the opt-outs a subscriber made themselves, from a message's
// link or their preferences page. Only these can be undone on the
// preferences page; an SMS STOP ("replied STOP", lifted by START), a
// bounce or a provider's refusal cannot.
const (
	OptOutByLink        = "unsubscribed by link"
	OptOutOnPreferences = "turned off on the preferences page"
)

// SelfService reports whether the subscriber turned the channel off
// themselves, by link or on their preferences page, so they may turn it
// on again there.
func (s Suppression) SelfService() bool {
	return s.Reason == ReasonOptedOut && (s.Detail == OptOutByLink || s.Detail == OptOutOnPreferences)
}

// Suppression records why a channel is not used for a subscriber.
type Suppression struct {
	Reason Reason    `json:"reason"`
	Detail string    `json:"detail,omitempty"`
	At     time.Time `json:"at"`
}

// Contact returns the subscriber's address on a channel, or "".
func (s *Subscriber) Contact(ch ChannelName) string {
	switch ch {
	case Email:
		return s.Email
	case SMS:
		return s.Phone
	case Webhook:
		return s.WebhookURL
	}
	return ""
}

// Reachable reports whether the subscriber has an address on ch and has not
// opted out of it.
func (s *Subscriber) Reachable(ch ChannelName) bool {
	if s.Contact(ch) == "" {
		return false
	}
	_, suppressed := s.Suppressed[ch]
	return !suppressed
}

// Follows reports whether the subscriber wants messages about any of the
// given components; nil components (a letter to everyone) match everyone.
func (s *Subscriber) Follows(components []string) bool {
	if components == nil || len(s.Components) == 0 {
		return true
	}
	for _, c := range components {
		if slices.Contains(s.Components, c) {
			return true
		}
	}
	return false
}

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// ValidPhone reports whether p is an E.164 number such as +4791234567.
func ValidPhone(p string) bool { return e164.MatchString(p) }

// ValidWebhookSecret reports whether s is a Standard Webhooks secret:
// "whsec_" followed by base64 of 24 to 64 random bytes.
func ValidWebhookSecret(s string) bool {
	raw, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		return false
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	return err == nil && len(key) >= 24 && len(key) <= 64
}

// Validate checks the subscriber and returns a *ValidationError listing every
// problem, or nil. Webhook targets are only checked for form here; whether
// they are safe to call is the webhook channel's check.
func (s *Subscriber) Validate() error {
	v := &ValidationError{}
	if s.ID == "" {
		v.add("id", "required")
	} else if !ValidID(s.ID) {
		v.add("id", "%q must be 1–128 letters, digits, '-' or '_'", s.ID)
	}
	if problem := ControlCharProblem(s.Name); problem != "" {
		v.add("name", "%s", problem)
	}
	if s.Email == "" && s.Phone == "" && s.WebhookURL == "" {
		v.add("email", "at least one of email, phone or webhook_url is required")
	}
	if s.Email != "" {
		if a, err := mail.ParseAddress(s.Email); err != nil || a.Address != s.Email {
			v.add("email", "%q is not a plain email address such as kari@example.com", s.Email)
		}
	}
	if s.Phone != "" && !validE164(s.Phone) {
		v.add("phone", "%q is not a valid phone number: write it with the country code, such as +47 912 34 567, or as a number of region %s", s.Phone, DefaultRegion())
	}
	if s.WebhookURL != "" {
		u, err := url.Parse(s.WebhookURL)
		switch {
		case err != nil:
			v.add("webhook_url", "not a URL: %v", err)
		case u.Scheme != "http" && u.Scheme != "https":
			v.add("webhook_url", "scheme must be http or https, not %q", u.Scheme)
		case u.Host == "":
			v.add("webhook_url", "has no host")
		}
		if !ValidWebhookSecret(s.WebhookSecret) {
			v.add("webhook_secret", "must be whsec_ followed by base64 of 24–64 bytes")
		}
	}
	if s.Locale != "" {
		if _, err := language.Parse(s.Locale); err != nil {
			v.add("locale", "%q is not a language tag such as nb or en-GB", s.Locale)
		}
	}
	if s.Timezone != "" {
		if _, err := time.LoadLocation(s.Timezone); err != nil {
			v.add("timezone", "%q is not an IANA time zone such as Europe/Oslo", s.Timezone)
		}
	}
	for i, c := range s.Components {
		if !ValidID(c) {
			v.add(fmt.Sprintf("components[%d]", i), "%q must be 1–128 letters, digits, '-' or '_'", c)
		}
	}
	return v.err()
}

// MaskEmail hides most of an address for logs: kari@example.com → k***@example.com.
func MaskEmail(addr string) string {
	local, domain, ok := strings.Cut(addr, "@")
	if !ok || local == "" {
		return "***"
	}
	return local[:1] + "***@" + domain
}

// MaskPhone keeps the country code and the last two digits: +47******67.
func MaskPhone(p string) string {
	if len(p) < 6 {
		return "***"
	}
	return p[:3] + strings.Repeat("*", len(p)-5) + p[len(p)-2:]
}

// MaskContact masks an address for logs according to its channel; a webhook
// URL is reduced to scheme and host so no credentials or tokens leak.
func MaskContact(ch ChannelName, addr string) string {
	switch ch {
	case Email:
		return MaskEmail(addr)
	case SMS:
		return MaskPhone(addr)
	case Webhook:
		if u, err := url.Parse(addr); err == nil && u.Host != "" {
			return u.Scheme + "://" + u.Hostname() + "/…"
		}
	}
	return "***"
}

// BaseLanguage maps a language tag to the language Varsel writes it in:
// "en" for every English, "nb" for every Norwegian (nb, no, nn — Bokmål is
// the written standard Varsel offers), "" for anything else.
func BaseLanguage(tag string) string {
	// The tags nearly every subscriber has skip the parser, which costs
	// more than the rest of choosing a reader's language (1.7 µs a
	// delivery in a fan-out's profile).
	switch tag {
	case "en":
		return "en"
	case "nb", "no", "nn":
		return "nb"
	}
	t, err := language.Parse(strings.ReplaceAll(strings.TrimSpace(tag), "_", "-"))
	if err != nil {
		return ""
	}
	switch base, _ := t.Base(); base.String() {
	case "en":
		return "en"
	case "nb", "no", "nn":
		return "nb"
	}
	return ""
}

// RequestLanguage chooses the language of a page: the one asked for
// (?lang=), else the first of the browser's Accept-Language that Varsel
// writes, else def. The public pages and the console's sign-in use it.
func RequestLanguage(asked, acceptLanguage, def string) string {
	if base := BaseLanguage(asked); base != "" {
		return base
	}
	if asked == "" {
		if tags, _, err := language.ParseAcceptLanguage(acceptLanguage); err == nil {
			for _, t := range tags {
				if base := BaseLanguage(t.String()); base != "" {
					return base
				}
			}
		}
	}
	if base := BaseLanguage(def); base != "" {
		return base
	}
	return def
}

// ErrUnknownChannel means a channel name is not email, sms or webhook.
var ErrUnknownChannel = errors.New("unknown channel (want email, sms or webhook)")

// Normalize tidies a subscriber before validation: it trims spaces, writes
// a valid phone number in E.164 (one without a country code is read as of
// DefaultRegion; an invalid one is left for Validate to refuse) and
// generates a webhook secret when a webhook URL has none.
func (s *Subscriber) Normalize() error {
	s.ID = strings.TrimSpace(s.ID)
	s.Name = strings.TrimSpace(s.Name)
	s.Email = strings.TrimSpace(s.Email)
	s.Phone = strings.ReplaceAll(strings.TrimSpace(s.Phone), " ", "")
	if p, err := NormalizePhone(s.Phone, DefaultRegion()); err == nil {
		s.Phone = p
	}
	s.WebhookURL = strings.TrimSpace(s.WebhookURL)
	s.Locale = strings.TrimSpace(s.Locale)
	s.Timezone = strings.TrimSpace(s.Timezone)
	if s.WebhookURL != "" && s.WebhookSecret == "" {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return fmt.Errorf("generate webhook secret: %w", err)
		}
		s.WebhookSecret = "whsec_" + base64.StdEncoding.EncodeToString(key)
		s.secretGenerated = true
	}
	return nil
}

// contactPattern finds email addresses and phone numbers in a text such as
// a provider's error (an SMTP server quotes the address it refuses).
var contactPattern = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}|\+[1-9][0-9 ]{6,16}[0-9]`)

// ScrubContacts masks the addresses and numbers in s, for logs and stored
// errors.
func ScrubContacts(s string) string {
	if s == "" {
		return s
	}
	return contactPattern.ReplaceAllStringFunc(s, func(m string) string {
		if m[0] == '+' {
			return MaskPhone(m)
		}
		return MaskEmail(m)
	})
}

// ScrubError is ScrubContacts of an error's text; "" for nil.
func ScrubError(err error) string {
	if err == nil {
		return ""
	}
	return ScrubContacts(err.Error())
}
