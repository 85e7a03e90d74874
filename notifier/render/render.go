// Package render turns an event into the localized email, SMS and webhook
// text for one subscriber: fixed phrases from the go-i18n catalogues in
// locales/, layout from the templates in templates/ (overridable from a
// directory), times in the reader's zone and format, and SMS that fit one
// segment.
//
// A Renderer executes the templates once per (event, locale, channel, time
// zone) and caches the result; per subscriber it only adds the greeting and
// the unsubscribe link, so a fan-out costs little more per subscriber than
// signing a token.
package render

import (
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	texttemplate "text/template"
	"time"
	// The default zone must load even where the system has no zoneinfo.
	_ "time/tzdata"

	"github.com/BurntSushi/toml"
	"github.com/nicksnyder/go-i18n/v2/i18n"
	"golang.org/x/text/language"

	"github.com/varsel/varsel/locales"
	"github.com/varsel/varsel/notifier"
	"github.com/varsel/varsel/templates"
)

// Errors returned by New and Render.
var (
	// ErrUnknownLocale means a locale is not one Varsel writes (en, nb).
	ErrUnknownLocale = errors.New("unknown locale")
	// ErrUnknownChannel means Render was asked for a channel it has no templates for.
	ErrUnknownChannel = errors.New("unknown channel")
	// ErrNoTemplate means no template exists for an event type on a channel.
	ErrNoTemplate = errors.New("no template")
)

// CacheSize bounds the number of rendered (event, locale, channel, zone)
// entries kept; the oldest used is dropped first.
const CacheSize = 4096

var _ notifier.Renderer = (*Renderer)(nil)

// Renderer renders events for subscribers. It is safe for concurrent use.
type Renderer struct {
	cfg           Config
	defaultLocale string
	defaultZone   *time.Location
	tokens        *notifier.Tokens
	logger        *slog.Logger
	sets          map[string]*langSet
	// sources maps a template file name to where it was read from, for
	// problem reports.
	sources map[string]string
	srcText map[string]string
	cache   *lru
	zones   sync.Map // zone name → *time.Location
}

// langSet is everything bound to one locale: its localizer, its memo of
// data-free phrases and the templates parsed with its t function.
type langSet struct {
	locale string
	loc    *i18n.Localizer
	consts sync.Map // message id → string
	text   *texttemplate.Template
	html   *htmltemplate.Template
	// personal is the plan for the per-subscriber parts of an email.
	personal *personalParts
}

// New loads the catalogues and templates (the embedded ones, overridden by
// cfg.TemplatesDir) and returns a Renderer. It fails on an invalid Config, a
// catalogue that does not parse, or a template that does not parse, naming
// the file and line.
func New(cfg Config, tokens *notifier.Tokens, logger *slog.Logger) (*Renderer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("render config: %w", err)
	}
	if tokens == nil {
		return nil, errors.New("render: tokens are required to sign unsubscribe links")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	zone, _ := time.LoadLocation(cfg.DefaultTimezone) // checked by Validate
	r := &Renderer{
		cfg:           cfg,
		defaultLocale: knownLocale(cfg.DefaultLocale),
		defaultZone:   zone,
		tokens:        tokens,
		logger:        logger,
		sets:          map[string]*langSet{},
		cache:         newLRU(CacheSize),
	}
	bundle, err := loadBundle()
	if err != nil {
		return nil, err
	}
	files, err := r.loadTemplateFiles()
	if err != nil {
		return nil, err
	}
	for _, locale := range Locales {
		ls := &langSet{locale: locale, loc: i18n.NewLocalizer(bundle, locale)}
		if err := ls.parse(files); err != nil {
			return nil, err
		}
		r.sets[locale] = ls
	}
	return r, nil
}

func loadBundle() (*i18n.Bundle, error) {
	bundle := i18n.NewBundle(language.English)
	bundle.RegisterUnmarshalFunc("toml", toml.Unmarshal)
	for _, locale := range Locales {
		name := "active." + locale + ".toml"
		if _, err := bundle.LoadMessageFileFS(locales.FS, name); err != nil {
			return nil, fmt.Errorf("load catalogue %s: %w", name, err)
		}
	}
	return bundle, nil
}

