package staff_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/varsel/varsel/notifier/jetstream"
	"github.com/varsel/varsel/notifier/staff"
)

func stores(t *testing.T) *jetstream.Conn {
	t.Helper()
	c, err := jetstream.Connect(context.Background(), jetstream.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestNewAccountChecksEverythingAtOnce(t *testing.T) {
	_, err := staff.NewAccount("not-an-address", " ", "de", "short")
	if !errors.Is(err, staff.ErrInvalidAccount) {
		t.Fatalf("got %v", err)
	}
	for _, want := range []string{"email", "name", "locale", "password is 5 characters"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if _, err := staff.NewAccount("kari@example.com", "Kari", "nb", strings.Repeat("å", 37)); err == nil || !strings.Contains(err.Error(), "at most 72") {
		t.Errorf("a password bcrypt would cut: %v", err)
	}
	a, err := staff.NewAccount(" Kari@Example.com ", "Kari Nordmann", "nb-NO", "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if a.Email != "kari@example.com" || a.Locale != "nb" || !strings.HasPrefix(a.PasswordHash, "$2a$12$") {
		t.Errorf("account = %+v", a)
	}
	if strings.Contains(a.PasswordHash, "horse") || !a.CheckPassword("correct horse battery") || a.CheckPassword("correct horse batterY") {
		t.Error("password not hashed or not checked")
	}
}

// console is a tiny app on the Manager: a sign-in form and one guarded
// form that echoes the signed-in staff member.
func console(m *staff.Manager) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(m.LoginToken(w, r))) })
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		if !m.CheckLoginToken(r) {
			http.Error(w, "no token", http.StatusForbidden)
			return
		}
		if _, err := m.SignIn(r.Context(), w, r, r.PostFormValue("email"), r.PostFormValue("password")); err != nil {
			code := http.StatusUnauthorized
			if errors.Is(err, staff.ErrTooManyAttempts) {
				code = http.StatusTooManyRequests
			}
			http.Error(w, err.Error(), code)
		}
	})
	mux.Handle("/app", m.Require("/login", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, a, _ := staff.FromContext(r.Context())
		_, _ = w.Write([]byte(a.Name + " " + s.CSRF))
	})))
	return mux
}

type browser struct {
	t      *testing.T
	base   string
	jar    []*http.Cookie
	client *http.Client
}

func (b *browser) do(method, path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest(method, b.base+path, strings.NewReader(form.Encode()))
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, c := range b.jar {
		req.AddCookie(c)
	}
	res, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := res.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	for _, c := range res.Cookies() {
		kept := b.jar[:0]
		for _, old := range b.jar {
			if old.Name != c.Name {
				kept = append(kept, old)
			}
		}
		b.jar = append(kept, c)
	}
	return res, sb.String()
}

