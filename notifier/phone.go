package notifier

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nyaruka/phonenumbers"
)

// FallbackRegion is the region of numbers written without a country code
// until SetDefaultRegion says otherwise (VARSEL_DEFAULT_REGION's default).
const FallbackRegion = "NO"

var defaultRegion atomic.Pointer[string]

// ValidRegion reports whether region is a two-letter region (ISO 3166-1
// alpha-2, upper case) whose numbering plan phonenumbers knows.
func ValidRegion(region string) bool {
	return phonenumbers.GetSupportedRegions()[region]
}

// SetDefaultRegion sets the region of phone numbers written without a
// country code, process-wide (VARSEL_DEFAULT_REGION). Normalize uses it.
func SetDefaultRegion(region string) error {
	r := strings.ToUpper(strings.TrimSpace(region))
	if !ValidRegion(r) {
		return fmt.Errorf("%q is not a region with a phone numbering plan, such as NO or SE", region)
	}
	defaultRegion.Store(&r)
	return nil
}

// DefaultRegion is the region set by SetDefaultRegion, else FallbackRegion.
func DefaultRegion() string {
	if r := defaultRegion.Load(); r != nil {
		return *r
	}
	return FallbackRegion
}

// ErrInvalidPhone means a phone number is not a valid number.
var ErrInvalidPhone = errors.New("not a valid phone number")

// NormalizePhone parses a phone number as people write it ("922 11 333",
// "+47 922 11 333", "0047 92211333") with libphonenumber's rules, reading
// a number without a country code as one of region, and returns it in
// E.164 (+4792211333). A number that does not parse, or that is not a
// valid number in its plan (phonenumbers.IsValidNumber), is an error
// wrapping ErrInvalidPhone. "" stays "".
func NormalizePhone(raw, region string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", nil
	}
	num, err := phonenumbers.Parse(raw, region)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidPhone, err)
	}
	if !phonenumbers.IsValidNumber(num) {
		return "", ErrInvalidPhone
	}
	return phonenumbers.Format(num, phonenumbers.E164), nil
}

// validE164 reports whether p is a valid number already written in E.164.
func validE164(p string) bool {
	n, err := NormalizePhone(p, "ZZ") // "ZZ": no region, a country code is required
	return err == nil && n == p
}

// Phone verification of a number given on the public sign-up form.
const (
	// PhoneCodeValidity is how long a code sent by SMS can be entered.
	PhoneCodeValidity = 10 * time.Minute
	// PhoneCodeAttempts is how many wrong codes lock a code.
	PhoneCodeAttempts = 5
)

// Errors of CheckPhoneCode.
var (
	ErrPhoneCodeWrong   = errors.New("wrong code")
	ErrPhoneCodeExpired = errors.New("code expired")
	ErrPhoneCodeLocked  = errors.New("too many wrong codes")
	ErrNoPhoneCode      = errors.New("no code was sent")
)

// PhoneCheck is a code sent by SMS to a subscriber's unverified number. The
// code itself is not stored: Digest is a keyed hash of it (the web layer
// keys it with the link secret), compared in constant time.
type PhoneCheck struct {
	Digest   string    `json:"digest"`
	Salt     string    `json:"salt"`
	Expires  time.Time `json:"expires"`
	Attempts int       `json:"attempts,omitempty"` // wrong codes entered
}

// Locked reports whether too many wrong codes were entered.
func (c *PhoneCheck) Locked() bool { return c.Attempts >= PhoneCodeAttempts }

// Live reports whether the code can still be entered at now.
func (c *PhoneCheck) Live(now time.Time) bool {
	return c != nil && !c.Locked() && now.Before(c.Expires)
}

// NewPhoneCode returns a random 6-digit code (000000–999999) from crypto/rand.
func NewPhoneCode() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", fmt.Errorf("phone code: %w", err)
	}
	return fmt.Sprintf("%06d", n.Int64()), nil
}

// CheckPhoneCode checks a code entered for the subscriber's unverified
// number and records the outcome on s: a right code verifies the number, a
// wrong one counts an attempt. digest(salt, code) must be the function the
// check was made with. A subscriber whose number is verified already
// passes. The caller stores s whatever the result, so attempts count.
func (s *Subscriber) CheckPhoneCode(code string, now time.Time, digest func(salt, code string) string) error {
	if !s.PhoneUnverified {
		return nil
	}
	c := s.PhoneCheck
	switch {
	case c == nil:
		return ErrNoPhoneCode
	case c.Locked():
		return ErrPhoneCodeLocked
	case !now.Before(c.Expires):
		return ErrPhoneCodeExpired
	}
	code = strings.Join(strings.Fields(code), "")
	if subtle.ConstantTimeCompare([]byte(digest(c.Salt, code)), []byte(c.Digest)) != 1 {
		c.Attempts++
		if c.Locked() {
			return ErrPhoneCodeLocked
		}
		return ErrPhoneCodeWrong
	}
	s.PhoneUnverified, s.PhoneCheck = false, nil
	return nil
}

// AddressFinder is a subscriber store that can find a subscriber by email
// address or phone number in one lookup (notifier/jetstream keeps an index).
type AddressFinder interface {
	// FindByAddress returns the subscriber whose email (any case) or E.164
	// phone is addr, or an error wrapping ErrNotFound.
	FindByAddress(ctx context.Context, addr string) (*Subscriber, error)
}

// AllAddressFinder finds every subscriber with an address: two ids may
// share one (an import can give them).
type AllAddressFinder interface {
	FindAllByAddress(ctx context.Context, addr string) ([]*Subscriber, error)
}

// AddressKey is the key of an address in an address index: the SHA-256 hex
// of the trimmed, lower-cased address, so no plain address is a key.
func AddressKey(addr string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(addr))))
	return hex.EncodeToString(sum[:])
}

// Addresses returns the subscriber's email and phone, the addresses an
// index finds it by.
func (s *Subscriber) Addresses() []string {
	var out []string
	if s.Email != "" {
		out = append(out, s.Email)
	}
	if s.Phone != "" {
		out = append(out, s.Phone)
	}
	return out
}

// HasAddress reports whether addr is the subscriber's email (any case) or phone.
func (s *Subscriber) HasAddress(addr string) bool {
	addr = strings.TrimSpace(addr)
	return addr != "" && (strings.EqualFold(s.Email, addr) || s.Phone == addr)
}
