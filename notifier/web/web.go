// Package web serves Varsel over HTTP: the public status page, incident
// pages and feeds, self-service sign-up with double opt-in, the admin API,
// unsubscribe links, Twilio callbacks, and
// the operators' metrics and health checks.
package web

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/varsel/varsel/notifier"
	"github.com/varsel/varsel/notifier/ratelimit"
	"github.com/varsel/varsel/notifier/staff"
)

// Config is the HTTP layer's settings.
type Config struct {
	PublicURL       string // VARSEL_PUBLIC_URL
	AdminToken      string // VARSEL_ADMIN_TOKEN; empty refuses the admin API
	DefaultLocale   string // VARSEL_DEFAULT_LOCALE
	DefaultTimezone string // VARSEL_TIMEZONE
	// WebhookAllowPrivate lets the admin API add webhook targets on
	// private addresses (VARSEL_WEBHOOK_ALLOW_PRIVATE).
	WebhookAllowPrivate bool
	Version             string
	// Site names the page and its components (VARSEL_SITE_FILE); nil
	// names them by their ids.
	Site *notifier.Site
}

// Localizer is what pages need of the renderer.
type Localizer interface {
	T(locale, messageID string, data map[string]any) string
	FormatTime(t time.Time, locale, timezone string) string
	Text(l notifier.Localized, locale string) (text, lang string)
	// DataStatement returns the sentences of a data statement, in the
	// reader's language and zone; none for nil.
	DataStatement(d *notifier.DataSafety, locale, timezone string) []string
	// ConfirmSubscription renders the email with a sign-up's confirmation
	// link; cancelURL is its List-Unsubscribe one-click target.
	ConfirmSubscription(email, locale, confirmURL, cancelURL string) (*notifier.Message, error)
}

// Deps are the parts the handlers use. The web layer knows no broker: the
// pages read Status, which keeps answering while the store is away; the
// admin API and the subscriber links use Subscribers and Operator.
type Deps struct {
	Status      notifier.StatusReader
	Subscribers notifier.SubscriberStore
	Operator    notifier.Operator
	// Staff lets signed-in staff use the API paths that take a bearer
	// token or a staff session; nil means the token only.
	Staff     *staff.Manager
	Localizer Localizer
	Tokens    *notifier.Tokens
	Registry  *prometheus.Registry
	// TwilioInbound and TwilioStatus serve the Twilio callbacks; nil when
	// Twilio is not configured (the paths then answer 404).
	TwilioInbound, TwilioStatus http.Handler
	// CheckWebhookTarget refuses webhook URLs Varsel must not call
	// (private addresses); nil skips the check.
	CheckWebhookTarget func(ctx context.Context, rawURL string) error
	// SendEmail sends a sign-up's confirmation email to the address to;
	// nil turns sign-up off (POST /subscribe answers 503).
	SendEmail func(ctx context.Context, to string, m *notifier.Message) error
}

type server struct {
	cfg    Config
	deps   Deps
	logger *slog.Logger
	now    func() time.Time
	// signupIP and signupTo limit confirmation emails per client network
	// and per recipient address.
	signupIP, signupTo *ratelimit.KeyLimiter
}

// New returns the handler for every path in DESIGN.md's HTTP table.
func New(cfg Config, deps Deps, logger *slog.Logger) http.Handler {
	return newServer(cfg, deps, logger).handler()
}

func newServer(cfg Config, deps Deps, logger *slog.Logger) *server {
	return &server{cfg: cfg, deps: deps, logger: logger.With("component", "http"), now: time.Now,
		signupIP: ratelimit.New(signupIPEvery, signupIPBurst, signupKeys),
		signupTo: ratelimit.New(signupToEvery, signupToBurst, signupKeys)}
}

