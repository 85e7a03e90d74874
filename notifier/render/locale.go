package render

import (
	"slices"
	"time"

	"golang.org/x/text/language"
	"golang.org/x/text/language/display"

	"github.com/varsel/varsel/notifier"
)

// Locales lists the languages Varsel writes, in a stable order.
var Locales = []string{"en", "nb"}

// knownLocale maps a language tag to "en" or "nb", or "" when Varsel does
// not write that language. It looks at the base language only, on purpose:
// a language.Matcher over {en, nb} can rank Norwegian variants oddly (and
// with Danish in a supported list it picks Danish for "no", golang/go#48324),
// while the rule here is simple and total: every Norwegian tag is Bokmål.
func knownLocale(tag string) string { return notifier.BaseLanguage(tag) }

// ResolveLocale returns the language Varsel writes to a reader with tag:
// en, en-GB, en-US → "en"; nb, nb-NO, no, nn, nn-NO → "nb" (never Danish);
// anything else, or an empty or malformed tag, → defaultLocale resolved the
// same way, and "en" when that is unknown too.
func ResolveLocale(tag, defaultLocale string) string {
	if l := knownLocale(tag); l != "" {
		return l
	}
	if l := knownLocale(defaultLocale); l != "" {
		return l
	}
	return "en"
}

// chooseText picks the free text for a reader of locale: the reader's
// language, then the default locale, then any language present (the
// lexically first tag, so the choice is stable). lang is "en" or "nb" for
// those languages and the text's own tag otherwise.
func chooseText(l notifier.Localized, locale, defaultLocale string) (text, lang string) {
	if len(l) == 0 {
		return "", ""
	}
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	// Exact tags ("nb") sort before their variants ("nb-NO").
	slices.Sort(keys)
	for _, want := range []string{locale, defaultLocale} {
		for _, k := range keys {
			if knownLocale(k) == want {
				return l[k], want
			}
		}
	}
	k := keys[0]
	if known := knownLocale(k); known != "" {
		return l[k], known
	}
	return l[k], k
}

// Text picks the incident's free text for a reader of locale (see
// ResolveLocale) and reports the language it is in, so the caller can say so
// when it is not the reader's: the reader's language, else the default
// locale, else any language present. It returns "", "" for no text.
func (r *Renderer) Text(l notifier.Localized, locale string) (text, lang string) {
	return chooseText(l, ResolveLocale(locale, r.cfg.DefaultLocale), r.defaultLocale)
}

// languageName names the language of lang in locale: "engelsk", "Norwegian".
func (ls *langSet) languageName(lang string) (string, error) {
	switch knownLocale(lang) {
	case "en":
		return ls.phrase("LanguageEnglish")
	case "nb":
		return ls.phrase("LanguageNorwegian")
	}
	tag, err := language.Parse(lang)
	if err != nil {
		return lang, nil // shown as it is
	}
	if name := display.Tags(language.Make(ls.locale)).Name(tag); name != "" {
		return name, nil
	}
	return lang, nil
}

// location returns the named zone, loading each zone once; an empty or
// unknown name gives the default zone.
func (r *Renderer) location(name string) *time.Location {
	if name == "" {
		return r.defaultZone
	}
	if loc, ok := r.zones.Load(name); ok {
		return loc.(*time.Location)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		r.logger.Warn("unknown time zone, using the default", "timezone", name, "default", r.defaultZone.String())
		loc = r.defaultZone
	}
	r.zones.Store(name, loc)
	return loc
}

// FormatTime formats t in the reader's zone and the locale's format:
// "17.09.2019 kl. 10:00" in Norwegian, "17 Sep 2019, 10:00 CEST" in
// English. An empty or unknown timezone means the default zone.
// The zone is named when it is not the default zone (in English always).
func (r *Renderer) FormatTime(t time.Time, locale, timezone string) string {
	ls := r.set(locale)
	loc := r.location(timezone)
	layout, err := ls.timeLayout("FormatDateTime", loc.String() != r.defaultZone.String())
	if err != nil {
		layout = time.RFC3339
	}
	return t.In(loc).Format(layout)
}

// T returns the localized fixed phrase messageID, filled in with data (nil
// for none; a "Count" entry selects the plural form). A missing id returns
// the id itself, so a gap shows on the page instead of breaking it; the
// catalogue tests keep that from happening.
func (r *Renderer) T(locale, messageID string, data map[string]any) string {
	ls := r.set(locale)
	var s string
	var err error
	if data == nil {
		s, err = ls.phrase(messageID)
	} else {
		s, err = ls.localize(messageID, data["Count"], data)
	}
	if err != nil {
		r.logger.Warn("missing message", "locale", ls.locale, "id", messageID, "err", err)
		return messageID
	}
	return s
}

// DataStatement returns the sentences of a data statement for a reader, as
// messages word it: the risk (worded for whether a restore stands beside
// it), then the restore in the tense of its state with the backup point in
// the reader's zone. It returns none for nil.
func (r *Renderer) DataStatement(d *notifier.DataSafety, locale, timezone string) []string {
	risk, restore := d.Current()
	var out []string
	state := ""
	if restore != nil {
		state = string(restore.State)
	}
	if risk != "" {
		out = append(out, r.T(locale, RiskPhrase(string(risk), state), nil))
	}
	if restore != nil {
		out = append(out, r.T(locale, "DataRestore"+camel(state), map[string]any{"Time": r.FormatTime(restore.FromBackupAt, locale, timezone)}))
	}
	return out
}
