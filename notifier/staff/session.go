package staff

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/varsel/varsel/notifier"
	"github.com/varsel/varsel/notifier/ratelimit"
)

// Session is a signed-in staff member's session.
type Session struct {
	Email string `json:"email"`
	// Credential is credentialOf the account's password hash at sign-in:
	// a new password (staff add again) or an account removed and added
	// again has another, and ends the session.
	Credential string    `json:"credential"`
	CSRF       string    `json:"csrf"` // the token every form of this session carries
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// SessionStore keeps sessions by key (a hash of the cookie's value, so the
// store never holds what the browser presents). Every instance shares it.
type SessionStore interface {
	// Get returns the session or an error wrapping notifier.ErrNotFound.
	Get(ctx context.Context, key string) (*Session, error)
	Put(ctx context.Context, key string, s *Session) error
	Delete(ctx context.Context, key string) error
}

// Names of the cookies and the form field.
const (
	SessionCookie = "varsel_session"
	// loginCookie carries the sign-in form's CSRF token before there is a
	// session (double submit).
	loginCookie = "varsel_login"
	// CSRFField is the hidden field of every form; scripts send the
	// token in the X-CSRF-Token header instead.
	CSRFField  = "csrf"
	CSRFHeader = "X-CSRF-Token"
)

// DefaultLifetime is how long a session lasts from sign-in.
const DefaultLifetime = 12 * time.Hour

// Sign-in limits. Every attempt counts against the client's network.
// Failures count against the account from that network, so one network
// cannot lock the owner out from another (the limit was the account's
// alone: five wrong passwords from anywhere refused the right one from
// everywhere), and against the account from everywhere, at a rate no
// single network's failures reach, which bounds guessing from many.
const (
	attemptsPerIPEvery         = 30 * time.Second
	attemptsPerIPBurst         = 10
	failuresPerAccountNetEvery = 2 * time.Minute
	failuresPerAccountNetBurst = 5
	failuresPerAccountEvery    = 30 * time.Second
	failuresPerAccountBurst    = 50
	limiterKeys                = 10000
)

// Manager signs staff in and out and guards handlers with sessions and
// CSRF tokens.
type Manager struct {
	accounts AccountStore
	sessions SessionStore
	// secure marks cookies Secure: the console is served over https.
	secure   bool
	lifetime time.Duration
	logger   *slog.Logger
	now      func() time.Time
	perIP    *ratelimit.KeyLimiter
	// failures per account and client network, and per account.
	failedHere, failed *ratelimit.KeyLimiter
}

// NewManager returns a Manager. secure sets the Secure flag on cookies; set
// it whenever the console is reached over https (VARSEL_PUBLIC_URL https).
func NewManager(accounts AccountStore, sessions SessionStore, secure bool, logger *slog.Logger) *Manager {
	return &Manager{accounts: accounts, sessions: sessions, secure: secure, lifetime: DefaultLifetime,
		logger: logger.With("component", "staff"), now: time.Now,
		perIP:      ratelimit.New(attemptsPerIPEvery, attemptsPerIPBurst, limiterKeys),
		failedHere: ratelimit.New(failuresPerAccountNetEvery, failuresPerAccountNetBurst, limiterKeys),
		failed:     ratelimit.New(failuresPerAccountEvery, failuresPerAccountBurst, limiterKeys)}
}

// Accounts returns the account store.
func (m *Manager) Accounts() AccountStore { return m.accounts }

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func sessionKey(cookie string) string {
	sum := sha256.Sum256([]byte(cookie))
	return hex.EncodeToString(sum[:])
}

// credentialOf names an account's password hash without holding it: every
// NewAccount salts anew, so each password set has its own.
func credentialOf(a *Account) string {
	sum := sha256.Sum256([]byte("varsel session credential\x00" + a.PasswordHash))
	return hex.EncodeToString(sum[:16])
}

// SignIn checks email and password and, when they are right, starts a
// session and sets its cookie. Failures say nothing about which part was
// wrong: ErrBadCredentials, or ErrTooManyAttempts once the client network
// or the account has tried too often.
func (m *Manager) SignIn(ctx context.Context, w http.ResponseWriter, r *http.Request, email, password string) (*Account, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	now := m.now()
	client := ratelimit.ClientKey(r)
	here := email + " " + client
	// Each try takes its failure's token first, so tries at once cannot
	// all pass a look at the budget; a right password gives it back.
	if !m.perIP.Allow(client, now) {
		m.logger.Warn("sign-in refused: too many attempts", "account", notifier.MaskEmail(email))
		return nil, ErrTooManyAttempts
	}
	if !m.failedHere.Allow(here, now) {
		m.logger.Warn("sign-in refused: too many attempts", "account", notifier.MaskEmail(email))
		return nil, ErrTooManyAttempts
	}
	if !m.failed.Allow(email, now) {
		m.failedHere.Refund(here, now)
		m.logger.Warn("sign-in refused: too many attempts", "account", notifier.MaskEmail(email))
		return nil, ErrTooManyAttempts
	}
	failed := func() (*Account, error) {
		m.logger.Info("sign-in failed", "account", notifier.MaskEmail(email))
		return nil, ErrBadCredentials
	}
	a, err := m.accounts.Get(ctx, email)
	if errors.Is(err, notifier.ErrNotFound) {
		_ = bcryptCompareDummy(password)
		return failed()
	}
	if err != nil {
		m.failedHere.Refund(here, now) // not a failure of the password
		m.failed.Refund(email, now)
		return nil, fmt.Errorf("read staff account: %w", err)
	}
	if !a.CheckPassword(password) {
		return failed()
	}
	m.failedHere.Refund(here, now)
	m.failed.Refund(email, now)
	cookie := randomToken()
	s := &Session{Email: a.Email, Credential: credentialOf(a), CSRF: randomToken(), CreatedAt: now.UTC(), ExpiresAt: now.Add(m.lifetime).UTC()}
	if err := m.sessions.Put(ctx, sessionKey(cookie), s); err != nil {
		return nil, fmt.Errorf("store session: %w", err)
	}
	http.SetCookie(w, m.cookie(SessionCookie, cookie, s.ExpiresAt))
	m.logger.Info("signed in", "account", notifier.MaskEmail(a.Email))
	return a, nil
}

func bcryptCompareDummy(password string) bool {
	a := Account{PasswordHash: dummyHash}
	return a.CheckPassword(password)
}

func (m *Manager) cookie(name, value string, expires time.Time) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: "/", Expires: expires, HttpOnly: true,
		Secure: m.secure, SameSite: http.SameSiteLaxMode}
}

