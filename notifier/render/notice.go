package render

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/varsel/varsel/notifier"
)

// noticeWebhookDisabled names the templates of the webhook notice:
// subject.T, email.txt.T and email.html.T in templates/notice*.tmpl.
const noticeWebhookDisabled = "notice.webhook_disabled"

// noticeView is what the notice templates see. It embeds a view so the
// shared email head and end (which read .Locale, .Subject, .Impact) work
// unchanged, overridden or not.
type noticeView struct {
	view
	// ID is the subscriber id: support needs it to switch the webhook back
	// on, so the reader is asked to quote it.
	ID string
	// Endpoint is the webhook URL masked to scheme and host: its path or
	// query may hold a token, and this goes out by email.
	Endpoint  string
	StoppedAt string // "" when unknown
	Reason    string // one sentence
}

// failureCount reads the count at the start of a ReasonDisabled detail
// ("5 failed deliveries in a row; last: …", as the dispatcher writes it).
var failureCount = regexp.MustCompile(`^\s*(\d+)\b`)

// WebhookDisabledNotice renders the email telling a subscriber that Varsel
// stopped calling their webhook, in their language and time zone: the
// webhook (masked to scheme and host, never the full URL), when (why.At),
// why in plain words (410 Gone; so many failures in a row, read from
// why.Detail or else sub.Failures; or a generic sentence), what to do
// (fix it, then ask us to switch it back on, quoting the subscriber id) and
// the status page. why.Detail itself is never shown: it is English and may
// quote the URL. The message has Locale, Subject, Text, HTML, StatusURL and
// the email UnsubscribeURL set, like any email. Errors are template or
// catalogue defects.
func (r *Renderer) WebhookDisabledNotice(sub *notifier.Subscriber, why notifier.Suppression) (*notifier.Message, error) {
	if sub == nil {
		return nil, errors.New("render webhook notice: subscriber is required")
	}
	return r.webhookDisabledNotice(sub, why, ResolveLocale(sub.Locale, r.defaultLocale), r.location(sub.Timezone))
}

func (r *Renderer) webhookDisabledNotice(sub *notifier.Subscriber, why notifier.Suppression, locale string, loc *time.Location) (*notifier.Message, error) {
	ls := r.sets[locale]
	if ls == nil {
		return nil, fmt.Errorf("render webhook notice: %w %q", ErrUnknownLocale, locale)
	}
	wrap := func(err error) error { return fmt.Errorf("render webhook notice for %s: %w", locale, err) }
	v := &noticeView{
		view: view{
			Type: noticeWebhookDisabled, Kind: "notice",
			Locale: locale, ContentLocale: locale,
			StatusURL: r.cfg.PublicURL + "/",
		},
		ID:       sub.ID,
		Endpoint: notifier.MaskContact(notifier.Webhook, sub.WebhookURL),
	}
	v.Link = v.StatusURL
	if !why.At.IsZero() {
		layout, err := ls.timeLayout("FormatDateTime", loc.String() != r.defaultZone.String())
		if err != nil {
			return nil, wrap(err)
		}
		v.StoppedAt = why.At.In(loc).Format(layout)
	}
	var err error
	if v.Reason, err = ls.webhookReason(why, sub.Failures[notifier.Webhook]); err != nil {
		return nil, wrap(err)
	}
	subject, err := ls.execText("subject."+noticeWebhookDisabled, v)
	if err != nil {
		return nil, wrap(err)
	}
	v.Subject = strings.Join(strings.Fields(subject), " ")
	p := &part{ls: ls, msg: notifier.Message{
		Locale: locale, ContentLocale: locale, Subject: v.Subject, StatusURL: v.StatusURL,
	}}
	if p.text, err = ls.execText("email.txt."+noticeWebhookDisabled, v); err != nil {
		return nil, wrap(err)
	}
	p.text = tidy(p.text)
	if p.htmlHead, err = ls.execHTML("email.html.head", v); err != nil {
		return nil, wrap(err)
	}
	if p.htmlBody, err = ls.execHTML("email.html."+noticeWebhookDisabled, v); err != nil {
		return nil, wrap(err)
	}
	if p.htmlEnd, err = ls.execHTML("email.html.end", v); err != nil {
		return nil, wrap(err)
	}
	// Email, whatever channel was switched off: the notice goes by email,
	// so its unsubscribe link is the email one.
	return r.personalize(p, sub, notifier.Email)
}

// webhookReason says in one sentence why the webhook was switched off.
// failures is the subscriber's count, used when the detail has none.
func (ls *langSet) webhookReason(why notifier.Suppression, failures int) (string, error) {
	switch why.Reason {
	case notifier.ReasonGone:
		return ls.phrase("NoticeWebhookGone")
	case notifier.ReasonDisabled:
		n := failures
		if m := failureCount.FindStringSubmatch(why.Detail); m != nil {
			if c, err := strconv.Atoi(m[1]); err == nil && c > 0 {
				n = c
			}
		}
		if n > 0 {
			return ls.localize("NoticeWebhookFailed", n, map[string]any{"Count": n})
		}
		return ls.phrase("NoticeWebhookFailedRepeatedly")
	}
	return ls.phrase("NoticeWebhookRefused")
}
