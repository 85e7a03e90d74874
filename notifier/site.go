package notifier

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// Site is what the status page is about: its name and the catalogue of
// components, each named in every language (VARSEL_SITE_FILE). Events name
// components by id; pages, feeds, messages and webhooks show the names.
// The zero Site (no file) names everything by its id.
type Site struct {
	// Name is the page's name ("Gnist status" / "Gnist driftsstatus").
	Name Localized `toml:"name" json:"name,omitempty"`
	// Components in the order the page lists them.
	Components []Component `toml:"components" json:"components,omitempty"`
}

// Component is one entry of the catalogue.
type Component struct {
	ID    string    `toml:"id" json:"id"`
	Name  Localized `toml:"name" json:"name"`
	Group Localized `toml:"group" json:"group,omitempty"`
}

// LoadSite reads a site file; every problem is reported with its place.
func LoadSite(path string) (*Site, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("site file: %w", err)
	}
	return ParseSite(path, b)
}

// ParseSite reads a site file's contents; path names it in errors.
func ParseSite(path string, b []byte) (*Site, error) {
	var s Site
	md, err := toml.Decode(string(b), &s)
	if err != nil {
		return nil, fmt.Errorf("site file %s: %w", path, err)
	}
	var problems []error
	for _, k := range md.Undecoded() {
		problems = append(problems, fmt.Errorf("site file %s: unknown key %q", path, k.String()))
	}
	if err := s.Validate(); err != nil {
		problems = append(problems, fmt.Errorf("site file %s: %w", path, err))
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	return &s, nil
}

// Validate reports every problem of the catalogue at once.
func (s *Site) Validate() error {
	var problems []string
	seen := map[string]bool{}
	for i, c := range s.Components {
		at := fmt.Sprintf("components[%d]", i)
		switch {
		case !ValidComponent(c.ID):
			problems = append(problems, fmt.Sprintf("%s.id %q must be 1–128 letters, digits, '-' or '_'", at, c.ID))
		case seen[c.ID]:
			problems = append(problems, fmt.Sprintf("%s.id %q appears twice", at, c.ID))
		}
		seen[c.ID] = true
		if len(c.Name) == 0 {
			problems = append(problems, fmt.Sprintf("%s.name is missing (name = { en = \"…\", nb = \"…\" })", at))
		}
		for lang, text := range c.Name {
			if strings.TrimSpace(text) == "" {
				problems = append(problems, fmt.Sprintf("%s.name.%s is empty", at, lang))
			}
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// Component returns the catalogue entry of id, if there is one.
func (s *Site) Component(id string) (Component, bool) {
	if s == nil {
		return Component{}, false
	}
	i := slices.IndexFunc(s.Components, func(c Component) bool { return c.ID == id })
	if i < 0 {
		return Component{}, false
	}
	return s.Components[i], true
}

// Known reports whether the catalogue names id; with no catalogue every
// id is known.
func (s *Site) Known(id string) bool {
	if s == nil || len(s.Components) == 0 {
		return true
	}
	_, ok := s.Component(id)
	return ok
}

// Unknown returns the ids the catalogue does not name.
func (s *Site) Unknown(ids []string) []string {
	var out []string
	for _, id := range ids {
		if !s.Known(id) {
			out = append(out, id)
		}
	}
	return out
}

// ComponentName is id's name in locale (falling back as free text does),
// or id itself when the catalogue does not name it.
func (s *Site) ComponentName(id, locale string) string {
	c, ok := s.Component(id)
	if !ok {
		return id
	}
	if name := c.Name.Pick(locale); name != "" {
		return name
	}
	return id
}

// SiteName is the site's name in locale; "" when the file gives none.
func (s *Site) SiteName(locale string) string {
	if s == nil {
		return ""
	}
	return s.Name.Pick(locale)
}

// ValidComponent reports whether id can name a component.
func ValidComponent(id string) bool { return ValidID(id) }

// Pick is the text for a reader of locale: their language, then English,
// then the first language present (by tag, so the choice is stable).
func (l Localized) Pick(locale string) string {
	if len(l) == 0 {
		return ""
	}
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, want := range []string{BaseLanguage(locale), "en"} {
		for _, k := range keys {
			if want != "" && BaseLanguage(k) == want {
				return l[k]
			}
		}
	}
	return l[keys[0]]
}
