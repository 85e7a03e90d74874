package render

import (
	"cmp"
	"fmt"
	"html"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/varsel/varsel/locales"
	"github.com/varsel/varsel/notifier"
)

// Problem is one defect found by Check.
type Problem struct {
	File    string // template or catalogue file; the override path when overridden
	Line    int    // 0 when unknown
	Locale  string
	Channel string
	EventID string
	Message string
}

// String formats the problem as "file:line: event locale channel: message".
func (p Problem) String() string {
	where := p.File
	if p.Line > 0 {
		where += ":" + strconv.Itoa(p.Line)
	}
	return fmt.Sprintf("%s: %s %s %s: %s", where, p.EventID, p.Locale, p.Channel, p.Message)
}

// SameInBothLanguages lists the message ids whose English and Norwegian
// texts are rightly identical; the catalogue test allows exactly these.
var SameInBothLanguages = []string{"LabelStatus", "ConsoleTest", "ConsoleErrField"}

// Stop words that give away a fixed phrase written into a template in the
// wrong language. Short and unambiguous on purpose.
var stopWords = map[string][]string{
	"nb": {"the", "and", "your", "you", "we", "our", "please", "update", "updates", "click", "here", "with", "will"},
	"en": {"og", "ikke", "vi", "på", "med", "har", "det", "som", "deg", "dine", "oppdatering", "kl"},
}

var (
	templateErr = regexp.MustCompile(`template: ([^:\s]+):(\d+)(?::\d+)?: (.*)`)
	urlPattern  = regexp.MustCompile(`https?://\S+`)
	tagPattern  = regexp.MustCompile(`<[^>]*>`)
	actionRe    = regexp.MustCompile(`\{\{[^}]*\}\}`)
)

// Check renders every template in every locale on every channel for each of
// events (in order, applying them to incident states as the pipeline does)
// and returns every problem found: a template that fails or is missing, a
// missing message id, a fixed phrase of the other language in a message
// (English in a Norwegian one, or the reverse), and an SMS over its budget of
// one segment. Letters are checked on every channel, SMS included, although
// the channel policy never sends them by SMS. The notices Varsel sends about
// a subscription (the webhook-disabled email, for every reason) are checked
// in every locale too, under the event id "notice.webhook_disabled/REASON".
//
// Beside events, Check renders one copy of an incident event per data
// statement, every risk with every restore state (and each alone), and
// reports a message that does not state it in the words of the catalogue.
func (r *Renderer) Check(events []*notifier.Event) []Problem {
	var problems []Problem
	foreign, err := r.foreignPhrases()
	if err != nil {
		return []Problem{{File: "locales", Message: err.Error()}}
	}
	variants := dataVariants(events)
	states := map[string]*notifier.IncidentState{}
	for _, ev := range append(slices.Clip(events), variants...) {
		var inc *notifier.IncidentState
		if ev.Incident != nil {
			inc = states[ev.Incident.ID]
			if inc == nil {
				inc = &notifier.IncidentState{}
				states[ev.Incident.ID] = inc
			}
			inc.Apply(ev)
		}
		for _, locale := range Locales {
			for _, ch := range notifier.ChannelNames {
				add := func(file string, line int, msg string) {
					problems = append(problems, Problem{File: file, Line: line, Locale: locale, Channel: string(ch), EventID: ev.ID, Message: msg})
				}
				sub := &notifier.Subscriber{ID: "check", Name: "Kari Nordmann", Locale: locale}
				m, err := r.Preview(ev, inc, sub, ch)
				if err != nil {
					file, line, msg := r.locate(err, ch)
					add(file, line, msg)
					continue
				}
				if ch != notifier.SMS && slices.Contains(variants, ev) {
					for _, want := range r.DataStatement(ev.Incident.Data, locale, "") {
						if !strings.Contains(m.Text+m.WebhookText, want) {
							add(r.source(channelFile(ch)), 0, fmt.Sprintf("the data statement %q is missing", want))
						}
					}
				}
				if ch == notifier.SMS && m.Segments > 1 {
					_, enc := Segments(m.SMS)
					add(r.source("sms.tmpl"), 0, fmt.Sprintf("SMS needs %d %s segments, the budget is 1 (%d characters): %q", m.Segments, enc, len([]rune(m.SMS)), m.SMS))
				}
				// Render again with every free text replaced by a neutral
				// mark, so only fixed phrases remain to be checked.
				pm, err := r.Preview(probeEvent(ev), inc, &notifier.Subscriber{ID: "check", Name: "§", Locale: locale}, ch)
				if err != nil {
					continue // reported above
				}
				out := fixedText(pm)
				for _, ph := range foreign[locale] {
					if ph.re.MatchString(out) {
						file, line := r.whereIs(ph.text, channelFile(ch))
						add(file, line, fmt.Sprintf("%s phrase %q in a %s message", languageLabel(otherLocale(locale)), ph.text, languageLabel(locale)))
					}
				}
			}
		}
	}
	return append(problems, r.checkNotices(foreign)...)
}

