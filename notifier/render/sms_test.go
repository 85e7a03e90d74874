package render

import (
	"strings"
	"testing"

	"github.com/varsel/varsel/notifier"
)

func TestSegments(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		segments int
		encoding string
	}{
		{"empty", "", 0, GSM7},
		{"160 GSM-7", strings.Repeat("a", 160), 1, GSM7},
		{"161 GSM-7", strings.Repeat("a", 161), 2, GSM7},
		{"306 GSM-7", strings.Repeat("a", 306), 2, GSM7},
		{"307 GSM-7", strings.Repeat("a", 307), 3, GSM7},
		{"Norwegian letters are basic GSM-7", strings.Repeat("ÆØÅæøå", 26) + "Øy", 1, GSM7},
		{"extension characters count two", strings.Repeat("€", 80), 1, GSM7},
		{"81 euro signs", strings.Repeat("€", 81), 2, GSM7},
		{"brackets count two", strings.Repeat("[]{}~\\^|", 10) + "a", 2, GSM7},
		{"escape pair is not split across parts", strings.Repeat("a", 152) + "€" + strings.Repeat("a", 152), 3, GSM7},
		{"typographic apostrophe forces UCS-2", "It’s down", 1, UCS2},
		{"70 UCS-2", strings.Repeat("ł", 70), 1, UCS2},
		{"71 UCS-2", strings.Repeat("ł", 71), 2, UCS2},
		{"35 emoji are 70 UTF-16 units", strings.Repeat("🔥", 35), 1, UCS2},
		{"surrogate pair is not split across parts", strings.Repeat("🔥", 36), 2, UCS2},
		{"134 UCS-2 units", strings.Repeat("ł", 134), 2, UCS2},
		{"135 UCS-2 units", strings.Repeat("ł", 135), 3, UCS2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, enc := Segments(tt.body)
			if n != tt.segments || enc != tt.encoding {
				t.Errorf("Segments = %d, %s; want %d, %s", n, enc, tt.segments, tt.encoding)
			}
		})
	}
}

func TestNormalizeGSM(t *testing.T) {
	in := "It’s ‘back’ – “mostly”… «Ja» — kl.\u00a012"
	want := `It's 'back' - "mostly"... "Ja" - kl. 12`
	got := NormalizeGSM(in)
	if got != want {
		t.Errorf("NormalizeGSM = %q, want %q", got, want)
	}
	if _, enc := Segments(got); enc != GSM7 {
		t.Errorf("normalized text is %s, want GSM-7", enc)
	}
	if s := "Æ Ø Å æ ø å é ü"; NormalizeGSM(s) != s {
		t.Errorf("NormalizeGSM changed GSM-7 letters: %q", NormalizeGSM(s))
	}
}

// TestSMSOpenedFitsOneSegment is an acceptance check: the SMS for
// incident.opened is one GSM-7 segment in both languages.
func TestSMSOpenedFitsOneSegment(t *testing.T) {
	r := newTestRenderer(t, Config{})
	for _, scenario := range []string{"styreweb", "led"} {
		events, states := loadScenario(t, scenario)
		for id, ev := range events {
			if ev.Type != notifier.IncidentOpened {
				continue
			}
			for _, sub := range testSubscribers("") {
				m, err := r.Render(ev, states[id], sub, notifier.SMS)
				if err != nil {
					t.Fatal(err)
				}
				n, enc := Segments(m.SMS)
				if n != 1 || enc != GSM7 || m.Segments != 1 {
					t.Errorf("%s %s: %d %s segments (Message.Segments %d): %q", id, sub.Locale, n, enc, m.Segments, m.SMS)
				}
				if !strings.HasSuffix(m.SMS, m.IncidentURL) {
					t.Errorf("%s %s: SMS does not end with the incident link: %q", id, sub.Locale, m.SMS)
				}
			}
		}
	}
}

func TestSMSShortensAtWordBoundaryAndKeepsLink(t *testing.T) {
	r := newTestRenderer(t, Config{})
	long := map[string]string{
		"en": strings.Repeat("The database cluster is rebuilding its indexes after the failover. ", 6),
		"nb": strings.Repeat("Databaseklyngen bygger indeksene sine på nytt etter omkoblingen. ", 6),
	}
	ev := everyType()[0]
	ev.Incident.Message = notifier.Localized{"en": long["en"], "nb": long["nb"]}
	for _, sub := range testSubscribers("") {
		locale := ResolveLocale(sub.Locale, "en")
		m, err := r.Render(ev, nil, sub, notifier.SMS)
		if err != nil {
			t.Fatal(err)
		}
		if n, enc := Segments(m.SMS); n != 1 || enc != GSM7 {
			t.Errorf("%s: %d %s segments: %q", locale, n, enc, m.SMS)
		}
		if !strings.HasSuffix(m.SMS, " "+m.IncidentURL) {
			t.Errorf("%s: link lost: %q", locale, m.SMS)
		}
		head, _, ok := strings.Cut(m.SMS, "...")
		if !ok {
			t.Fatalf("%s: no ellipsis in shortened SMS %q", locale, m.SMS)
		}
		words := strings.Fields(head)
		// The kept words, after the title and status, must be a prefix of
		// the free text ending at a word boundary.
		first := strings.Fields(long[locale])[0]
		i := strings.Index(head, first)
		if i < 0 {
			t.Fatalf("%s: free text missing: %q", locale, m.SMS)
		}
		kept := head[i:]
		if !strings.HasPrefix(long[locale], kept) || long[locale][len(kept)] != ' ' {
			t.Errorf("%s: free text cut mid-word: %q (%d words)", locale, kept, len(words))
		}
	}
}

func TestSMSWithoutTheReadersLanguageOmitsTheText(t *testing.T) {
	r := newTestRenderer(t, Config{})
	ev := everyType()[0]
	ev.Incident.Message = notifier.Localized{"en": "Member lists are slow."}
	m, err := r.Render(ev, nil, testSubscribers("")[0], notifier.SMS)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(m.SMS, "Member lists") {
		t.Errorf("Norwegian SMS carries English text as its own: %q", m.SMS)
	}
	if m.ContentLocale != "en" || m.Locale != "nb" {
		t.Errorf("Locale %q ContentLocale %q, want nb and en", m.Locale, m.ContentLocale)
	}
}
