// Package staff is the support staff's side of Varsel's HTTP: accounts with
// bcrypt-hashed passwords, sign-in with a rate limit, sessions kept in a
// store every instance shares, and CSRF tokens on every form. The console
// (notifier/console) and the staff-facing parts of the API (notifier/web)
// share one Manager, so a session works for both.
package staff

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/varsel/varsel/notifier"
)

// Errors returned by the account functions.
var (
	// ErrBadCredentials means the email or password is wrong; which one
	// is not said.
	ErrBadCredentials = errors.New("wrong email or password")
	// ErrTooManyAttempts means sign-in is refused for a while after too
	// many failures for the account or from the client's network.
	ErrTooManyAttempts = errors.New("too many sign-in attempts")
	// ErrInvalidAccount wraps what is wrong with an account being added.
	ErrInvalidAccount = errors.New("invalid staff account")
)

// Account is one member of the support staff.
type Account struct {
	Email string `json:"email"` // lower case; the sign-in name
	Name  string `json:"name"`
	// Locale is the console's language for them: "en" or "nb".
	Locale string `json:"locale"`
	// PasswordHash is bcrypt's encoding of the password.
	PasswordHash string    `json:"password_hash"`
	CreatedAt    time.Time `json:"created_at"`
}

// AccountStore keeps staff accounts, keyed by lower-case email.
type AccountStore interface {
	// Get returns the account or an error wrapping notifier.ErrNotFound.
	Get(ctx context.Context, email string) (*Account, error)
	// Put creates or replaces an account.
	Put(ctx context.Context, a *Account) error
	// Delete removes an account; it reports notifier.ErrNotFound for none.
	Delete(ctx context.Context, email string) error
	// List returns every account, by email.
	List(ctx context.Context) ([]*Account, error)
}

// bcryptCost is the work factor: about a quarter of a second on the
// development machine, slow for an attacker, fine for a person.
const bcryptCost = 12

// MinPasswordLength and MaxPasswordLength bound a password; bcrypt reads
// only 72 bytes, so a longer one would silently be cut.
const (
	MinPasswordLength = 12
	MaxPasswordLength = 72
)

// NewAccount checks and builds an account with its password hashed. Every
// problem is reported at once, wrapping ErrInvalidAccount.
func NewAccount(email, name, locale, password string) (*Account, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	var problems []string
	if a, err := mail.ParseAddress(email); err != nil || a.Address != email {
		problems = append(problems, fmt.Sprintf("email %q is not an address such as kari@example.com", email))
	}
	if strings.TrimSpace(name) == "" {
		problems = append(problems, "name is required")
	}
	switch notifier.BaseLanguage(locale) {
	case "en", "nb":
		locale = notifier.BaseLanguage(locale)
	default:
		problems = append(problems, fmt.Sprintf("locale %q: want en or nb", locale))
	}
	switch n := utf8.RuneCountInString(password); {
	case n < MinPasswordLength:
		problems = append(problems, fmt.Sprintf("password is %d characters, at least %d are needed", n, MinPasswordLength))
	case len(password) > MaxPasswordLength:
		problems = append(problems, fmt.Sprintf("password is %d bytes, at most %d are used", len(password), MaxPasswordLength))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrInvalidAccount, strings.Join(problems, "; "))
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcryptCost)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	return &Account{Email: email, Name: strings.TrimSpace(name), Locale: locale, PasswordHash: string(hash), CreatedAt: time.Now().UTC()}, nil
}

// CheckPassword reports whether password is the account's.
func (a *Account) CheckPassword(password string) bool {
	return bcrypt.CompareHashAndPassword([]byte(a.PasswordHash), []byte(password)) == nil
}

// dummyHash is compared against when an account does not exist, so a
// sign-in with an unknown email takes as long as one with a wrong password:
// bcrypt at bcryptCost of "not a password of anyone's" (TestDummyHash).
// It is written out rather than made at start-up, which would cost every
// varsel command, and every serve, a quarter of a second of CPU.
const dummyHash = "$2a$12$9ZTrNemWRsTw4z2H/K465e1j0L.3NFJsxE77OhgK9UT80rpuWeD1e"

// Publisher names a staff member for the audit trail of what they
// publish: "Kari Nordmann <kari@example.com> (console)".
func Publisher(a *Account, via string) string {
	return a.Name + " <" + a.Email + "> (" + via + ")"
}