// loadTemplateFiles returns the template files by name: the embedded ones,
// each replaced by a file of the same name in TemplatesDir, plus any other
// *.tmpl file there.
func (r *Renderer) loadTemplateFiles() (map[string]string, error) {
	files := map[string]string{}
	r.sources = map[string]string{}
	names, err := fs.Glob(templates.FS, "*.tmpl")
	if err != nil {
		return nil, fmt.Errorf("list templates: %w", err)
	}
	for _, name := range names {
		b, err := templates.FS.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read template %s: %w", name, err)
		}
		files[name] = string(b)
		r.sources[name] = "templates/" + name
	}
	if dir := r.cfg.TemplatesDir; dir != "" {
		over, err := filepath.Glob(filepath.Join(dir, "*.tmpl"))
		if err != nil {
			return nil, fmt.Errorf("list templates in %s: %w", dir, err)
		}
		for _, path := range over {
			b, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("read template: %w", err)
			}
			name := filepath.Base(path)
			if _, ok := files[name]; ok {
				r.logger.Info("template overridden", "file", name, "path", path)
			} else {
				r.logger.Info("template added", "file", name, "path", path)
			}
			files[name] = string(b)
			r.sources[name] = path
		}
	}
	r.srcText = files
	return files, nil
}

// parse parses every file into this locale's text or HTML set: *.html.tmpl
// into HTML, common*.tmpl into both, everything else into text.
func (ls *langSet) parse(files map[string]string) error {
	funcs := ls.funcs()
	ls.text = texttemplate.New("").Funcs(funcs).Option("missingkey=error")
	ls.html = htmltemplate.New("").Funcs(htmltemplate.FuncMap(funcs)).Option("missingkey=error")
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		html := strings.HasSuffix(name, ".html.tmpl")
		common := strings.HasPrefix(name, "common")
		if !html || common {
			if _, err := ls.text.New(name).Parse(files[name]); err != nil {
				return fmt.Errorf("parse template: %w", err)
			}
		}
		if html || common {
			if _, err := ls.html.New(name).Parse(files[name]); err != nil {
				return fmt.Errorf("parse template: %w", err)
			}
		}
	}
	if err := ls.planPersonal(); err != nil {
		return fmt.Errorf("plan personal templates: %w", err)
	}
	return nil
}

// phrase returns a data-free message, memoized: most phrases in a message
// have no data, and go-i18n matches languages on every call.
func (ls *langSet) phrase(id string) (string, error) {
	if s, ok := ls.consts.Load(id); ok {
		return s.(string), nil
	}
	s, err := ls.localize(id, nil, nil)
	if err != nil {
		return "", err
	}
	ls.consts.Store(id, s)
	return s, nil
}

// localize returns a message with data; count selects the plural form when
// not nil. A message missing in this locale is an error even when the
// English catalogue has it: a Norwegian reader must not get English.
func (ls *langSet) localize(id string, count any, data map[string]any) (string, error) {
	lc := &i18n.LocalizeConfig{MessageID: id, TemplateData: data, PluralCount: count}
	s, err := ls.loc.Localize(lc)
	if err != nil {
		return "", fmt.Errorf("message %q in %s: %w", id, ls.locale, err)
	}
	return s, nil
}

// set returns the langSet of a locale, resolving variants and falling back
// to the default locale.
func (r *Renderer) set(locale string) *langSet {
	if ls, ok := r.sets[locale]; ok {
		return ls
	}
	return r.sets[ResolveLocale(locale, r.defaultLocale)]
}

// Preview renders ev for sub on ch as Render does, but never from or into
// the cache: the console previews events that are not published yet, and
// may preview the same id again after an edit.
func (r *Renderer) Preview(ev *notifier.Event, inc *notifier.IncidentState, sub *notifier.Subscriber, ch notifier.ChannelName) (*notifier.Message, error) {
	tz := sub.Timezone
	if tz == "" {
		tz = r.cfg.DefaultTimezone
	}
	p, _, err := r.renderPart(ev, inc, ResolveLocale(sub.Locale, r.defaultLocale), ch, r.location(tz))
	if err != nil {
		return nil, err
	}
	return r.personalize(p, sub, ch)
}
