package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/varsel/varsel/channels/email"
	"github.com/varsel/varsel/channels/outbox"
	"github.com/varsel/varsel/channels/sms"
	"github.com/varsel/varsel/channels/webhook"
	"github.com/varsel/varsel/notifier"
	"github.com/varsel/varsel/notifier/console"
	"github.com/varsel/varsel/notifier/jetstream"
	"github.com/varsel/varsel/notifier/render"
	"github.com/varsel/varsel/notifier/staff"
	"github.com/varsel/varsel/notifier/web"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// service is one running Varsel: NATS, pipeline and HTTP.
type service struct {
	cfg      Config
	conn     *jetstream.Conn
	runner   *jetstream.Runner
	renderer *render.Renderer
	http     *http.Server
	listener net.Listener
	// metricsListener serves /metrics apart from the public listener
	// (VARSEL_METRICS_ADDR); nil when turned off.
	metricsListener net.Listener
	metricsHTTP     *http.Server
	// site names the page and its components (VARSEL_SITE_FILE); nil
	// names them by their ids.
	site *notifier.Site
	// mirror keeps the static mirror in VARSEL_EXPORT_DIR; nil without.
	mirror  *web.Mirror
	lock    *jetstream.DirLock
	closers []func() error
	logger  *slog.Logger
	sinks   map[notifier.ChannelName]string // "outbox" or the provider, for the start-up log
	// email is the email channel the pipeline uses (SMTP or the outbox);
	// notices to subscribers about their own settings go out through it.
	email notifier.Channel
	// sms is the SMS channel (Twilio or the outbox); sign-up codes go
	// out through it.
	sms notifier.Channel
	// notices tracks notices still being sent, so shutdown waits for them.
	notices sync.WaitGroup
	// reminders of promised updates, and where they go; nil without staff
	// addresses or a staff webhook.
	reminders       *jetstream.Reminders
	reminderTargets []jetstream.ReminderTarget
	// metrics and registry are the service's Prometheus metrics.
	metrics  *notifier.Metrics
	registry *prometheus.Registry
}

