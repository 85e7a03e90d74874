package web

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/varsel/varsel/notifier"
)

// The subscriber's own page, GET and POST /preferences/{token}, linked
// from every email beside the unsubscribe link. The token (purpose
// PurposePreferences, signed under VARSEL_SECRET) is the capability: it
// does not expire, like an unsubscribe link, and rotating the secret
// revokes them all. A GET changes nothing (mail scanners follow links). A
// POST changes only the fields it carries: locale, timezone, channels
// (repeated), components (repeated) and sms_start_end_only. The form sends
// an empty channels and components value and sms_start_end_only=0 ahead of
// its boxes, so a form with every box unticked still carries the field.
//
// Cross-site requests: the token in the path is what a forger lacks, so a
// classic CSRF cannot name a subscriber. A POST is still refused (403)
// when the browser says it comes from another origin (an Origin header
// that is not this site's, or Sec-Fetch-Site other than same-origin or
// none): a page that learnt the link, from a forwarded email say, cannot
// make the reader's browser change their settings behind their back. A
// client that sends neither header (curl, a script) is not a browser and
// is let through: the token alone is its authority. A hidden form token
// derived from the link would add nothing the link does not already give.

// commonZones are offered on the preferences and sign-up pages, after the
// subscriber's current zone and the default.
var commonZones = []string{
	"Europe/Oslo", "Europe/Stockholm", "Europe/Copenhagen", "Europe/Helsinki", "Europe/London",
	"Europe/Dublin", "Europe/Berlin", "Europe/Amsterdam", "Europe/Paris", "Europe/Madrid",
	"Europe/Warsaw", "Atlantic/Reykjavik", "America/New_York", "America/Chicago", "America/Denver",
	"America/Los_Angeles", "America/Sao_Paulo", "Asia/Dubai", "Asia/Kolkata", "Asia/Singapore",
	"Asia/Tokyo", "Australia/Sydney", "UTC",
}

// zoneChoices is the zone select's options: current first, then the
// default, then the common ones, each once.
func zoneChoices(current, def string) []string {
	out := make([]string, 0, len(commonZones)+2)
	for _, z := range append([]string{current, def}, commonZones...) {
		if z != "" && !slices.Contains(out, z) {
			out = append(out, z)
		}
	}
	return out
}

// validZone reports whether z is an IANA zone a subscriber may choose.
func validZone(z string) bool {
	if z == "" || z == "Local" || len(z) > 64 {
		return false
	}
	_, err := time.LoadLocation(z)
	return err == nil
}

// choice is one component's box.
type choice struct {
	ID, Name, Group string
	On              bool
}

