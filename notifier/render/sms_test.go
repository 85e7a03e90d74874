package render

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/varsel/varsel/examples"
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

// TestSMSKeepsWholeSentences: a long text is cut to the sentences that
// fit, never inside one, and a sentence that does not fit is left out
// whole; status, the promise and the link stay.
func TestSMSKeepsWholeSentences(t *testing.T) {
	r := newTestRenderer(t, Config{})
	tests := []struct {
		name string
		text map[string]string
		// want is the free text the SMS must carry, "" for none.
		want map[string]string
	}{
		{"two short sentences fit, the third does not",
			map[string]string{
				"en": "The database is rebuilding. Lists slow. The rebuild has reached the member table of the largest organisations and continues.",
				"nb": "Databasen bygges om. Trege lister. Gjenoppbyggingen har nådd medlemstabellen til de største foreningene og fortsetter.",
			},
			map[string]string{"en": "The database is rebuilding. Lists slow.", "nb": "Databasen bygges om. Trege lister."}},
		{"a first sentence too long leaves the text out",
			map[string]string{
				"en": "Some requests to the Gnist API are failing because one of the three database nodes lost its disk and the others are taking its load.",
				"nb": "Noen forespørsler til Gnist-API-et feiler fordi en av de tre databasenodene mistet disken sin og de andre tar over lasten.",
			},
			map[string]string{"en": "", "nb": ""}},
		{"abbreviations and times do not end a sentence",
			map[string]string{
				"en": "Back by approx. 14:00, e.g. later. More soon.",
				"nb": "Om ca. 1 t, f.eks. kl. 14. Mer snart.",
			},
			map[string]string{"en": "Back by approx. 14:00, e.g. later. More soon.", "nb": "Om ca. 1 t, f.eks. kl. 14. Mer snart."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := *everyType()[0]
			in := *ev.Incident
			in.Message = notifier.Localized{"en": tt.text["en"], "nb": tt.text["nb"]}
			in.Title = notifier.Localized{"en": "Lists", "nb": "Lister"}
			ev.Incident, ev.ID = &in, "sms-"+tt.name
			for _, sub := range testSubscribers("") {
				m, err := r.Render(&ev, nil, sub, notifier.SMS)
				if err != nil {
					t.Fatal(err)
				}
				if n, enc := Segments(m.SMS); n != 1 || enc != GSM7 {
					t.Errorf("%s: %d %s segments: %q", m.Locale, n, enc, m.SMS)
				}
				if strings.Contains(m.SMS, "...") || strings.Contains(m.SMS, "…") {
					t.Errorf("%s: ellipsis in %q", m.Locale, m.SMS)
				}
				head := strings.TrimSuffix(m.SMS, " "+m.IncidentURL)
				if head == m.SMS {
					t.Errorf("%s: link lost: %q", m.Locale, m.SMS)
				}
				// The text comes after the status and the promise.
				_, text, _ := strings.Cut(head, map[string]string{"en": "Next update by 10:30.", "nb": "Neste status kl. 10:30."}[m.Locale])
				if got, want := strings.TrimSpace(text), tt.want[m.Locale]; got != want {
					t.Errorf("%s: free text %q, want %q (SMS %q)", m.Locale, got, want, m.SMS)
				}
			}
		})
	}
}