// start connects, wires every part and starts serving HTTP; the pipeline
// runs when run is called.
func start(ctx context.Context, cfg Config, logger *slog.Logger) (*service, error) {
	s := &service{cfg: cfg, logger: logger, sinks: map[notifier.ChannelName]string{}}
	var err error
	// One process per data directory, before anything touches the store;
	// then the HTTP address, so a taken port is reported at once.
	if s.lock, err = jetstream.LockDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	s.listener, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("VARSEL_HTTP_ADDR %s: %w (is another varsel running? stop it or choose another address)", cfg.HTTPAddr, err)
	}
	natsURL, creds := cfg.NATSURL, jetstream.Credentials{}
	if cfg.NATSContext != "" {
		var ctxURL string
		if ctxURL, creds, err = jetstream.LoadContext(cfg.NATSContext); err != nil {
			s.close()
			return nil, fmt.Errorf("VARSEL_NATS_CONTEXT: %w", err)
		}
		if natsURL == "" {
			natsURL = ctxURL
		}
	}
	if cfg.MetricsAddr != "" {
		if s.metricsListener, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			s.close()
			return nil, fmt.Errorf("VARSEL_METRICS_ADDR %s: %w (is another varsel running? choose another address, or empty to turn metrics off)", cfg.MetricsAddr, err)
		}
	}
	s.conn, err = jetstream.Connect(ctx, jetstream.Config{URL: natsURL, Listen: cfg.NATSListen, DataDir: cfg.DataDir,
		Replicas: cfg.NATSReplicas, DeliveryRetention: cfg.DeliveryRetention, Credentials: creds,
		EncryptionKey: cfg.EncryptionKey, PreviousEncryptionKey: cfg.EncryptionKeyPrev}, logger)
	if err != nil {
		s.close()
		return nil, err
	}
	secret, err := s.conn.Secret(ctx, cfg.Secret)
	if err != nil {
		s.close()
		return nil, err
	}
	tokens, err := notifier.NewTokens(secret)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("VARSEL_SECRET: %w", err)
	}
	s.site = cfg.site
	if cfg.SiteFile != "" {
		if s.site, err = notifier.LoadSite(cfg.SiteFile); err != nil {
			s.close()
			return nil, fmt.Errorf("VARSEL_SITE_FILE: %w", err)
		}
	}
	s.renderer, err = render.New(render.Config{PublicURL: cfg.PublicURL, DefaultLocale: cfg.DefaultLocale,
		DefaultTimezone: cfg.Timezone, TemplatesDir: cfg.TemplatesDir, Site: s.site}, tokens, logger)
	if err != nil {
		s.close()
		return nil, err
	}
	channels, err := s.channels()
	if err != nil {
		s.close()
		return nil, err
	}
	s.email, s.sms = channels[notifier.Email], channels[notifier.SMS]
	if err := notifier.SetDefaultRegion(cmp.Or(cfg.DefaultRegion, notifier.FallbackRegion)); err != nil {
		s.close()
		return nil, fmt.Errorf("VARSEL_DEFAULT_REGION: %w", err)
	}
	if n, err := s.conn.Subscribers.IndexAddresses(ctx); err != nil {
		s.close()
		return nil, err
	} else if n > 0 {
		logger.Info("indexed subscriber addresses", "subscribers", n)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := notifier.NewMetrics(reg)
	s.metrics, s.registry = metrics, reg
	if s.reminderTargets = s.staffTargets(); len(s.reminderTargets) > 0 {
		s.reminders = s.conn.NewReminders(cfg.RemindBefore)
	}
	s.runner = s.conn.NewRunner(jetstream.Pipeline{
		Reminders: s.reminders,
		Site:      s.site,
		Channels:  channels, Renderer: s.renderer, Metrics: metrics, Logger: logger,
		Concurrency: map[notifier.ChannelName]int{notifier.SMS: 4},
		Dispatch: notifier.DispatchConfig{SuppressAfter: map[notifier.ChannelName]int{
			notifier.Email: cfg.EmailBounceLimit, notifier.Webhook: cfg.WebhookFailureLimit}},
		OnSuppress: s.tellOwner,
	})

	// The pages' read model follows the incident bucket for as long as the
	// service runs, and keeps serving what it knew while NATS is away.
	watchCtx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	s.closers = append(s.closers, func() error { stopWatch(); return nil })
	status, err := s.conn.WatchStatus(watchCtx, logger)
	if err != nil {
		s.close()
		return nil, err
	}
	staffManager := staff.NewManager(s.conn.Staff, s.conn.Sessions, strings.HasPrefix(cfg.PublicURL, "https://"), logger)
	consoleHandler, err := console.New(console.Config{PublicURL: cfg.PublicURL, DefaultLocale: cfg.DefaultLocale, Timezone: cfg.Timezone, Site: s.site},
		console.Deps{Staff: staffManager, Status: status, Operator: s.conn, Renderer: s.renderer, SendTest: s.sendConsoleTest, Logger: logger,
			Planner: &notifier.Planner{Subscribers: s.conn.Subscribers, Policy: notifier.DefaultPolicy{}, Logger: logger}})
	if err != nil {
		s.close()
		return nil, err
	}
	pages := web.New(web.Config{
		PublicURL: cfg.PublicURL, AdminToken: cfg.AdminToken, DefaultLocale: cfg.DefaultLocale, DefaultTimezone: cfg.Timezone,
		WebhookAllowPrivate: cfg.WebhookAllowPrivate, Version: version, Site: s.site,
	}, web.Deps{
		Status: status, Subscribers: s.conn.Subscribers, Operator: s.conn, Staff: staffManager, Localizer: s.renderer, Tokens: tokens, Registry: reg,
		TwilioInbound: s.twilioInbound(), TwilioStatus: s.twilioStatus(),
		CheckWebhookTarget: func(ctx context.Context, url string) error {
			return webhook.CheckTarget(ctx, url, cfg.WebhookAllowPrivate)
		},
		SendEmail: s.sendSignupEmail,
	}, logger)
	if cfg.ExportDir != "" {
		s.mirror = web.NewMirror(web.Config{PublicURL: cfg.PublicURL, DefaultLocale: cfg.DefaultLocale, DefaultTimezone: cfg.Timezone, Site: s.site},
			web.Deps{Status: status, Localizer: s.renderer}, logger)
	}
	handler := http.NewServeMux()
	handler.Handle(console.Prefix, consoleHandler)
	handler.Handle(console.Prefix+"/", consoleHandler)
	handler.Handle("/", pages)
	handler.Handle("POST "+demoWebhookPath, demoWebhook(logger))
	// One set of security headers on every response of the listener, the
	// console's included (it sets a stricter policy of its own).
	s.http = &http.Server{Handler: web.SecurityHeaders(handler), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() {
		if err := s.http.Serve(s.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("http server", "error", err)
		}
	}()
	if s.metricsListener != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		s.metricsHTTP = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
		go func() {
			if err := s.metricsHTTP.Serve(s.metricsListener); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("metrics server", "error", err)
			}
		}()
	}
	return s, nil
}