// SignOut ends the request's session, if any, and clears its cookie.
func (m *Manager) SignOut(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(SessionCookie); err == nil {
		if err := m.sessions.Delete(r.Context(), sessionKey(c.Value)); err != nil {
			m.logger.Warn("sign out: session not deleted", "error", err)
		}
	}
	http.SetCookie(w, m.cookie(SessionCookie, "", time.Unix(1, 0)))
}

// Current returns the request's session and account, if it has a valid one.
func (m *Manager) Current(r *http.Request) (*Session, *Account, bool) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return nil, nil, false
	}
	s, err := m.sessions.Get(r.Context(), sessionKey(c.Value))
	if err != nil || m.now().After(s.ExpiresAt) {
		return nil, nil, false
	}
	a, err := m.accounts.Get(r.Context(), s.Email)
	if err != nil {
		// Removed staff lose their sessions at once.
		return nil, nil, false
	}
	if subtle.ConstantTimeCompare([]byte(s.Credential), []byte(credentialOf(a))) != 1 {
		// The password changed, or the account was removed and added
		// again, since this session began (or it began before sessions
		// named their credential): it ends.
		if err := m.sessions.Delete(r.Context(), sessionKey(c.Value)); err != nil && !errors.Is(err, notifier.ErrNotFound) {
			m.logger.Warn("ended session not deleted", "error", err)
		}
		return nil, nil, false
	}
	return s, a, true
}

type ctxKey struct{}

type signedIn struct {
	session *Session
	account *Account
}

// FromContext returns the signed-in staff member of a request that passed
// Require or RequireAPI.
func FromContext(ctx context.Context) (*Session, *Account, bool) {
	v, ok := ctx.Value(ctxKey{}).(signedIn)
	return v.session, v.account, ok
}

// Require lets only signed-in staff through, sending others to loginPath
// (with the page they wanted in ?next=); for POST and other unsafe methods
// it also checks the CSRF token (403 without it).
func (m *Manager) Require(loginPath string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, a, ok := m.Current(r)
		if !ok {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				http.Redirect(w, r, loginPath+"?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			http.Error(w, "sign in first", http.StatusUnauthorized)
			return
		}
		if !safeMethod(r.Method) && !validCSRF(r, s.CSRF) {
			m.logger.Warn("request refused: missing or wrong CSRF token", "path", r.URL.Path, "account", notifier.MaskEmail(a.Email))
			http.Error(w, "this form has expired or was not sent from the console: reload the page and try again", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, signedIn{s, a})))
	})
}

// Session reports whether the request carries a valid session, and for an
// unsafe method a valid CSRF token, for API paths that take a bearer token
// or a staff session.
func (m *Manager) Session(r *http.Request) (*Account, bool) {
	s, a, ok := m.Current(r)
	if !ok || !safeMethod(r.Method) && !validCSRF(r, s.CSRF) {
		return nil, false
	}
	return a, true
}

func safeMethod(method string) bool {
	return method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
}

func validCSRF(r *http.Request, want string) bool {
	got := r.Header.Get(CSRFHeader)
	if got == "" {
		got = r.PostFormValue(CSRFField)
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// LoginToken returns the CSRF token for the sign-in form, setting its
// cookie when the browser has none yet (double submit: there is no session
// to hold it).
func (m *Manager) LoginToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(loginCookie); err == nil && len(c.Value) >= 32 {
		return c.Value
	}
	tok := randomToken()
	http.SetCookie(w, m.cookie(loginCookie, tok, m.now().Add(time.Hour)))
	return tok
}

// CheckLoginToken reports whether a sign-in POST carries the token its
// cookie holds.
func (m *Manager) CheckLoginToken(r *http.Request) bool {
	c, err := r.Cookie(loginCookie)
	return err == nil && validCSRF(r, c.Value)
}