// dataVariants returns copies of the first incident event of events (not
// maintenance), one per data statement: each risk with each restore state,
// and each alone. It returns nil when events hold no incident event.
func dataVariants(events []*notifier.Event) []*notifier.Event {
	var base *notifier.Event
	for _, ev := range events {
		if ev.Incident != nil && !ev.Type.IsMaintenance() && ev.Type != notifier.IncidentPostmortem {
			base = ev
			break
		}
	}
	if base == nil {
		return nil
	}
	backup := base.Time.Add(-24 * time.Hour)
	var out []*notifier.Event
	for _, risk := range append([]notifier.Risk{""}, notifier.Risks...) {
		for _, state := range append([]notifier.RestoreState{""}, notifier.RestoreStates...) {
			if risk == "" && state == "" {
				continue
			}
			d := &notifier.DataSafety{Risk: risk}
			if state != "" {
				d.Restore = &notifier.Restore{FromBackupAt: backup, State: state}
			}
			ev := *base
			in := *base.Incident
			in.ID = "check-data"
			in.Data = d
			ev.ID = fmt.Sprintf("check-data-%s-%s", cmp.Or(string(risk), "no_risk"), cmp.Or(string(state), "no_restore"))
			ev.Incident = &in
			out = append(out, &ev)
		}
	}
	return out
}

// noticeReasons are the suppressions the webhook notice is checked with:
// each words the reason differently.
var noticeReasons = []notifier.Suppression{
	{Reason: notifier.ReasonGone, Detail: "webhook answered 410 Gone"},
	{Reason: notifier.ReasonDisabled, Detail: "5 failed deliveries in a row; last: timeout"},
	{Reason: notifier.ReasonDisabled},
	{Reason: notifier.ReasonRejected},
}

// checkNotices renders the webhook notice in every locale for every reason
// and reports failures and fixed phrases of the other language.
func (r *Renderer) checkNotices(foreign map[string][]phrase) []Problem {
	var problems []Problem
	at := time.Date(2024, 5, 2, 8, 0, 0, 0, time.UTC)
	for _, why := range noticeReasons {
		why.At = at
		id := noticeWebhookDisabled + "/" + string(why.Reason)
		for _, locale := range Locales {
			add := func(file string, line int, msg string) {
				problems = append(problems, Problem{File: file, Line: line, Locale: locale, Channel: string(notifier.Email), EventID: id, Message: msg})
			}
			sub := &notifier.Subscriber{ID: "check", Name: "§", Locale: locale, WebhookURL: "https://hooks.example.com/in/check"}
			m, err := r.webhookDisabledNotice(sub, why, locale, r.defaultZone)
			if err != nil {
				if mm := templateErr.FindStringSubmatch(err.Error()); mm != nil {
					line, _ := strconv.Atoi(mm[2])
					add(r.source(mm[1]), line, mm[3])
				} else {
					add(r.source(noticeFile), 0, err.Error())
				}
				continue
			}
			out := fixedText(m)
			for _, ph := range foreign[locale] {
				if ph.re.MatchString(out) {
					file, line := r.whereIs(ph.text, noticeFile)
					add(file, line, fmt.Sprintf("%s phrase %q in a %s message", languageLabel(otherLocale(locale)), ph.text, languageLabel(locale)))
				}
			}
		}
	}
	return problems
}

// noticeFile holds the notices' subject and text templates.
const noticeFile = "notice.tmpl"

// locate finds the file and line in a template error.
func (r *Renderer) locate(err error, ch notifier.ChannelName) (string, int, string) {
	if m := templateErr.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[2])
		return r.source(m[1]), line, m[3]
	}
	return r.source(channelFile(ch)), 0, err.Error()
}

func channelFile(ch notifier.ChannelName) string {
	switch ch {
	case notifier.Email:
		return "email.txt.tmpl"
	case notifier.SMS:
		return "sms.tmpl"
	}
	return "webhook.tmpl"
}

func (r *Renderer) source(name string) string {
	if s, ok := r.sources[name]; ok {
		return s
	}
	return name
}

// whereIs finds the first line holding phrase in the template file first,
// then in any template, then in the catalogues.
func (r *Renderer) whereIs(phrase, first string) (string, int) {
	names := make([]string, 0, len(r.srcText))
	for name := range r.srcText {
		names = append(names, name)
	}
	slices.Sort(names)
	slices.SortStableFunc(names, func(a, b string) int {
		return boolRank(a == first) - boolRank(b == first)
	})
	for _, name := range names {
		if line := lineOf(r.srcText[name], phrase); line > 0 {
			return r.source(name), line
		}
	}
	for _, locale := range Locales {
		name := "active." + locale + ".toml"
		b, err := locales.FS.ReadFile(name)
		if err == nil {
			if line := lineOf(string(b), phrase); line > 0 {
				return "locales/" + name, line
			}
		}
	}
	return r.source(first), 0
}