// handler routes every path.
func (s *server) handler() http.Handler {
	deps := s.deps
	mux := http.NewServeMux()
	// The public pages, feeds and JSON, with ETag, Last-Modified, 304s
	// and Vary (cache.go); the feeds and JSON readable by any site (CORS).
	page := cacheOpts{negotiated: true, modified: s.statusModified}
	mux.Handle("GET /{$}", s.cached(page, s.statusPage))
	mux.Handle("GET /incidents/{id}", s.cached(page, s.incidentPage))
	mux.Handle("GET /letters/{id}", s.cached(page, s.letterPage))
	mux.Handle("GET /feed.atom", s.cached(cacheOpts{negotiated: true, cors: true, modified: s.statusModified}, s.feed))
	mux.HandleFunc("OPTIONS /feed.atom", preflight)
	mux.Handle("GET /static/", staticFiles())
	mux.Handle("GET /api/v1/status", s.cached(cacheOpts{cors: true, modified: s.statusJSONModified}, s.statusJSON))
	mux.HandleFunc("OPTIONS /api/v1/status", preflight)
	mux.Handle("GET /api/v1/openapi.json", s.cached(cacheOpts{cors: true, cacheControl: "public, max-age=3600"}, serveOpenAPI))
	mux.HandleFunc("OPTIONS /api/v1/openapi.json", preflight)

	mux.Handle("GET /api/v1/subscribers", s.admin(s.listSubscribers))
	mux.Handle("POST /api/v1/subscribers", s.admin(s.putSubscriber))
	mux.Handle("GET /api/v1/subscribers/{id}", s.admin(s.getSubscriber))
	mux.Handle("PUT /api/v1/subscribers/{id}", s.admin(s.putSubscriber))
	mux.Handle("DELETE /api/v1/subscribers/{id}", s.admin(s.deleteSubscriber))
	mux.Handle("POST /api/v1/subscribers/{id}/enable", s.admin(s.enableChannel))
	mux.Handle("POST /api/v1/events", s.admin(s.postEvent))
	mux.Handle("GET /api/v1/deliveries", s.admin(s.listDeliveries))
	mux.Handle("POST /api/v1/deliveries/{id}/retry", s.admin(s.retryDelivery))
	mux.Handle("POST /api/v1/incidents/{id}/holding", s.adminOrStaff(s.holding))
	mux.Handle("GET /api/v1/progress/{event}", s.adminOrStaff(s.progress))

	mux.HandleFunc("GET /subscribe", s.subscribeForm)
	mux.HandleFunc("POST /subscribe", s.subscribe)
	mux.HandleFunc("GET /confirm/{token}", s.confirm)
	mux.HandleFunc("GET /subscribe/cancel/{token}", s.cancelSignupForm)
	mux.HandleFunc("POST /subscribe/cancel/{token}", s.cancelSignup)

	mux.HandleFunc("GET /unsubscribe/{token}", s.unsubscribeForm)
	mux.HandleFunc("POST /unsubscribe/{token}", s.unsubscribe)
	mux.HandleFunc("GET /preferences/{token}", s.preferencesForm)
	mux.HandleFunc("POST /preferences/{token}", s.savePreferences)

	if deps.TwilioInbound != nil {
		mux.Handle("POST /twilio/inbound", deps.TwilioInbound)
	}
	if deps.TwilioStatus != nil {
		mux.Handle("POST /twilio/status", deps.TwilioStatus)
	}

	// /metrics is not here: serve has its own listener for it
	// (VARSEL_METRICS_ADDR), away from the public one.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", s.ready)
	// Anything else: a page in the reader's language, not Go's plain text.
	mux.Handle("/", s.cached(cacheOpts{negotiated: true}, s.notFound))
	return SecurityHeaders(mux)
}

// ContentSecurityPolicy is the policy of every response: scripts, styles,
// images and connections from Varsel itself only, no inline script or
// style, no plugins, no framing by any site, forms posting only to Varsel.
// The pages' style sheet is /static/status.css and the console's script
// /console/static/progress.js for that reason.
const ContentSecurityPolicy = "default-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"

// SecurityHeaders sets the security headers on every response of h:
// ContentSecurityPolicy, X-Frame-Options DENY (for browsers without
// frame-ancestors), X-Content-Type-Options nosniff (feeds and JSON are
// never taken for HTML or script) and Referrer-Policy same-origin (token
// links are not sent to other sites; the console's own form posts keep
// their Origin). A handler inside may set a stricter policy of its own.
func SecurityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", ContentSecurityPolicy)
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		h.ServeHTTP(w, r)
	})
}

func (s *server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.deps.Operator.Ready(ctx); err != nil {
		http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

// admin guards a handler with the bearer token. With no token configured
// the admin API is refused outright.
func (s *server) admin(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.AdminToken == "" {
			writeError(w, http.StatusForbidden, "the admin API is off: set VARSEL_ADMIN_TOKEN")
			return
		}
		// The auth scheme is case-insensitive (RFC 9110, section 11.1).
		scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		ok = ok && strings.EqualFold(scheme, "Bearer")
		got = strings.TrimSpace(got)
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.AdminToken)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="varsel"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		h(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string, details ...notifier.FieldError) {
	body := map[string]any{"error": msg}
	if len(details) > 0 {
		body["problems"] = details
	}
	writeJSON(w, status, body)
}