// componentChoices lists the components a subscriber can choose: the site
// file's catalogue, or without one the components incidents have named,
// and in both cases the ones in own (an operator may have set others),
// named in locale, ticked when in own.
func (s *server) componentChoices(locale string, own []string) []choice {
	var ids []string
	if s.cfg.Site != nil && len(s.cfg.Site.Components) > 0 {
		for _, c := range s.cfg.Site.Components {
			ids = append(ids, c.ID)
		}
	} else if s.deps.Status != nil {
		for _, st := range s.deps.Status.Incidents() {
			for _, id := range st.Incident.Components {
				if !slices.Contains(ids, id) {
					ids = append(ids, id)
				}
			}
		}
		slices.Sort(ids)
	}
	for _, id := range own {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	out := make([]choice, 0, len(ids))
	for _, id := range ids {
		c := choice{ID: id, Name: s.cfg.Site.ComponentName(id, locale), On: slices.Contains(own, id)}
		if sc, ok := s.cfg.Site.Component(id); ok {
			c.Group = sc.Group.Pick(locale)
		}
		out = append(out, c)
	}
	return out
}

// pickComponents reads a form's components values against the choices:
// nil for all ("all" ticked), the ids ticked, or the message id of the
// problem.
func pickComponents(values []string, offered []choice) ([]string, string) {
	var ids []string
	all := false
	for _, v := range values {
		switch v = strings.TrimSpace(v); {
		case v == "":
		case v == "all":
			all = true
		case !slices.ContainsFunc(offered, func(c choice) bool { return c.ID == v }):
			return nil, "PrefComponentsInvalid"
		case !slices.Contains(ids, v):
			ids = append(ids, v)
		}
	}
	if all {
		return nil, ""
	}
	if len(ids) == 0 {
		return nil, "PrefComponentsNone"
	}
	return ids, ""
}

// channelChoice is one channel's box.
type channelChoice struct {
	Name    notifier.ChannelName
	Label   string // message id
	Address string // masked
	On      bool
	// Locked is a channel turned off by someone other than the
	// subscriber on a page (STOP, bounces, a provider, too many
	// failures): it cannot be turned on here. Note says why (message id).
	Locked bool
	Note   string
}

var channelLabel = map[notifier.ChannelName]string{
	notifier.Email: "PrefChannelEmail", notifier.SMS: "PrefChannelSMS", notifier.Webhook: "PrefChannelWebhook",
}

// preferencesView is the preferences page in one of its states.
type preferencesView struct {
	reader
	PublicURL, Action string
	// State is "form", "invalid" (a bad link), "notfound", "unavailable"
	// or "crosssite".
	State string
	Saved bool
	// Errors names the fields that were refused, with a message id each.
	Errors map[string]string

	Timezone        string
	Zones           []string
	Channels        []channelChoice
	HasSMS          bool
	SMSStartEndOnly bool
	Components      []choice
	AllComponents   bool
}

func (s *server) preferencesPage(w http.ResponseWriter, status int, v *preferencesView) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Robots-Tag", "noindex")
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, "preferences.html", v); err != nil {
		s.logger.Error("render page", "page", "preferences.html", "error", err)
	}
}

// preferencesSubscriber verifies the link and reads its subscriber; when
// there is none it answers (403 for a bad link, 404 for a removed
// subscriber) and returns nil.
func (s *server) preferencesSubscriber(w http.ResponseWriter, r *http.Request, v *preferencesView) *notifier.Subscriber {
	token := r.PathValue("token")
	c, err := s.deps.Tokens.Verify(token)
	if len(token) > maxTokenLen || err != nil || c.Purpose != notifier.PurposePreferences || c.Channel != "" || !notifier.ValidID(c.SubscriberID) {
		v.State = "invalid"
		s.preferencesPage(w, http.StatusForbidden, v)
		return nil
	}
	sub, err := s.deps.Subscribers.Get(r.Context(), c.SubscriberID)
	switch {
	case errors.Is(err, notifier.ErrNotFound):
		v.State = "notfound"
		s.preferencesPage(w, http.StatusNotFound, v)
		return nil
	case err != nil:
		s.logger.Error("preferences: read subscriber", "subscriber", c.SubscriberID, "error", err)
		v.State = "unavailable"
		s.preferencesPage(w, http.StatusServiceUnavailable, v)
		return nil
	}
	return sub
}