// channels builds the real channel where it is configured and the outbox
// where it is not.
func (s *service) channels() (map[notifier.ChannelName]notifier.Channel, error) {
	cfg := s.cfg
	out := map[notifier.ChannelName]notifier.Channel{}
	box := outbox.Config{Dir: filepath.Join(cfg.DataDir, "outbox"), From: cfg.MailFrom, UserAgent: "Varsel/" + version}
	toOutbox := func(name notifier.ChannelName) error {
		c, err := outbox.New(box, name, s.logger)
		if err != nil {
			return err
		}
		out[name], s.sinks[name] = c, "outbox "+box.Dir
		s.closers = append(s.closers, c.Close)
		return nil
	}
	if cfg.SMTPURL == "" {
		if err := toOutbox(notifier.Email); err != nil {
			return nil, err
		}
	} else {
		ec, err := email.ParseURL(cfg.SMTPURL)
		if err != nil {
			return nil, fmt.Errorf("VARSEL_SMTP_URL: %w", err)
		}
		ec.From = cfg.MailFrom
		ec.DKIM, ec.DKIMRSA = cfg.emailDKIM()
		c, err := email.New(ec, s.logger)
		if err != nil {
			return nil, err
		}
		out[notifier.Email], s.sinks[notifier.Email] = c, "smtp "+ec.Host
		s.closers = append(s.closers, c.Close)
	}
	if cfg.TwilioAccountSID == "" {
		if err := toOutbox(notifier.SMS); err != nil {
			return nil, err
		}
	} else {
		c, err := sms.New(sms.Config{AccountSID: cfg.TwilioAccountSID, AuthToken: cfg.TwilioAuthToken, From: cfg.TwilioFrom,
			MessagingServiceSID: cfg.TwilioMessagingSID, APIURL: cfg.TwilioAPIURL, PublicURL: cfg.PublicURL, Rate: cfg.SMSRate}, s.logger)
		if err != nil {
			return nil, err
		}
		out[notifier.SMS], s.sinks[notifier.SMS] = c, "twilio "+cfg.TwilioAPIURL
	}
	if cfg.webhooksToOutbox() {
		if err := toOutbox(notifier.Webhook); err != nil {
			return nil, err
		}
	} else {
		c, err := webhook.New(webhook.Config{AllowPrivate: cfg.WebhookAllowPrivate, UserAgent: "Varsel/" + version,
			Self: selfWebhookURLs(s.listener)}, s.logger)
		if err != nil {
			return nil, err
		}
		out[notifier.Webhook], s.sinks[notifier.Webhook] = c, "http"
		s.closers = append(s.closers, func() error { c.CloseIdleConnections(); return nil })
	}
	return out, nil
}

func (s *service) twilioInbound() http.Handler {
	if s.cfg.TwilioAuthToken == "" {
		return nil
	}
	return sms.InboundHandler(s.conn.Subscribers, s.cfg.TwilioAuthToken, s.cfg.PublicURL, s.renderer.SMSReply, s.logger)
}

func (s *service) twilioStatus() http.Handler {
	if s.cfg.TwilioAuthToken == "" {
		return nil
	}
	return sms.StatusHandler(s.conn.Deliveries, s.cfg.TwilioAuthToken, s.cfg.PublicURL, s.logger)
}

// noticeTimeout bounds sending one notice to a subscriber.
const noticeTimeout = 30 * time.Second

