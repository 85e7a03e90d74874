// Package console is the support staff's web console: sign in, run an
// incident or maintenance in both languages side by side, see exactly what
// readers will get before publishing, publish holding updates in one click,
// write and send the apology letter, and follow every broadcast until it is
// done. It is server-rendered html/template in the staff member's language
// (en or nb), one handler per file; a little script only updates the
// progress view. Sessions and CSRF tokens come from notifier/staff, which
// the staff-facing API shares.
package console

import (
	"context"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/varsel/varsel/notifier"
	"github.com/varsel/varsel/notifier/staff"
	"github.com/varsel/varsel/templates"
)

// Renderer is what the console needs of notifier/render: previews of
// unpublished events and the fixed phrases and time formats of its pages.
type Renderer interface {
	Preview(ev *notifier.Event, inc *notifier.IncidentState, sub *notifier.Subscriber, ch notifier.ChannelName) (*notifier.Message, error)
	T(locale, messageID string, data map[string]any) string
	FormatTime(t time.Time, locale, timezone string) string
	Text(l notifier.Localized, locale string) (text, lang string)
}

// Config is the console's settings.
type Config struct {
	PublicURL     string // VARSEL_PUBLIC_URL, for links
	DefaultLocale string // VARSEL_DEFAULT_LOCALE: readers without a language
	Timezone      string // VARSEL_TIMEZONE: the zone times are typed and shown in
	// Site names the components (VARSEL_SITE_FILE); nil names them by id.
	Site *notifier.Site
}

// Deps are the parts the console uses.
type Deps struct {
	Staff    *staff.Manager
	Status   notifier.StatusReader
	Operator notifier.Operator
	// Planner counts the audience of an event before it is published.
	Planner  *notifier.Planner
	Renderer Renderer
	// SendTest sends a test of a letter to the signed-in staff member;
	// nil turns the test send off.
	SendTest func(ctx context.Context, to string, m *notifier.Message) error
	Logger   *slog.Logger
}

type console struct {
	cfg   Config
	deps  Deps
	pages *template.Template
	zone  *time.Location
	log   *slog.Logger
	now   func() time.Time
}

// Paths of the console.
const (
	Prefix    = "/console"
	loginPath = Prefix + "/login"
)

// New returns the console's handler for every path under /console.
func New(cfg Config, deps Deps) (http.Handler, error) {
	zone, err := time.LoadLocation(cfg.Timezone)
	if err != nil {
		return nil, fmt.Errorf("console time zone %q: %w", cfg.Timezone, err)
	}
	c := &console{cfg: cfg, deps: deps, zone: zone, log: deps.Logger.With("component", "console"), now: time.Now}
	c.pages, err = template.New("").Funcs(funcs).ParseFS(templates.ConsoleFS, "console/*.html")
	if err != nil {
		return nil, fmt.Errorf("parse console templates: %w", err)
	}
	static, err := fs.Sub(templates.ConsoleFS, "console/static")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	guard := func(h http.HandlerFunc) http.Handler {
		inner := deps.Staff.Require(loginPath, h)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				if _, _, ok := deps.Staff.Current(r); !ok {
					// A form sent after the session ended (12 h, or a new
					// password): say so in the reader's language, with the
					// way back to the text typed (it was a bare English 401).
					c.problem(w, c.newPage(r, "ConsoleSignIn"), http.StatusUnauthorized, c.newPage(r, "").T("ConsoleSessionEnded"))
					return
				}
			}
			inner.ServeHTTP(w, r)
		})
	}
	mux.HandleFunc("GET "+loginPath, c.loginForm)
	mux.HandleFunc("POST "+loginPath, c.login)
	mux.Handle("POST "+Prefix+"/logout", guard(c.logout))
	mux.Handle("GET "+Prefix+"/static/", http.StripPrefix(Prefix+"/static/", http.FileServerFS(static)))
	mux.Handle("GET "+Prefix+"/{$}", guard(c.dashboard))
	mux.Handle("GET "+Prefix+"/incidents/new", guard(c.newIncident))
	mux.Handle("GET "+Prefix+"/incidents/{id}", guard(c.editIncident))
	mux.Handle("POST "+Prefix+"/incidents/preview", guard(c.previewIncident))
	mux.Handle("POST "+Prefix+"/incidents/{id}/holding", guard(c.holding))
	mux.Handle("POST "+Prefix+"/publish", guard(c.publish))
	mux.Handle("GET "+Prefix+"/letters/new", guard(c.newLetter))
	mux.Handle("POST "+Prefix+"/letters/preview", guard(c.previewLetter))
	mux.Handle("GET "+Prefix+"/progress/{event}", guard(c.progress))
	mux.Handle("POST "+Prefix+"/deliveries/{id}/retry", guard(c.retry))
	mux.Handle("GET "+Prefix, http.RedirectHandler(Prefix+"/", http.StatusMovedPermanently))
	return consoleHeaders(mux), nil
}

