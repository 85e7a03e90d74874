package sms

import (
	"context"
	"encoding/xml"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/twilio/twilio-go/client"

	"github.com/varsel/varsel/notifier"
)

// maxCallbackBody bounds a Twilio callback's form body.
const maxCallbackBody = 64 << 10

// Keywords of inbound messages, matched case-insensitively after trimming
// white space: Twilio's standard opt-out, opt-in and help words plus the
// Norwegian ones (JA is the Norwegian YES; START is the same word in
// Norwegian).
var (
	stopWords  = wordSet("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "STOPP", "AVSLUTT")
	startWords = wordSet("START", "YES", "UNSTOP", "JA")
	helpWords  = wordSet("HELP", "HJELP")
	// twilioWords are the opt-out and opt-in words Twilio answers itself,
	// in English, before the message reaches us (its default opt-out
	// handling); the other words above only we answer.
	twilioWords = wordSet("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "START", "YES", "UNSTOP")
)

// Message ids of the inbound handler's answers (locales/active.*.toml).
const (
	TextHelp    = "SMSHelp"
	TextStopped = "SMSStopped"
	TextStarted = "SMSStarted"
)

// Reasons a status callback is acknowledged without changing the log.
var (
	errUnknownDelivery = errors.New("unknown delivery")
	errOtherMessage    = errors.New("receipt is for another message")
	errStaleStatus     = errors.New("receipt older than the recorded status")
)

const (
	twimlEmpty  = `<?xml version="1.0" encoding="UTF-8"?><Response></Response>`
	twimlPrefix = `<?xml version="1.0" encoding="UTF-8"?><Response><Message>`
	twimlSuffix = `</Message></Response>`
)

func wordSet(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
}

// InboundHandler serves POST /twilio/inbound: messages that phones send
// to our number. Requests whose X-Twilio-Signature does not match
// authToken and publicURL + the request URI get 403 and change nothing.
// STOP words opt every subscriber with the sender's number out of SMS;
// START words undo an opt-out (and only an opt-out); HELP words are
// answered with TextHelp. Anything else gets an empty TwiML answer. A
// store failure gets 500.
//
// text returns a message id's text (TextHelp, TextStopped, TextStarted)
// for a subscriber's locale ("" for none: the default) and the language
// it is in ("en" or "nb"). Answers are in the language of the first
// subscriber with the number who has one.
//
// Who confirms a keyword: Twilio answers its own words (twilioWords) in
// English before the message reaches us, so we answer none of them
// (a second confirmation would be a duplicate, and after STOP Twilio
// would not deliver it anyway), except START, YES and UNSTOP from a
// subscriber who reads another language: they get TextStarted after
// Twilio's English one. The words Twilio does not know (STOPP, AVSLUTT,
// JA) only we confirm, with TextStopped or TextStarted. A message
// carrying OptOutType was matched by the Messaging Service's Advanced
// Opt-Out, which has answered it with the replies configured there (the
// way to localize Twilio's own): its type (STOP, START, HELP) is applied
// and we answer nothing.
func InboundHandler(store notifier.SubscriberStore, authToken, publicURL string, text func(locale, messageID string) (string, string), logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if text == nil {
		text = func(string, string) (string, string) { return "", "" }
	}
	check := newSignatureCheck(authToken, publicURL, logger)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		params, ok := check(w, r)
		if !ok {
			return
		}
		from := params["From"]
		word := strings.ToUpper(strings.TrimSpace(params["Body"]))
		// Twilio's Advanced Opt-Out has answered this keyword already.
		answered := params["OptOutType"] != ""
		stop, start, help := stopWords[word], startWords[word], helpWords[word]
		switch strings.ToUpper(params["OptOutType"]) {
		case "STOP":
			stop, start, help = true, false, false
		case "START":
			stop, start, help = false, true, false
		case "HELP":
			stop, start, help = false, false, true
		}
		log := logger.With("from", notifier.MaskPhone(from))
		ctx := r.Context()
		switch {
		case stop, start:
			subs, err := setOptOut(ctx, store, from, stop, time.Now())
			if err != nil {
				log.Error("sms: inbound keyword not applied", "keyword", word, "err", err)
				http.Error(w, "store unavailable", http.StatusInternalServerError)
				return
			}
			id := ""
			switch {
			case answered:
			case stop:
				if !twilioWords[word] {
					id = TextStopped
				}
			case reachable(subs):
				id = TextStarted
			}
			reply, lang := "", ""
			if id != "" {
				reply, lang = text(locale(subs), id)
				if start && twilioWords[word] && lang == "en" {
					// Twilio's own English confirmation is enough.
					reply, id = "", ""
				}
			}
			log.Info("sms: inbound keyword applied", "keyword", word, "opt_out", stop, "subscribers", len(subs), "reply", id, "locale", lang)
			writeTwiML(w, reply)
		case help:
			subs, err := store.FindByPhone(ctx, from)
			if err != nil {
				log.Error("sms: find subscriber for HELP", "err", err)
				http.Error(w, "store unavailable", http.StatusInternalServerError)
				return
			}
			if answered {
				log.Info("sms: inbound HELP answered by Twilio's Advanced Opt-Out")
				writeTwiML(w, "")
				return
			}
			reply, lang := text(locale(subs), TextHelp)
			log.Info("sms: inbound HELP answered", "locale", lang)
			writeTwiML(w, reply)
		default:
			// The text may be personal; it is not logged.
			log.Debug("sms: inbound message ignored")
			writeTwiML(w, "")
		}
	})
}

