package render

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/varsel/varsel/notifier"
)

// Defaults for the zero values of Config.
const (
	DefaultPublicURL = "http://localhost:8080"
	DefaultLocale    = "en"
	DefaultTimezone  = "Europe/Oslo"
)

// Config configures a Renderer. It is plain data; the zero value of each
// field means its default.
type Config struct {
	// PublicURL is the base of every link, e.g. https://status.example.com
	// (VARSEL_PUBLIC_URL). A trailing slash is ignored. Empty means
	// DefaultPublicURL.
	PublicURL string
	// DefaultLocale is the language of subscribers whose own is missing or
	// not one Varsel speaks (VARSEL_DEFAULT_LOCALE): "en" or "nb", or a tag
	// that resolves to one of them. Empty means "en".
	DefaultLocale string
	// DefaultTimezone is the IANA zone of subscribers without one
	// (VARSEL_TIMEZONE). Empty means Europe/Oslo.
	DefaultTimezone string
	// TemplatesDir optionally names a directory whose *.tmpl files override
	// the embedded templates file by file (VARSEL_TEMPLATES_DIR). Empty
	// means the embedded templates only.
	TemplatesDir string
	// Site names the components in messages (VARSEL_SITE_FILE); nil names
	// them by their ids.
	Site *notifier.Site
}

func (c Config) withDefaults() Config {
	if c.PublicURL == "" {
		c.PublicURL = DefaultPublicURL
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	if c.DefaultLocale == "" {
		c.DefaultLocale = DefaultLocale
	}
	if c.DefaultTimezone == "" {
		c.DefaultTimezone = DefaultTimezone
	}
	return c
}

// Validate reports every problem with the configuration at once.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	u, err := url.Parse(c.PublicURL)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("public URL %q: %w", c.PublicURL, err))
	case u.Scheme != "http" && u.Scheme != "https":
		errs = append(errs, fmt.Errorf("public URL %q: scheme must be http or https", c.PublicURL))
	case u.Host == "":
		errs = append(errs, fmt.Errorf("public URL %q: has no host", c.PublicURL))
	case u.RawQuery != "" || u.Fragment != "":
		errs = append(errs, fmt.Errorf("public URL %q: must not have a query or fragment", c.PublicURL))
	}
	if knownLocale(c.DefaultLocale) == "" {
		errs = append(errs, fmt.Errorf("default locale %q: %w (want en or nb)", c.DefaultLocale, ErrUnknownLocale))
	}
	if _, err := time.LoadLocation(c.DefaultTimezone); err != nil {
		errs = append(errs, fmt.Errorf("default time zone %q: not an IANA zone such as Europe/Oslo", c.DefaultTimezone))
	}
	if c.TemplatesDir != "" {
		fi, err := os.Stat(c.TemplatesDir)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("templates dir: %w", err))
		case !fi.IsDir():
			errs = append(errs, fmt.Errorf("templates dir %q: not a directory", c.TemplatesDir))
		}
	}
	return errors.Join(errs...)
}