// fill shows sub's settings on the page, in sub's language unless ?lang=
// asks for another.
func (s *server) fill(r *http.Request, v *preferencesView, sub *notifier.Subscriber) {
	if base := notifier.BaseLanguage(sub.Locale); base != "" && r.URL.Query().Get("lang") == "" {
		v.Locale = base
	}
	v.Timezone = sub.Timezone
	if v.Timezone == "" {
		v.Timezone = s.cfg.DefaultTimezone
	}
	v.Zones = zoneChoices(v.Timezone, s.cfg.DefaultTimezone)
	v.Channels = v.Channels[:0]
	for _, ch := range notifier.ChannelNames {
		addr := sub.Contact(ch)
		if addr == "" {
			continue
		}
		cc := channelChoice{Name: ch, Label: channelLabel[ch], Address: notifier.MaskContact(ch, addr), On: true}
		if why, off := sub.Suppressed[ch]; off {
			cc.On = false
			if !why.SelfService() {
				cc.Locked, cc.Note = true, "PrefChannelFailed"
				if ch == notifier.SMS && why.Reason == notifier.ReasonOptedOut {
					cc.Note = "PrefChannelStopped"
				}
			}
		}
		if ch == notifier.SMS {
			v.HasSMS = true
			if sub.PhoneUnverified && cc.Note == "" {
				cc.Note = "PrefChannelUnverified"
			}
		}
		v.Channels = append(v.Channels, cc)
	}
	v.SMSStartEndOnly = sub.SMSStartEndOnly
	v.Components = s.componentChoices(v.Locale, sub.Components)
	v.AllComponents = len(sub.Components) == 0
}

// preferencesForm shows the subscriber's settings; it changes nothing.
func (s *server) preferencesForm(w http.ResponseWriter, r *http.Request) {
	v := &preferencesView{reader: s.readerFor(r), PublicURL: s.cfg.PublicURL, Action: r.URL.Path, State: "form"}
	sub := s.preferencesSubscriber(w, r, v)
	if sub == nil {
		return
	}
	s.fill(r, v, sub)
	s.preferencesPage(w, http.StatusOK, v)
}

// sameOrigin reports whether a POST may come from the page itself: see
// the comment at the top of this file.
func (s *server) sameOrigin(r *http.Request) bool {
	if origin := r.Header.Get("Origin"); origin != "" {
		for _, own := range []string{s.cfg.PublicURL, "http://" + r.Host, "https://" + r.Host} {
			if u, err := url.Parse(own); err == nil && u.Host != "" && strings.EqualFold(origin, u.Scheme+"://"+u.Host) {
				return true
			}
		}
		return false
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return true
	}
	return false
}

// prefChange is what a POST asks for; nil fields were not carried.
type prefChange struct {
	locale, timezone *string
	channels         map[notifier.ChannelName]bool
	components       *[]string
	smsStartEndOnly  *bool
}

// parsePreferences reads the form against the subscriber as stored and
// returns the change, or the refused fields with a message id each.
func (s *server) parsePreferences(form url.Values, sub *notifier.Subscriber, locale string) (prefChange, map[string]string) {
	var c prefChange
	problems := map[string]string{}
	if vs, ok := form["locale"]; ok {
		l := strings.TrimSpace(vs[len(vs)-1])
		if base := notifier.BaseLanguage(l); base == "" {
			problems["locale"] = "PrefLocaleInvalid"
		} else {
			c.locale = &base
		}
	}
	if vs, ok := form["timezone"]; ok {
		z := strings.TrimSpace(vs[len(vs)-1])
		if !validZone(z) {
			problems["timezone"] = "PrefTimezoneInvalid"
		} else {
			c.timezone = &z
		}
	}
	if vs, ok := form["channels"]; ok {
		c.channels = map[notifier.ChannelName]bool{}
		for _, v := range vs {
			ch := notifier.ChannelName(strings.TrimSpace(v))
			switch {
			case ch == "":
			case sub.Contact(ch) == "": // unknown, or no address there
				problems["channels"] = "PrefChannelsInvalid"
			default:
				if why, off := sub.Suppressed[ch]; off && !why.SelfService() {
					problems["channels"] = "PrefChannelsLocked"
				}
				c.channels[ch] = true
			}
		}
	}
	if vs, ok := form["components"]; ok {
		ids, problem := pickComponents(vs, s.componentChoices(locale, sub.Components))
		if problem != "" {
			problems["components"] = problem
		} else {
			c.components = &ids
		}
	}
	if vs, ok := form["sms_start_end_only"]; ok {
		on := slices.ContainsFunc(vs, func(v string) bool { return v == "1" || v == "on" || v == "true" })
		c.smsStartEndOnly = &on
	}
	return c, problems
}