func boolRank(b bool) int {
	if b {
		return 0
	}
	return 1
}

func lineOf(text, phrase string) int {
	for i, l := range strings.Split(text, "\n") {
		if strings.Contains(l, phrase) {
			return i + 1
		}
	}
	return 0
}

// fixedText is everything a reader sees in a message, without links and markup.
func fixedText(m *notifier.Message) string {
	htmlText := html.UnescapeString(tagPattern.ReplaceAllString(m.HTML, " "))
	all := strings.Join([]string{m.Subject, m.Text, htmlText, m.SMS, m.WebhookText}, "\n")
	return urlPattern.ReplaceAllString(all, " ")
}

// phrase is a fixed phrase of one language, to be searched for in messages
// of the other.
type phrase struct {
	text string
	re   *regexp.Regexp
}

// foreignPhrases returns, for each locale, the phrases that must not appear
// in its messages: the other catalogue's fixed text (minus what both share)
// and the other language's stop words.
func (r *Renderer) foreignPhrases() (map[string][]phrase, error) {
	frags := map[string]map[string]bool{}
	for _, locale := range Locales {
		cat, err := Catalogue(locale)
		if err != nil {
			return nil, err
		}
		frags[locale] = map[string]bool{}
		for id, forms := range cat {
			if slices.Contains(SameInBothLanguages, id) || strings.HasPrefix(id, "Format") {
				continue
			}
			for form, text := range forms {
				if form == "description" || form == "hash" {
					continue
				}
				for _, f := range actionRe.Split(text, -1) {
					f = strings.Trim(f, " .,:;()!?\n")
					if letters(f) >= 4 {
						frags[locale][f] = true
					}
				}
			}
		}
	}
	out := map[string][]phrase{}
	for _, locale := range Locales {
		other := otherLocale(locale)
		var texts []string
		for f := range frags[other] {
			if !frags[locale][f] {
				texts = append(texts, f)
			}
		}
		texts = append(texts, stopWords[locale]...)
		slices.Sort(texts)
		for _, t := range texts {
			out[locale] = append(out[locale], phrase{text: t, re: regexp.MustCompile(`(?:^|[^\p{L}])` + regexp.QuoteMeta(t) + `(?:$|[^\p{L}])`)})
		}
	}
	return out, nil
}

func letters(s string) int {
	n := 0
	for _, r := range s {
		if r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r > 127 {
			n++
		}
	}
	return n
}

func otherLocale(locale string) string {
	if locale == "nb" {
		return "en"
	}
	return "nb"
}

func languageLabel(locale string) string {
	if locale == "nb" {
		return "Norwegian"
	}
	return "English"
}

// Catalogue returns the raw entries of a locale's catalogue: message id →
// field ("other", "one", "description", …) → text.
func Catalogue(locale string) (map[string]map[string]string, error) {
	name := "active." + locale + ".toml"
	b, err := locales.FS.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("read catalogue: %w", err)
	}
	var raw map[string]any
	if err := toml.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("parse catalogue %s: %w", name, err)
	}
	cat := make(map[string]map[string]string, len(raw))
	for id, v := range raw {
		switch v := v.(type) {
		case string:
			cat[id] = map[string]string{"other": v}
		case map[string]any:
			forms := map[string]string{}
			for k, s := range v {
				if s, ok := s.(string); ok {
					forms[k] = s
				}
			}
			cat[id] = forms
		default:
			return nil, fmt.Errorf("parse catalogue %s: entry %q is neither text nor a table", name, id)
		}
	}
	return cat, nil
}

// probeEvent copies ev with every free text replaced by "§" in the same
// languages, so the language-fallback notes stay as they are.
func probeEvent(ev *notifier.Event) *notifier.Event {
	p := *ev
	mark := func(l notifier.Localized) notifier.Localized {
		if l == nil {
			return nil
		}
		out := make(notifier.Localized, len(l))
		for k := range l {
			out[k] = "§"
		}
		return out
	}
	if ev.Incident != nil {
		in := *ev.Incident
		in.Title, in.Message, in.Contact = mark(in.Title), mark(in.Message), mark(in.Contact)
		p.Incident = &in
	}
	if ev.Letter != nil {
		l := *ev.Letter
		l.Subject, l.Body = mark(l.Subject), mark(l.Body)
		if l.Sections != nil {
			s := *l.Sections
			s.WhatHappened, s.DataSafety, s.GoingForward, s.Apology = mark(s.WhatHappened), mark(s.DataSafety), mark(s.GoingForward), mark(s.Apology)
			l.Sections = &s
		}
		l.Signature.Name = "§"
		l.Signature.Title = mark(l.Signature.Title)
		p.Letter = &l
	}
	return &p
}
