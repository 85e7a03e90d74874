package console

import (
	"errors"
	"net/http"
	"strings"

	"github.com/varsel/varsel/notifier/staff"
)

type loginView struct {
	Page
	Email, Next string
}

// loginForm shows the sign-in form: GET /console/login.
func (c *console) loginForm(w http.ResponseWriter, r *http.Request) {
	p := c.newPage(r, "ConsoleSignIn")
	if _, a, ok := c.deps.Staff.Current(r); ok {
		p.Locale = a.Locale
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	p.CSRF = c.deps.Staff.LoginToken(w, r)
	c.render(w, "login.html", loginView{Page: p, Next: safeNext(r.URL.Query().Get("next"))})
}

// login signs staff in: POST /console/login.
func (c *console) login(w http.ResponseWriter, r *http.Request) {
	p := c.newPage(r, "ConsoleSignIn")
	email, next := r.PostFormValue("email"), safeNext(r.PostFormValue("next"))
	if !c.deps.Staff.CheckLoginToken(r) {
		// A sign-in page left open past its token: the form again, in the
		// reader's language, with the address kept (it was a bare English
		// 403 and the address was gone).
		p.Error, p.CSRF = p.T("ConsoleLoginExpired"), c.deps.Staff.LoginToken(w, r)
		w.WriteHeader(http.StatusForbidden)
		c.render(w, "login.html", loginView{Page: p, Email: email, Next: next})
		return
	}
	a, err := c.deps.Staff.SignIn(r.Context(), w, r, email, r.PostFormValue("password"))
	if err == nil {
		c.log.Info("staff signed in to the console", "staff", a.Name)
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	status := http.StatusUnauthorized
	switch {
	case errors.Is(err, staff.ErrTooManyAttempts):
		p.Error, status = p.T("ConsoleTooManyAttempts"), http.StatusTooManyRequests
	case errors.Is(err, staff.ErrBadCredentials):
		p.Error = p.T("ConsoleBadCredentials")
	default:
		c.log.Error("sign-in", "error", err)
		p.Error, status = p.T("ConsoleUnavailable"), http.StatusServiceUnavailable
	}
	p.CSRF = c.deps.Staff.LoginToken(w, r)
	w.WriteHeader(status)
	c.render(w, "login.html", loginView{Page: p, Email: email, Next: next})
}

// logout ends the session: POST /console/logout.
func (c *console) logout(w http.ResponseWriter, r *http.Request) {
	c.deps.Staff.SignOut(w, r)
	http.Redirect(w, r, loginPath, http.StatusSeeOther)
}

// safeNext keeps a redirect after sign-in inside the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix+"/") || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
		return Prefix + "/"
	}
	return next
}