func TestSentences(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"One. Two! Three?", []string{"One.", "Two!", "Three?"}},
		{"Status fra kl. 14 gjelder. Neste kl. 16.", []string{"Status fra kl. 14 gjelder.", "Neste kl. 16."}},
		{"Backup fra 15.09.2019 kl. 03:00 er brukt. Takk.", []string{"Backup fra 15.09.2019 kl. 03:00 er brukt.", "Takk."}},
		{`It was "dead." Then it came back.`, []string{`It was "dead."`, "Then it came back."}},
		{"Det var «død». Så kom den tilbake.", []string{"Det var «død».", "Så kom den tilbake."}},
		{"A line without a stop\nAnother line.", []string{"A line without a stop.", "Another line."}},
		{"Mr. Smith called. We answered.", []string{"Mr. Smith called.", "We answered."}},
		// The clock's words are not a sentence's end: "3 p.m." cut from
		// "Norwegian time" reads as the reader's own clock.
		{"Logins fail since approx. 3 p.m. Norwegian time. We are on it.", []string{"Logins fail since approx. 3 p.m. Norwegian time.", "We are on it."}},
		{"Nede siden ca. kl. 15, inkl. Appen. Vi jobber med det.", []string{"Nede siden ca. kl. 15, inkl. Appen.", "Vi jobber med det."}},
		{"Here is a summary:\n- one\n- two", nil},
		{"First.\n\nHere is a summary:\n- one", []string{"First."}},
		{"ends in lower case. and goes on", []string{"ends in lower case. and goes on."}},
	}
	for _, tt := range tests {
		if got := sentences(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("sentences(%q) = %q, want %q", tt.in, got, tt.want)
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

// TestSMSEveryExampleFitsOneSegment: the SMS of every example event, in
// both languages, for readers in the default zone and in London, fits one
// GSM-7 segment and ends with its link, with the default PublicURL and with
// a longer one.
func TestSMSEveryExampleFitsOneSegment(t *testing.T) {
	for _, publicURL := range []string{"", "https://status.example-company.com"} {
		r := newTestRenderer(t, Config{PublicURL: publicURL})
		for _, name := range examples.Names() {
			events, states := loadScenario(t, name)
			for id, ev := range events {
				for _, sub := range append(testSubscribers(""), testSubscribers("Europe/London")[1]) {
					m, err := r.Render(ev, states[id], sub, notifier.SMS)
					if err != nil {
						t.Fatal(err)
					}
					n, enc := Segments(m.SMS)
					if n != 1 || enc != GSM7 || m.Segments != 1 {
						t.Errorf("%s %s %s %q: %d %s segments (%d characters): %q", publicURL, id, sub.Locale, sub.Timezone, n, enc, len([]rune(m.SMS)), m.SMS)
					}
					link := m.IncidentURL
					if link == "" {
						link = m.StatusURL
					}
					if !strings.HasSuffix(m.SMS, " "+link) {
						t.Errorf("%s %s %s: SMS does not end with its link %s: %q", publicURL, id, sub.Locale, link, m.SMS)
					}
				}
			}
		}
	}
}

// TestSMSMaintenanceWindow: the SMS shows the window compactly, in the
// reader's zone, names the zone only for a reader outside the default
// zone, and does not promise an update at the end of the window it shows.
func TestSMSMaintenanceWindow(t *testing.T) {
	r := newTestRenderer(t, Config{})
	events, states := loadScenario(t, "maintenance")
	oslo, london := testSubscribers(""), testSubscribers("Europe/London")[1]
	tests := []struct {
		id   string
		sub  *notifier.Subscriber
		want string
	}{
		{"styreweb-db-2019-10-01-1000-scheduled", oslo[0], "Oppgradering av databasen i StyreWeb: planlagt. Når: 8.10. kl. 23:00-9.10. kl. 02:00. http"},
		{"styreweb-db-2019-10-01-1000-scheduled", oslo[1], "Database upgrade in StyreWeb: planned. When: 8 Oct 23:00-9 Oct 02:00. http"},
		{"styreweb-db-2019-10-01-1000-scheduled", london, "When: 8 Oct 22:00-9 Oct 01:00 BST."},
		{"styreweb-db-2019-10-08-2300-started", oslo[0], "Oppgradering av databasen i StyreWeb: pågår. Når: 8.10. kl. 23:00-9.10. kl. 02:00. http"},
		{"styreweb-db-2019-10-08-2300-started", oslo[1], "Database upgrade in StyreWeb: under way. When: 8 Oct 23:00-9 Oct 02:00. http"},
	}
	for _, tt := range tests {
		m, err := r.Render(events[tt.id], states[tt.id], tt.sub, notifier.SMS)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(m.SMS, tt.want) {
			t.Errorf("%s %s %s:\n got %q\nwant %q in it", tt.id, tt.sub.Locale, tt.sub.Timezone, m.SMS, tt.want)
		}
		if strings.Contains(m.SMS, "Next update") || strings.Contains(m.SMS, "Neste status") {
			t.Errorf("%s %s: promises an update at the end of the window: %q", tt.id, tt.sub.Locale, m.SMS)
		}
	}
}

// TestSMSWindowForms covers a window of more than 24 hours, a promise
// that is not the window's end, and a window in another year.
func TestSMSWindowForms(t *testing.T) {
	r := newTestRenderer(t, Config{})
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	ev := everyType()[5] // maintenance.started
	ev.Incident.Message = nil
	tests := []struct {
		name             string
		start, end, next string
		wantEn, wantNb   string
	}{
		{"over 24 hours", "2024-05-10T22:00:00+02:00", "2024-05-12T06:00:00+02:00", "",
			"When: 10 May 22:00 to 12 May 06:00. http", "Når: 10.5. kl. 22:00 til 12.5. kl. 06:00. http"},
		{"same day, promise before the end", "2024-05-10T22:00:00+02:00", "2024-05-10T23:30:00+02:00", "2024-05-10T23:00:00+02:00",
			"When: 10 May 22:00-23:30. Next update by 23:00. http", "Når: 10.5. kl. 22:00-23:30. Neste status kl. 23:00. http"},
		{"into the next year", "2024-12-31T22:00:00+01:00", "2025-01-01T02:00:00+01:00", "",
			"When: 31 Dec 22:00-1 Jan 02:00. http", "Når: 31.12. kl. 22:00-1.1. kl. 02:00. http"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := *ev
			in := *ev.Incident
			e.ID = "window-" + tt.name
			start, end := at(tt.start), at(tt.end)
			e.Time, in.StartedAt, in.ScheduledStart, in.ScheduledEnd = start, start, &start, &end
			if tt.next != "" {
				next := at(tt.next)
				in.NextUpdateAt = &next
			}
			e.Incident = &in
			for _, sub := range testSubscribers("") {
				m, err := r.Render(&e, nil, sub, notifier.SMS)
				if err != nil {
					t.Fatal(err)
				}
				want := tt.wantEn
				if m.Locale == "nb" {
					want = tt.wantNb
				}
				if !strings.Contains(m.SMS, want) {
					t.Errorf("%s: got %q, want %q in it", m.Locale, m.SMS, want)
				}
			}
		})
	}
}

// TestSMSDropsOptionalPartsInOrder: with a title that leaves little room,
// the free text goes first, then the end of the window, then the
// next-update promise; the link never goes.
func TestSMSDropsOptionalPartsInOrder(t *testing.T) {
	r := newTestRenderer(t, Config{PublicURL: "https://status.example-company.com"})
	next := time.Date(2024, 5, 10, 23, 0, 0, 0, time.FixedZone("CEST", 2*3600))
	base := everyType()[5] // maintenance.started, 22:00-23:30
	tests := []struct {
		titleLen        int
		message, nextUp bool
		end, over       bool
	}{
		{titleLen: 1, message: true, nextUp: true, end: true},
		{titleLen: 40, message: false, nextUp: true, end: true},
		{titleLen: 45, message: false, nextUp: true, end: false},
		{titleLen: 68, message: false, nextUp: false, end: false},
		// Nothing optional is left: over budget, but title and link stay.
		{titleLen: 75, message: false, nextUp: false, end: false, over: true},
	}
	for _, tt := range tests {
		ev := *base
		in := *base.Incident
		ev.ID = fmt.Sprintf("drop-%d", tt.titleLen)
		title := strings.Repeat("x", tt.titleLen)
		in.Title = notifier.Localized{"en": title, "nb": title}
		in.NextUpdateAt = &next
		ev.Incident = &in
		m, err := r.Render(&ev, nil, testSubscribers("")[1], notifier.SMS)
		if err != nil {
			t.Fatal(err)
		}
		got := struct{ message, nextUp, end bool }{
			strings.Contains(m.SMS, "StyreWeb may be slow for a few minutes."), strings.Contains(m.SMS, "Next update by 23:00"), strings.Contains(m.SMS, "22:00-23:30"),
		}
		if got.message != tt.message || got.nextUp != tt.nextUp || got.end != tt.end || !strings.Contains(m.SMS, "When: 10 May 22:00") {
			t.Errorf("title of %d: got %q; want message %v, next update %v, window end %v", tt.titleLen, m.SMS, tt.message, tt.nextUp, tt.end)
		}
		if !strings.HasPrefix(m.SMS, title+": ") || !strings.HasSuffix(m.SMS, " "+m.IncidentURL) || (m.Segments == 1) == tt.over {
			t.Errorf("title of %d: %d segments or link lost: %q", tt.titleLen, m.Segments, m.SMS)
		}
	}
}

// TestNoExampleSMSHasAnEllipsis: every example's SMS, in both languages
// and zones, carries whole sentences or none: no "..." or "…" anywhere.
func TestNoExampleSMSHasAnEllipsis(t *testing.T) {
	r := newTestRenderer(t, Config{})
	for _, name := range examples.Names() {
		events, states := loadScenario(t, name)
		for id, ev := range events {
			for _, sub := range append(testSubscribers("America/New_York"), testSubscribers("")...) {
				m, err := r.Render(ev, states[id], sub, notifier.SMS)
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(m.SMS, "...") || strings.Contains(m.SMS, "…") {
					t.Errorf("%s %s %s: %q", id, m.Locale, sub.Timezone, m.SMS)
				}
			}
		}
	}
}
