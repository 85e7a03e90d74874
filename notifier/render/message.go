package render

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/varsel/varsel/notifier"
)

// part is an event rendered for one (locale, channel, zone): everything but
// the subscriber's greeting and unsubscribe link.
type part struct {
	ls  *langSet
	msg notifier.Message
	// Email: the text body between greeting and footer, and the HTML around
	// and between the personal parts.
	text                        string
	htmlHead, htmlBody, htmlEnd string
}

// Render renders ev for sub on channel ch. inc is the incident after the
// event was applied (nil for a letter without one, or when unknown; it only
// adds the update count). The event part is rendered once per (event id,
// locale, channel, time zone) and cached; each call then adds the
// subscriber's greeting and unsubscribe link. Errors are template or
// catalogue defects, or ErrUnknownChannel.
func (r *Renderer) Render(ev *notifier.Event, inc *notifier.IncidentState, sub *notifier.Subscriber, ch notifier.ChannelName) (*notifier.Message, error) {
	if ev == nil || sub == nil {
		return nil, errors.New("render: event and subscriber are required")
	}
	locale := ResolveLocale(sub.Locale, r.defaultLocale)
	tz := sub.Timezone
	if tz == "" {
		tz = r.cfg.DefaultTimezone
	}
	key := cacheKey{eventID: ev.ID, locale: locale, channel: ch, timezone: tz}
	p, ok := r.cache.get(key)
	if !ok {
		var err error
		if p, _, err = r.renderPart(ev, inc, locale, ch, r.location(tz)); err != nil {
			return nil, err
		}
		r.cache.put(key, p)
	}
	return r.personalize(p, sub, ch)
}

// renderPart executes the event's templates for one locale, channel and
// zone. It returns the view too, for Check.
func (r *Renderer) renderPart(ev *notifier.Event, inc *notifier.IncidentState, locale string, ch notifier.ChannelName, loc *time.Location) (*part, *view, error) {
	ls := r.sets[locale]
	if ls == nil {
		return nil, nil, fmt.Errorf("render %s: %w %q", ev.ID, ErrUnknownLocale, locale)
	}
	v, err := r.buildView(ev, inc, ls, loc)
	if err != nil {
		return nil, nil, fmt.Errorf("render %s for %s: %w", ev.ID, locale, err)
	}
	p := &part{ls: ls, msg: notifier.Message{
		Locale: locale, ContentLocale: v.ContentLocale,
		StatusURL: v.StatusURL, IncidentURL: v.IncidentURL,
	}}
	wrap := func(err error) error { return fmt.Errorf("render %s %s for %s: %w", ev.Type, ch, locale, err) }
	switch ch {
	case notifier.Email:
		subject, err := ls.execText("subject."+v.Type, v)
		if err != nil {
			return nil, v, wrap(err)
		}
		v.Subject = strings.Join(strings.Fields(subject), " ")
		p.msg.Subject = v.Subject
		name, err := ls.pick("email.txt", v, false)
		if err != nil {
			return nil, v, wrap(err)
		}
		if p.text, err = ls.execText(name, v); err != nil {
			return nil, v, wrap(err)
		}
		p.text = tidy(p.text)
		if name, err = ls.pick("email.html", v, true); err != nil {
			return nil, v, wrap(err)
		}
		if p.htmlBody, err = ls.execHTML(name, v); err != nil {
			return nil, v, wrap(err)
		}
		if p.htmlHead, err = ls.execHTML("email.html.head", v); err != nil {
			return nil, v, wrap(err)
		}
		if p.htmlEnd, err = ls.execHTML("email.html.end", v); err != nil {
			return nil, v, wrap(err)
		}
	case notifier.SMS:
		if p.msg.SMS, p.msg.Segments, err = ls.renderSMS(v); err != nil {
			return nil, v, wrap(err)
		}
	case notifier.Webhook:
		name, err := ls.pick("webhook", v, false)
		if err != nil {
			return nil, v, wrap(err)
		}
		text, err := ls.execText(name, v)
		if err != nil {
			return nil, v, wrap(err)
		}
		p.msg.WebhookText = foldLines(tidy(text))
		if ids := ev.Components(); len(ids) > 0 {
			p.msg.ComponentNames = make(map[string]string, len(ids))
			for _, id := range ids {
				p.msg.ComponentNames[id] = r.cfg.Site.ComponentName(id, locale)
			}
		}
	default:
		return nil, v, fmt.Errorf("render %s: %w %q", ev.ID, ErrUnknownChannel, ch)
	}
	return p, v, nil
}