// consoleHeaders keeps the console out of frames and caches, and its
// scripts to its own.
func consoleHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; object-src 'none'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

var funcs = template.FuncMap{
	"join":     strings.Join,
	"statuses": statusesFor,
	// pv hands the preview block the page and the preview.
	"pv": func(p Page, v *preview) previewArgs { return previewArgs{P: p, V: v} },
}

type previewArgs struct {
	P Page
	V *preview
}

// Page is what every console page sees: who is signed in, in which
// language, and the form token.
type Page struct {
	Locale  string
	Account *staff.Account
	CSRF    string
	Title   string
	Zone    string
	Notice  string
	Error   string
	// Back is the console page the request came from (its Referer, when
	// that is this console), for the error page's way back.
	Back string
	c    *console
}

// T is a fixed phrase in the staff member's language, with key/value pairs.
func (p Page) T(id string, kv ...any) string {
	data := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		data[kv[i].(string)] = kv[i+1]
	}
	if len(data) == 0 {
		data = nil
	}
	return p.c.deps.Renderer.T(p.Locale, id, data)
}

// Time formats t for the staff member, in the console's zone.
func (p Page) Time(t time.Time) string {
	return p.c.deps.Renderer.FormatTime(t, p.Locale, p.c.cfg.Timezone)
}

// Text picks the staff member's language from free text.
func (p Page) Text(l notifier.Localized) string {
	s, _ := p.c.deps.Renderer.Text(l, p.Locale)
	return s
}

// EventType, Channel, Risk, RestoreState and Next name a form's choices in
// the staff member's language.
func (p Page) EventType(t notifier.EventType) string {
	return p.T("ConsoleType" + camel(strings.ReplaceAll(string(t), ".", "_")))
}
func (p Page) Channel(ch notifier.ChannelName) string {
	return p.T("ConsoleChannel" + camel(string(ch)))
}
func (p Page) Risk(r notifier.Risk) string {
	return p.T("ConsoleRisk" + cmpOr(camel(string(r)), "Unstated"))
}
func (p Page) RestoreState(s notifier.RestoreState) string {
	return p.T("ConsoleRestore" + cmpOr(camel(string(s)), "None"))
}
func (p Page) Next(choice string) string { return p.T("ConsoleNext" + camel(choice)) }

// Status and Impact name them in the staff member's language.
func (p Page) Status(s notifier.Status) string { return p.T("Status" + camel(string(s))) }
func (p Page) Impact(i notifier.Impact) string { return p.T("Impact" + camel(string(i))) }

func camel(s string) string {
	parts := strings.Split(s, "_")
	for i, part := range parts {
		if part != "" {
			parts[i] = strings.ToUpper(part[:1]) + part[1:]
		}
	}
	return strings.Join(parts, "")
}

// newPage returns the page of a request that passed the session guard.
func (c *console) newPage(r *http.Request, titleID string) Page {
	// Before sign-in, the browser's language; after, the account's.
	p := Page{Locale: notifier.RequestLanguage(r.URL.Query().Get("lang"), r.Header.Get("Accept-Language"), c.cfg.DefaultLocale), Zone: c.cfg.Timezone, c: c}
	if s, a, ok := staff.FromContext(r.Context()); ok {
		p.Account, p.CSRF, p.Locale = a, s.CSRF, a.Locale
	}
	if p.Locale == "" {
		p.Locale = "en"
	}
	if ref, err := url.Parse(r.Referer()); err == nil && ref.Host == r.Host && strings.HasPrefix(ref.Path, Prefix+"/") && ref.Path != r.URL.Path {
		p.Back = (&url.URL{Path: ref.Path, RawQuery: ref.RawQuery}).String()
	}
	if titleID != "" {
		p.Title = p.T(titleID)
	}
	return p
}

func (c *console) render(w http.ResponseWriter, name string, v any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := c.pages.ExecuteTemplate(w, name, v); err != nil {
		c.log.Error("render console Page", "Page", name, "error", err)
	}
}

// who names the signed-in staff member for the audit trail.
func who(r *http.Request) string {
	_, a, ok := staff.FromContext(r.Context())
	if !ok {
		return ""
	}
	return staff.Publisher(a, "console")
}

func staffAccount(r *http.Request) (*staff.Session, *staff.Account, bool) {
	return staff.FromContext(r.Context())
}