// tellOwner records why a channel was paused where operators look for it,
// and when a webhook was switched off emails its owner (if they have an
// address that is not itself paused) through the email channel. The email
// goes out in the background, so the dispatcher is never held up by it.
func (s *service) tellOwner(ctx context.Context, sub *notifier.Subscriber, ch notifier.ChannelName, why notifier.Suppression) {
	s.logger.Warn("channel paused for subscriber", "subscriber", sub.ID, "channel", ch, "reason", why.Reason,
		"owner_email", sub.Email != "")
	if ch != notifier.Webhook || s.email == nil || !sub.Reachable(notifier.Email) {
		return
	}
	s.notices.Add(1)
	go func() {
		defer s.notices.Done()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), noticeTimeout)
		defer cancel()
		s.sendWebhookNotice(ctx, sub, why)
	}()
}

// sendWebhookNotice renders and sends the "your webhook was switched off"
// email. It is not an event: it gets a synthetic one, unique per notice,
// so the outbox and Message-ID never collide with a real event's.
func (s *service) sendWebhookNotice(ctx context.Context, sub *notifier.Subscriber, why notifier.Suppression) {
	to := notifier.MaskEmail(sub.Email)
	m, err := s.renderer.WebhookDisabledNotice(sub, why)
	if err != nil {
		s.logger.Error("webhook notice not sent: render", "subscriber", sub.ID, "to", to, "error", err)
		return
	}
	now := time.Now().UTC()
	// Email and outbox read only the event's id; the type is for logs.
	ev := &notifier.Event{ID: noticeEventID(now), Type: notifier.IncidentUpdated, Time: now}
	d := &notifier.Delivery{ID: notifier.DeliveryID(ev.ID, sub.ID, notifier.Email), Channel: notifier.Email,
		Event: ev, Subscriber: sub, Message: m, Attempt: 1}
	receipt, _, err := s.email.Notify(ctx, d)
	if err != nil {
		s.logger.Error("webhook notice not sent", "subscriber", sub.ID, "to", to, "error", err)
		return
	}
	s.logger.Info("webhook notice sent", "subscriber", sub.ID, "to", to, "notice", ev.ID, "provider_id", receipt.ProviderID)
}

// noticeEventID names a notice sent at t in notifier.ValidID form, e.g.
// notice-webhook-disabled-20190917T100000-123456789Z.
func noticeEventID(t time.Time) string { return oneOffEventID("webhook-disabled", t) }

// sendSignupEmail sends the confirmation email of a sign-up on the status
// page through the email channel (web.Deps.SendEmail), to a transient
// subscriber with the id the sign-up will have once confirmed; nothing is
// stored.
//
// A message with an SMS body is a sign-up's phone code: it goes to the
// number to through the SMS channel, with a synthetic event like the email.
func (s *service) sendSignupEmail(ctx context.Context, to string, m *notifier.Message) error {
	if m.SMS != "" {
		if s.sms == nil {
			return errors.New("send signup code: no SMS channel")
		}
		now := time.Now().UTC()
		ev := &notifier.Event{ID: oneOffEventID("signup-code", now), Type: notifier.IncidentUpdated, Time: now}
		sub := &notifier.Subscriber{ID: web.SubscriberID(to), Phone: to, Locale: m.Locale}
		d := &notifier.Delivery{ID: notifier.DeliveryID(ev.ID, sub.ID, notifier.SMS), Channel: notifier.SMS,
			Event: ev, Subscriber: sub, Message: m, Attempt: 1}
		if _, _, err := s.sms.Notify(ctx, d); err != nil {
			return fmt.Errorf("send signup code: %w", err)
		}
		return nil
	}
	return s.sendOneOff(ctx, "signup", web.SubscriberID(to), to, m)
}

// sendConsoleTest sends a test of a letter to the staff member who asked
// for it in the console (console.Deps.SendTest).
func (s *service) sendConsoleTest(ctx context.Context, to string, m *notifier.Message) error {
	return s.sendOneOff(ctx, "console-test", "staff-"+web.SubscriberID(to), to, m)
}