// errChannelLocked means a channel to turn on was turned off by a STOP or
// failures meanwhile.
var errChannelLocked = errors.New("channel turned off by STOP or failures")

// apply makes the change on sub as it is now stored.
func (c prefChange) apply(sub *notifier.Subscriber, now time.Time) error {
	if c.locale != nil {
		sub.Locale = *c.locale
	}
	if c.timezone != nil {
		sub.Timezone = *c.timezone
	}
	if c.components != nil {
		sub.Components = *c.components
	}
	if c.smsStartEndOnly != nil {
		sub.SMSStartEndOnly = *c.smsStartEndOnly
	}
	if c.channels != nil {
		for _, ch := range notifier.ChannelNames {
			if sub.Contact(ch) == "" {
				continue
			}
			why, off := sub.Suppressed[ch]
			switch on := c.channels[ch]; {
			case on && off && why.SelfService():
				delete(sub.Suppressed, ch)
			case on && off:
				return errChannelLocked
			case !on && !off:
				if sub.Suppressed == nil {
					sub.Suppressed = map[notifier.ChannelName]notifier.Suppression{}
				}
				// The same opt-out as an unsubscribe link's.
				sub.Suppressed[ch] = notifier.Suppression{Reason: notifier.ReasonOptedOut, Detail: notifier.OptOutOnPreferences, At: now}
			}
		}
	}
	return sub.Validate()
}

// savePreferences changes the fields the form carries, all or none: any
// refused field saves nothing and names the field. It answers the page
// with the settings now stored, in the subscriber's (new) language.
func (s *server) savePreferences(w http.ResponseWriter, r *http.Request) {
	v := &preferencesView{reader: s.readerFor(r), PublicURL: s.cfg.PublicURL, Action: r.URL.Path, State: "form"}
	sub := s.preferencesSubscriber(w, r, v)
	if sub == nil {
		return
	}
	if !s.sameOrigin(r) {
		s.fill(r, v, sub)
		v.State = "crosssite"
		s.logger.Info("preferences: cross-site POST refused", "subscriber", sub.ID)
		s.preferencesPage(w, http.StatusForbidden, v)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		s.fill(r, v, sub)
		v.Errors = map[string]string{"form": "PrefErrorSummary"}
		s.preferencesPage(w, http.StatusBadRequest, v)
		return
	}
	s.fill(r, v, sub) // the page's language, for the component names
	change, problems := s.parsePreferences(r.PostForm, sub, v.Locale)
	if len(problems) > 0 {
		v.Errors = problems
		s.preferencesPage(w, http.StatusBadRequest, v)
		return
	}
	now := s.now().UTC()
	saved, err := s.deps.Subscribers.Update(r.Context(), sub.ID, func(cur *notifier.Subscriber) error {
		return change.apply(cur, now)
	})
	switch {
	case errors.Is(err, notifier.ErrNotFound):
		v.State = "notfound"
		s.preferencesPage(w, http.StatusNotFound, v)
		return
	case errors.Is(err, errChannelLocked):
		v.Errors = map[string]string{"channels": "PrefChannelsLocked"}
		s.preferencesPage(w, http.StatusConflict, v)
		return
	case err != nil:
		s.logger.Error("preferences: save", "subscriber", sub.ID, "error", err)
		v.State = "unavailable"
		s.preferencesPage(w, http.StatusServiceUnavailable, v)
		return
	}
	var fields []string
	for f := range r.PostForm {
		fields = append(fields, f)
	}
	slices.Sort(fields)
	s.logger.Info("preferences saved", "subscriber", sub.ID, "fields", strings.Join(fields, ","))
	v = &preferencesView{reader: s.readerFor(r), PublicURL: s.cfg.PublicURL, Action: r.URL.Path, State: "form", Saved: true}
	s.fill(r, v, saved)
	s.preferencesPage(w, http.StatusOK, v)
}