// kariConsole runs the tiny console on a store holding Kari's account.
func kariConsole(t *testing.T, secure bool) (*jetstream.Conn, *httptest.Server) {
	t.Helper()
	c := stores(t)
	a, err := staff.NewAccount("kari@example.com", "Kari Nordmann", "nb", "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Staff.Put(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(console(staff.NewManager(c.Staff, c.Sessions, secure, slog.New(slog.DiscardHandler))))
	t.Cleanup(srv.Close)
	return c, srv
}

// newBrowser is a browser on srv that does not follow redirects.
func newBrowser(t *testing.T, srv *httptest.Server) *browser {
	return &browser{t: t, base: srv.URL, client: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func TestSignInSessionsAndCSRF(t *testing.T) {
	c, srv := kariConsole(t, true)
	ctx := context.Background()
	b := newBrowser(t, srv)

	if res, _ := b.do(http.MethodGet, "/app", nil); res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/login?next=") {
		t.Fatalf("unsigned GET: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	_, token := b.do(http.MethodGet, "/login", nil)
	if res, _ := b.do(http.MethodPost, "/login", url.Values{"email": {"kari@example.com"}, "password": {"correct horse battery"}}); res.StatusCode != http.StatusForbidden {
		t.Errorf("sign-in without the form's token: %d, want 403", res.StatusCode)
	}
	if res, _ := b.do(http.MethodPost, "/login", url.Values{"csrf": {token}, "email": {"kari@example.com"}, "password": {"wrong password!"}}); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong password: %d", res.StatusCode)
	}
	res, _ := b.do(http.MethodPost, "/login", url.Values{"csrf": {token}, "email": {"KARI@example.com"}, "password": {"correct horse battery"}})
	if res.StatusCode != 200 {
		t.Fatalf("sign-in: %d", res.StatusCode)
	}
	var session *http.Cookie
	for _, ck := range res.Cookies() {
		if ck.Name == staff.SessionCookie {
			session = ck
		}
	}
	if session == nil || !session.HttpOnly || !session.Secure || session.SameSite != http.SameSiteLaxMode {
		t.Fatalf("session cookie %+v: want HttpOnly, Secure, SameSite=Lax", session)
	}
	res, page := b.do(http.MethodGet, "/app", nil)
	if res.StatusCode != 200 || !strings.HasPrefix(page, "Kari Nordmann ") {
		t.Fatalf("signed-in GET: %d %q", res.StatusCode, page)
	}
	csrf := strings.TrimPrefix(page, "Kari Nordmann ")
	if res, _ := b.do(http.MethodPost, "/app", url.Values{"x": {"1"}}); res.StatusCode != http.StatusForbidden {
		t.Errorf("POST without CSRF token: %d, want 403", res.StatusCode)
	}
	if res, _ := b.do(http.MethodPost, "/app", url.Values{"csrf": {csrf + "x"}}); res.StatusCode != http.StatusForbidden {
		t.Errorf("POST with a wrong CSRF token: %d, want 403", res.StatusCode)
	}
	if res, _ := b.do(http.MethodPost, "/app", url.Values{"csrf": {csrf}}); res.StatusCode != 200 {
		t.Errorf("POST with the CSRF token: %d", res.StatusCode)
	}
	// Removing the account ends its sessions at once.
	if err := c.Staff.Delete(ctx, "kari@example.com"); err != nil {
		t.Fatal(err)
	}
	if res, _ := b.do(http.MethodGet, "/app", nil); res.StatusCode != http.StatusSeeOther {
		t.Errorf("GET after the account was removed: %d", res.StatusCode)
	}
	// Nor does adding it again bring them back (a cookie taken before the
	// removal worked again once the account was back), even with the same
	// password: staff add hashes it anew.
	again, err := staff.NewAccount("kari@example.com", "Kari Nordmann", "nb", "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Staff.Put(ctx, again); err != nil {
		t.Fatal(err)
	}
	if res, _ := b.do(http.MethodGet, "/app", nil); res.StatusCode != http.StatusSeeOther {
		t.Errorf("GET with the old session after the account was added again: %d, want the sign-in page", res.StatusCode)
	}
}

// TestNewPasswordEndsSessions: a session ends when its account gets a new
// password (staff add again, as security.md tells to rotate one), or is
// removed and added again; the staff member's own new sign-in works.
func TestNewPasswordEndsSessions(t *testing.T) {
	c, srv := kariConsole(t, false)
	ctx := context.Background()
	signIn := func(password string) *browser {
		b := newBrowser(t, srv)
		_, token := b.do(http.MethodGet, "/login", nil)
		if res, body := b.do(http.MethodPost, "/login", url.Values{"csrf": {token}, "email": {"kari@example.com"}, "password": {password}}); res.StatusCode != 200 {
			t.Fatalf("sign-in: %d %s", res.StatusCode, body)
		}
		return b
	}
	stolen, other := signIn("correct horse battery"), signIn("correct horse battery")
	if res, _ := stolen.do(http.MethodGet, "/app", nil); res.StatusCode != 200 {
		t.Fatalf("signed in: %d", res.StatusCode)
	}
	rotated, err := staff.NewAccount("kari@example.com", "Kari Nordmann", "nb", "a brand new passphrase")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Staff.Put(ctx, rotated); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string]*browser{"first": stolen, "second": other} {
		if res, _ := b.do(http.MethodGet, "/app", nil); res.StatusCode != http.StatusSeeOther {
			t.Errorf("%s session after a new password: %d, want the sign-in page", name, res.StatusCode)
		}
	}
	fresh := signIn("a brand new passphrase")
	if res, _ := fresh.do(http.MethodGet, "/app", nil); res.StatusCode != 200 {
		t.Errorf("sign-in with the new password: %d", res.StatusCode)
	}
}

func TestSignInIsRateLimited(t *testing.T) {
	c := stores(t)
	m := staff.NewManager(c.Staff, c.Sessions, false, slog.New(slog.DiscardHandler))
	limited := 0
	for i := range 8 {
		req := httptest.NewRequest(http.MethodPost, "/login", nil)
		req.RemoteAddr = "192.0.2.1:1234"
		_, err := m.SignIn(context.Background(), httptest.NewRecorder(), req, "nobody@example.com", "guess number "+string(rune('a'+i)))
		if errors.Is(err, staff.ErrTooManyAttempts) {
			limited++
		} else if !errors.Is(err, staff.ErrBadCredentials) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if limited != 3 {
		t.Errorf("%d of 8 attempts on one account refused, want the 3 after the first 5", limited)
	}
}

// TestWrongPasswordsElsewhereDoNotLockTheOwnerOut: failures from one
// network limit that network, not the account's owner on another (five
// wrong passwords from anywhere refused the right one from everywhere);
// a right password does not use the budget up.
func TestWrongPasswordsElsewhereDoNotLockTheOwnerOut(t *testing.T) {
	c := stores(t)
	a, err := staff.NewAccount("ops@example.com", "Ops", "en", "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Staff.Put(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	m := staff.NewManager(c.Staff, c.Sessions, false, slog.New(slog.DiscardHandler))
	from := func(addr, password string) error {
		req := httptest.NewRequest(http.MethodPost, "/login", nil)
		req.RemoteAddr = addr
		_, err := m.SignIn(context.Background(), httptest.NewRecorder(), req, "ops@example.com", password)
		return err
	}
	for i := range 6 {
		err := from("198.51.100.7:999", "not the password "+string(rune('a'+i)))
		if want := staff.ErrBadCredentials; i == 5 {
			want = staff.ErrTooManyAttempts
			if !errors.Is(err, want) {
				t.Errorf("attacker's attempt %d: %v, want %v", i+1, err, want)
			}
		} else if !errors.Is(err, want) {
			t.Errorf("attacker's attempt %d: %v, want %v", i+1, err, want)
		}
	}
	for i := range 7 {
		if err := from("192.0.2.10:1234", "correct horse battery"); err != nil {
			t.Fatalf("the owner's sign-in %d from another network: %v", i+1, err)
		}
	}
	// Tries at once get no more than the budget: each takes its token
	// before its password is checked (a look at the budget let ten
	// parallel guesses all through).
	var wg sync.WaitGroup
	var checked atomic.Int32
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errors.Is(from(fmt.Sprintf("203.0.113.%d:999", 1), "parallel guess "+string(rune('a'+i))), staff.ErrBadCredentials) {
				checked.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := checked.Load(); n > 5 {
		t.Errorf("%d of 10 parallel guesses from one network were checked, want at most 5", n)
	}
}