// sendOneOff sends one email that is not a delivery of an event (a sign-up
// confirmation, a console test) through the email channel. Like a notice
// it gets a synthetic event, unique per email, so the outbox and the
// Message-ID never collide with a real event's. Errors are the channel's.
func (s *service) sendOneOff(ctx context.Context, kind, subscriberID, to string, m *notifier.Message) error {
	if s.email == nil {
		return fmt.Errorf("send %s email: no email channel", kind)
	}
	now := time.Now().UTC()
	ev := &notifier.Event{ID: oneOffEventID(kind, now), Type: notifier.IncidentUpdated, Time: now}
	sub := &notifier.Subscriber{ID: subscriberID, Email: to, Locale: m.Locale}
	d := &notifier.Delivery{ID: notifier.DeliveryID(ev.ID, sub.ID, notifier.Email), Channel: notifier.Email,
		Event: ev, Subscriber: sub, Message: m, Attempt: 1}
	receipt, _, err := s.email.Notify(ctx, d)
	if err != nil {
		return fmt.Errorf("send %s email: %w", kind, err)
	}
	s.logger.Debug("one-off email handed over", "kind", kind, "subscriber", sub.ID, "to", notifier.MaskEmail(to), "notice", ev.ID,
		"provider_id", receipt.ProviderID)
	return nil
}

// oneOffEventID names a one-off email sent at t in notifier.ValidID form,
// e.g. notice-signup-20190917T100000-123456789Z.
func oneOffEventID(kind string, t time.Time) string {
	return "notice-" + kind + "-" + t.UTC().Format("20060102T150405") + "-" + fmt.Sprintf("%09d", t.Nanosecond()) + "Z"
}

// run runs the pipeline until ctx is cancelled, then drains and shuts down.
func (s *service) run(ctx context.Context) error {
	for ch, sink := range s.sinks {
		s.logger.Info("channel ready", "channel", ch, "sink", sink)
	}
	metricsAddr := "off"
	if s.metricsListener != nil {
		metricsAddr = s.metricsListener.Addr().String()
	}
	s.logger.Info("varsel serving", "version", version, "http", s.listener.Addr().String(), "metrics", metricsAddr, "nats", s.conn.ClientURL(),
		"public_url", s.cfg.PublicURL)
	var remindersDone chan error
	if s.reminders != nil {
		remindersDone = make(chan error, 1)
		go func() {
			remindersDone <- s.reminders.Run(ctx, s.reminderTargets, s.logger.With("component", "reminders"))
		}()
	}
	mirrorDone := make(chan struct{})
	if s.mirror != nil {
		go func() { defer close(mirrorDone); s.mirror.Follow(ctx, s.cfg.ExportDir, mirrorInterval) }()
	} else {
		close(mirrorDone)
	}
	pruneDone := make(chan struct{})
	go func() { defer close(pruneDone); s.pruneOutbox(ctx) }()
	runDone := make(chan struct{})
	go func() {
		// From the signal on /readyz answers 503, so a load balancer sends
		// nothing more while the sends in flight finish (it said ready for
		// the whole drain).
		select {
		case <-ctx.Done():
			s.conn.Drain()
			s.logger.Info("shutting down: finishing the sends in flight")
		case <-runDone:
		}
	}()
	err := s.runner.Run(ctx)
	close(runDone)
	<-mirrorDone
	<-pruneDone
	if remindersDone != nil {
		err = errors.Join(err, <-remindersDone)
	}
	s.notices.Wait() // each is bounded by noticeTimeout
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.http.Shutdown(shutdown)
	if s.metricsHTTP != nil {
		_ = s.metricsHTTP.Shutdown(shutdown)
	}
	s.close()
	s.logger.Info("varsel stopped")
	return err
}

func (s *service) close() {
	for _, c := range s.closers {
		_ = c()
	}
	if s.conn != nil {
		s.conn.Close()
	}
	if s.listener != nil && s.http == nil {
		_ = s.listener.Close()
	}
	if s.metricsListener != nil && s.metricsHTTP == nil {
		_ = s.metricsListener.Close()
	}
	_ = s.lock.Unlock()
}

// mirrorInterval is how often serve checks whether the static mirror
// needs rewriting (VARSEL_EXPORT_DIR).
const mirrorInterval = time.Second