// locale is the locale of the first of subs who has one; "" for none.
func locale(subs []*notifier.Subscriber) string {
	for _, s := range subs {
		if s.Locale != "" {
			return s.Locale
		}
	}
	return ""
}

// reachable reports whether any of subs can get SMS: what a START
// confirmation promises.
func reachable(subs []*notifier.Subscriber) bool {
	for _, s := range subs {
		if s.Reachable(notifier.SMS) {
			return true
		}
	}
	return false
}

// setOptOut sets or clears the SMS opt-out of every subscriber with phone
// and returns them as they are afterwards.
func setOptOut(ctx context.Context, store notifier.SubscriberStore, phone string, optOut bool, now time.Time) ([]*notifier.Subscriber, error) {
	subs, err := store.FindByPhone(ctx, phone)
	if err != nil {
		return nil, err
	}
	var errs []error
	out := make([]*notifier.Subscriber, 0, len(subs))
	for _, s := range subs {
		got, err := store.Update(ctx, s.ID, func(s *notifier.Subscriber) error {
			if s.Phone != phone {
				return nil // the number changed since FindByPhone
			}
			cur, suppressed := s.Suppressed[notifier.SMS]
			switch {
			case optOut && !(suppressed && cur.Reason == notifier.ReasonOptedOut):
				if s.Suppressed == nil {
					s.Suppressed = make(map[notifier.ChannelName]notifier.Suppression)
				}
				s.Suppressed[notifier.SMS] = notifier.Suppression{Reason: notifier.ReasonOptedOut, Detail: "replied STOP", At: now}
			case !optOut && suppressed && cur.Reason == notifier.ReasonOptedOut:
				// START lifts a STOP, not an invalid number or a bounce.
				delete(s.Suppressed, notifier.SMS)
			}
			return nil
		})
		if err != nil && !errors.Is(err, notifier.ErrNotFound) {
			errs = append(errs, err)
		}
		if err == nil && got != nil && got.Phone == phone {
			out = append(out, got)
		}
	}
	return out, errors.Join(errs...)
}

func writeTwiML(w http.ResponseWriter, message string) {
	w.Header().Set("Content-Type", "text/xml")
	if message == "" {
		_, _ = w.Write([]byte(twimlEmpty))
		return
	}
	var b strings.Builder
	b.WriteString(twimlPrefix)
	_ = xml.EscapeText(&b, []byte(message))
	b.WriteString(twimlSuffix)
	_, _ = w.Write([]byte(b.String()))
}

