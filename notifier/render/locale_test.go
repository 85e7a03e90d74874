package render

import (
	"strings"
	"testing"
	"time"

	"github.com/varsel/varsel/notifier"
)

func TestResolveLocale(t *testing.T) {
	tests := []struct {
		tag, def, want string
	}{
		{"en", "nb", "en"},
		{"en-GB", "nb", "en"},
		{"en-US", "nb", "en"},
		{"EN_gb", "nb", "en"},
		{"nb", "en", "nb"},
		{"nb-NO", "en", "nb"},
		{"no", "en", "nb"},
		{"no-NO", "en", "nb"},
		{"nn", "en", "nb"},
		{"nn-NO", "en", "nb"},
		{"nb_NO", "en", "nb"},
		// golang/go#48324: a matcher can take Norwegian for Danish or the
		// reverse. Danish is not Norwegian here: it gets the default.
		{"da", "en", "en"},
		{"da-DK", "nb", "nb"},
		{"sv", "en", "en"},
		{"de", "nb", "nb"},
		{"", "nb", "nb"},
		{"not a tag!", "nb", "nb"},
		{"fr", "nb-NO", "nb"},
		{"fr", "xx", "en"},
	}
	for _, tt := range tests {
		if got := ResolveLocale(tt.tag, tt.def); got != tt.want {
			t.Errorf("ResolveLocale(%q, %q) = %q, want %q", tt.tag, tt.def, got, tt.want)
		}
	}
}

func TestText(t *testing.T) {
	r := newTestRenderer(t, Config{DefaultLocale: "en"})
	tests := []struct {
		name     string
		l        notifier.Localized
		locale   string
		want     string
		wantLang string
	}{
		{"reader's language", notifier.Localized{"en": "E", "nb": "N"}, "nb", "N", "nb"},
		{"variant key", notifier.Localized{"en": "E", "nb-NO": "N"}, "nb", "N", "nb"},
		{"nynorsk text for a bokmål reader", notifier.Localized{"en": "E", "nn": "NN"}, "nb", "NN", "nb"},
		{"reader's variant tag", notifier.Localized{"en": "E", "nb": "N"}, "no", "N", "nb"},
		{"default language", notifier.Localized{"en": "E", "de": "D"}, "nb", "E", "en"},
		{"any language, said honestly", notifier.Localized{"de": "D"}, "nb", "D", "de"},
		{"only Norwegian for an English reader", notifier.Localized{"nb": "N"}, "en", "N", "nb"},
		{"Danish is not Norwegian", notifier.Localized{"da": "DA", "en": "E"}, "nb", "E", "en"},
		{"empty", nil, "nb", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, lang := r.Text(tt.l, tt.locale)
			if got != tt.want || lang != tt.wantLang {
				t.Errorf("Text(%v, %q) = %q, %q; want %q, %q", tt.l, tt.locale, got, lang, tt.want, tt.wantLang)
			}
		})
	}
}

func TestFormatTime(t *testing.T) {
	r := newTestRenderer(t, Config{})
	at := time.Date(2019, 9, 17, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		locale, zone, want string
	}{
		{"nb", "Europe/Oslo", "17.09.2019 kl. 10:00"},
		{"nb", "", "17.09.2019 kl. 10:00"},
		{"en", "Europe/Oslo", "17 Sep 2019, 10:00 CEST"},
		{"en", "Europe/London", "17 Sep 2019, 09:00 BST"},
		{"en-GB", "No/Such_Zone", "17 Sep 2019, 10:00 CEST"},
	}
	for _, tt := range tests {
		if got := r.FormatTime(at, tt.locale, tt.zone); got != tt.want {
			t.Errorf("FormatTime(%s, %q) = %q, want %q", tt.locale, tt.zone, got, tt.want)
		}
	}
}

func TestT(t *testing.T) {
	r := newTestRenderer(t, Config{})
	tests := []struct {
		locale, id string
		data       map[string]any
		want       string
	}{
		{"nb", "PageTitle", nil, "Driftsstatus"},
		{"en", "PageTitle", nil, "Service status"},
		{"nb-NO", "PageUpdatedAt", map[string]any{"Time": "19.09.2019 kl. 04:00"}, "Oppdatert 19.09.2019 kl. 04:00"},
		{"nb", "PageUpdateCount", map[string]any{"Count": 1}, "1 oppdatering"},
		{"nb", "PageUpdateCount", map[string]any{"Count": 14}, "14 oppdateringer"},
		{"en", "PageUpdateCount", map[string]any{"Count": 1}, "1 update"},
		{"en", "InHours", map[string]any{"Count": 2}, "in 2 hours"},
		{"nb", "InHours", map[string]any{"Count": 1}, "om én time"},
		{"nb", "NoSuchMessage", nil, "NoSuchMessage"},
	}
	for _, tt := range tests {
		if got := r.T(tt.locale, tt.id, tt.data); got != tt.want {
			t.Errorf("T(%s, %s, %v) = %q, want %q", tt.locale, tt.id, tt.data, got, tt.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero Config: %v", err)
	}
	err := Config{PublicURL: "ftp://x", DefaultLocale: "da", DefaultTimezone: "Mars/Base", TemplatesDir: "/no/such/dir"}.Validate()
	if err == nil {
		t.Fatal("bad config validated")
	}
	for _, want := range []string{"public URL", "default locale", "time zone", "templates dir"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func BenchmarkResolveLocale(b *testing.B) {
	for _, tag := range []string{"nb", "en-GB"} {
		b.Run(tag, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ResolveLocale(tag, "en")
			}
		})
	}
}