// renderSMS renders the SMS and, while it needs more than one segment,
// drops optional parts, least useful first: sentences of the free text from
// the end (whole sentences only, never a cut one), then the names of the
// affected services (the title mostly names them too), then the holding
// note, then the end of the maintenance window, then the impact, then the
// next-update promise. The title, status and link always stay.
func (ls *langSet) renderSMS(v *view) (string, int, error) {
	name, err := ls.pick("sms", v, false)
	if err != nil {
		return "", 0, err
	}
	var text []string
	if v.ContentLocale == v.Locale {
		// A text in another language would need the "only available in"
		// note, which an SMS has no room for: status and link say enough.
		text = sentences(v.Message)
	}
	render := func(n int) (string, int, error) {
		v.Message = strings.Join(text[:n], " ")
		s, err := ls.execText(name, v)
		if err != nil {
			return "", 0, err
		}
		s = NormalizeGSM(strings.TrimSpace(s))
		segments, _ := Segments(s)
		return s, segments, nil
	}
	// The most sentences that fit: adding one never makes an SMS shorter.
	lo, hi := 0, len(text)
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if _, n, err := render(mid); err != nil {
			return "", 0, err
		} else if n <= 1 {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	body, segments, err := render(lo)
	if err != nil || segments <= 1 {
		return body, segments, err
	}
	for _, drop := range []func() bool{
		func() bool { changed := v.SMSComponents != ""; v.SMSComponents = ""; return changed },
		func() bool { changed := v.HoldingShort != ""; v.HoldingShort = ""; return changed },
		func() bool {
			changed := v.WindowShort != v.windowShortStart
			v.WindowShort = v.windowShortStart
			return changed
		},
		func() bool { changed := v.SMSImpact != ""; v.SMSImpact = ""; return changed },
		func() bool { changed := v.NextUpdateShort != ""; v.NextUpdateShort = ""; return changed },
	} {
		if !drop() {
			continue
		}
		if body, segments, err = render(0); err != nil || segments <= 1 {
			return body, segments, err
		}
	}
	return body, segments, nil
}

// pick returns the template for the view's event type, falling back to the
// one for its kind.
func (ls *langSet) pick(prefix string, v *view, html bool) (string, error) {
	for _, name := range []string{prefix + "." + v.Type, prefix + "." + v.Kind} {
		if html && ls.html.Lookup(name) != nil || !html && ls.text.Lookup(name) != nil {
			return name, nil
		}
	}
	return "", fmt.Errorf("%w: neither %s.%s nor %s.%s is defined", ErrNoTemplate, prefix, v.Type, prefix, v.Kind)
}

func (ls *langSet) execText(name string, data any) (string, error) {
	var b strings.Builder
	if err := ls.text.ExecuteTemplate(&b, name, data); err != nil {
		return "", err
	}
	return b.String(), nil
}

func (ls *langSet) execHTML(name string, data any) (string, error) {
	var b strings.Builder
	if err := ls.html.ExecuteTemplate(&b, name, data); err != nil {
		return "", err
	}
	return b.String(), nil
}

// personalize adds the subscriber's unsubscribe link and, for email, the
// link to their preferences page, the greeting and footer. This is the
// only per-subscriber work; see personal.go for what is cached.
func (r *Renderer) personalize(p *part, sub *notifier.Subscriber, ch notifier.ChannelName) (*notifier.Message, error) {
	m := p.msg
	m.UnsubscribeURL = r.cfg.PublicURL + "/unsubscribe/" + r.tokens.Sign(notifier.TokenClaims{
		Purpose: notifier.PurposeUnsubscribe, SubscriberID: sub.ID, Channel: ch,
	})
	if ch != notifier.Email {
		return &m, nil
	}
	m.PreferencesURL = r.cfg.PublicURL + "/preferences/" + r.tokens.Sign(notifier.TokenClaims{
		Purpose: notifier.PurposePreferences, SubscriberID: sub.ID,
	})
	ls := p.ls
	pd := personal{Name: normalName(sub.Name), UnsubscribeURL: m.UnsubscribeURL, StatusURL: m.StatusURL,
		SiteName: r.cfg.Site.SiteName(ls.locale)}
	pd.PreferencesURL = m.PreferencesURL
	g, err := ls.greeting(pd)
	if err != nil {
		return nil, fmt.Errorf("personalize email for %s: %w", ls.locale, err)
	}
	hFooter, err := ls.htmlFooter(pd)
	if err != nil {
		return nil, fmt.Errorf("personalize email for %s: %w", ls.locale, err)
	}
	var b strings.Builder
	b.Grow(len(g.text) + len(p.text) + 256 + len(pd.UnsubscribeURL) + len(pd.PreferencesURL))
	b.WriteString(g.text)
	b.WriteString("\n\n")
	b.WriteString(p.text)
	b.WriteString("\n\n")
	if err := ls.writeTextFooter(&b, pd); err != nil {
		return nil, fmt.Errorf("personalize email for %s: %w", ls.locale, err)
	}
	b.WriteString("\n")
	m.Text = b.String()
	b = strings.Builder{}
	b.Grow(len(p.htmlHead) + len(g.html) + len(p.htmlBody) + len(hFooter) + len(p.htmlEnd))
	b.WriteString(p.htmlHead)
	b.WriteString(g.html)
	b.WriteString(p.htmlBody)
	b.WriteString(hFooter)
	b.WriteString(p.htmlEnd)
	m.HTML = b.String()
	return &m, nil
}