// StatusHandler serves POST /twilio/status?delivery=<id>: Twilio's
// delivery receipts. Requests with a bad signature get 403. A receipt
// updates the record's ProviderStatus and ProviderError; delivered sets
// Status to notifier.StatusDelivered, undelivered and failed to
// notifier.StatusUndelivered, and earlier stages (queued, sent) leave it.
// Receipts arriving out of order never move a record back. A receipt for
// an unknown delivery or another message is logged and answered 200, so
// Twilio does not keep retrying it; a store failure gets 500.
func StatusHandler(dlog notifier.DeliveryLog, authToken, publicURL string, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	check := newSignatureCheck(authToken, publicURL, logger)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		params, ok := check(w, r)
		if !ok {
			return
		}
		id := r.URL.Query().Get("delivery")
		sid, status, code := params["MessageSid"], params["MessageStatus"], params["ErrorCode"]
		log := logger.With("delivery", id, "sid", sid, "status", status, "error_code", code)
		if id == "" || status == "" {
			log.Warn("sms: receipt without delivery id or status; ignored")
			w.WriteHeader(http.StatusOK)
			return
		}
		ctx := r.Context()
		if _, err := dlog.Get(ctx, id); errors.Is(err, notifier.ErrNotFound) {
			log.Warn("sms: receipt for an unknown delivery; ignored")
			w.WriteHeader(http.StatusOK)
			return
		} else if err != nil {
			log.Error("sms: receipt not recorded", "err", err)
			http.Error(w, "store unavailable", http.StatusInternalServerError)
			return
		}
		now := time.Now()
		_, err := dlog.Update(ctx, id, func(rec *notifier.DeliveryRecord) error {
			switch {
			case rec.Channel == "" && rec.Status == "" && rec.EventID == "":
				return errUnknownDelivery // removed since Get
			case rec.ProviderID != "" && sid != "" && rec.ProviderID != sid:
				return errOtherMessage
			case statusRank(status) < statusRank(rec.ProviderStatus):
				return errStaleStatus
			}
			rec.ProviderStatus = status
			rec.ProviderError = code
			if rec.ProviderID == "" {
				rec.ProviderID = sid
			}
			switch status {
			case "delivered":
				rec.Status = notifier.StatusDelivered
			case "undelivered", "failed":
				rec.Status = notifier.StatusUndelivered
			}
			rec.UpdatedAt = now
			return nil
		})
		switch {
		case errors.Is(err, errUnknownDelivery), errors.Is(err, errOtherMessage), errors.Is(err, errStaleStatus):
			log.Warn("sms: receipt ignored", "why", err.Error())
		case err != nil:
			log.Error("sms: receipt not recorded", "err", err)
			http.Error(w, "store unavailable", http.StatusInternalServerError)
			return
		default:
			log.Info("sms: receipt recorded")
		}
		w.WriteHeader(http.StatusOK)
	})
}

// statusRank orders Twilio's message statuses so a late "sent" does not
// overwrite "delivered".
func statusRank(s string) int {
	switch s {
	case "accepted", "scheduled", "queued":
		return 1
	case "sending":
		return 2
	case "sent":
		return 3
	case "delivered", "undelivered", "failed", "canceled":
		return 4
	case "read":
		return 5
	}
	return 0
}

// newSignatureCheck returns a function that parses a Twilio callback and
// checks its X-Twilio-Signature against publicURL + the request URI. On
// failure it has already answered (405, 400 or 403).
func newSignatureCheck(authToken, publicURL string, logger *slog.Logger) func(http.ResponseWriter, *http.Request) (map[string]string, bool) {
	validator := client.NewRequestValidator(authToken)
	publicURL = strings.TrimRight(publicURL, "/")
	return func(w http.ResponseWriter, r *http.Request) (map[string]string, bool) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return nil, false
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxCallbackBody)
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return nil, false
		}
		params := make(map[string]string, len(r.PostForm))
		for k, v := range r.PostForm {
			params[k] = v[0]
		}
		sig := r.Header.Get("X-Twilio-Signature")
		if sig == "" || authToken == "" || !validator.Validate(publicURL+r.URL.RequestURI(), params, sig) {
			logger.Warn("sms: callback refused: missing or invalid X-Twilio-Signature", "path", r.URL.Path, "remote", r.RemoteAddr)
			http.Error(w, "invalid signature", http.StatusForbidden)
			return nil, false
		}
		return params, true
	}
}
