package render

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/varsel/varsel/examples"
	"github.com/varsel/varsel/notifier"
	"github.com/varsel/varsel/templates"
)

func TestCheckExamplesClean(t *testing.T) {
	r := newTestRenderer(t, Config{})
	for _, name := range examples.Names() {
		events, err := examples.Scenario(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range r.Check(events) {
			t.Errorf("%s: %s", name, p)
		}
	}
}

func TestCheckEveryEventTypeClean(t *testing.T) {
	r := newTestRenderer(t, Config{})
	events := everyType()
	seen := map[notifier.EventType]bool{}
	for _, ev := range events {
		if err := ev.Validate(); err != nil {
			t.Fatalf("test event %s: %v", ev.ID, err)
		}
		seen[ev.Type] = true
	}
	for _, typ := range notifier.EventTypes {
		if !seen[typ] {
			t.Fatalf("no test event of type %s", typ)
		}
	}
	for _, p := range r.Check(events) {
		t.Error(p)
	}
}

// readTemplate returns an embedded template file.
func readTemplate(t *testing.T, name string) string {
	t.Helper()
	b, err := templates.FS.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "{{restore") && name == "common.tmpl" {
		t.Fatalf("%s no longer holds the restore sentence this test removes", name)
	}
	return string(b)
}

// writeOverride writes one template file into a fresh override directory.
func writeOverride(t *testing.T, name, text string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestCheckFindsProblems(t *testing.T) {
	sms := func(body string) string {
		return `{{define "sms.incident"}}` + body + `{{end}}{{define "sms.letter"}}{{.Link}}{{end}}`
	}
	long := strings.Repeat("Veldig lang tittel ", 12)
	tests := []struct {
		name     string
		file     string
		text     string
		title    string
		wantFile string
		wantLine int
		want     string
	}{
		{
			name: "missing message id", file: "sms.tmpl",
			text:     sms("{{.Title}}\n{{t \"NoSuchMessage\"}} {{.Link}}"),
			wantFile: "sms.tmpl", wantLine: 2, want: `"NoSuchMessage"`,
		},
		{
			name: "template error", file: "sms.tmpl",
			text:     sms("{{.Title}} {{.NoSuchField}} {{.Link}}"),
			wantFile: "sms.tmpl", wantLine: 1, want: "NoSuchField",
		},
		{
			name: "English fixed phrase in Norwegian", file: "sms.tmpl",
			text:     sms("{{.Title}}.\nNext update soon: {{.Link}}"),
			wantFile: "sms.tmpl", wantLine: 2, want: `English phrase "update"`,
		},
		{
			name: "SMS over budget", title: long,
			wantFile: "sms.tmpl", want: "segments, the budget is 1",
		},
		{
			// An override that forgets the restore tells no one that data
			// entered after the backup may be lost.
			name: "data statement left out", file: "common.tmpl",
			text:     strings.Replace(readTemplate(t, "common.tmpl"), `{{with .Restore}}{{restore . $.RestoreFrom}}{{end -}}`, "", 1),
			wantFile: "email.txt.tmpl", want: `the data statement "We plan to restore data from the backup of`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{}
			if tt.file != "" {
				cfg.TemplatesDir = writeOverride(t, tt.file, tt.text)
			}
			r := newTestRenderer(t, cfg)
			ev := everyType()[0]
			if tt.title != "" {
				ev.Incident.Title = notifier.Localized{"nb": tt.title, "en": tt.title}
			}
			problems := r.Check([]*notifier.Event{ev})
			for _, p := range problems {
				if strings.Contains(p.Message, tt.want) && strings.HasSuffix(p.File, tt.wantFile) && p.Line == tt.wantLine {
					t.Log(p)
					if !strings.Contains(p.String(), p.File) {
						t.Errorf("String() %q does not name the file", p)
					}
					return
				}
			}
			t.Errorf("no problem in %s line %d mentioning %s; got:\n%v", tt.wantFile, tt.wantLine, tt.want, problems)
		})
	}
}

// everyType returns a valid event of every type, in an order the pipeline
// could see them.
func everyType() []*notifier.Event {
	at := func(s string) time.Time {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			panic(err)
		}
		return t
	}
	ptr := func(t time.Time) *time.Time { return &t }
	incident := func(id string, typ notifier.EventType, when string, status notifier.Status, next *time.Time) *notifier.Event {
		return &notifier.Event{ID: id, Type: typ, Time: at(when), Incident: &notifier.Incident{
			ID:         "db-2024-05",
			Title:      notifier.Localized{"en": "Slow member lists", "nb": "Trege medlemslister"},
			Status:     status,
			Impact:     notifier.ImpactMinor,
			Components: []string{"styreweb"},
			StartedAt:  at("2024-05-02T09:40:00+02:00"),
			Message: notifier.Localized{
				"en": "Member lists take up to a minute to open.",
				"nb": "Medlemslister bruker opptil ett minutt på å åpne seg.",
			},
			NextUpdateAt: next,
			Data:         &notifier.DataSafety{Risk: notifier.RiskNone},
			Contact:      notifier.Localized{"en": "Write to ops@example.com.", "nb": "Skriv til drift@example.com."},
		}}
	}
	maint := func(id string, typ notifier.EventType, when string, status notifier.Status) *notifier.Event {
		return &notifier.Event{ID: id, Type: typ, Time: at(when), Incident: &notifier.Incident{
			ID:             "maint-2024-05",
			Title:          notifier.Localized{"en": "Database upgrade", "nb": "Oppgradering av databasen"},
			Status:         status,
			Impact:         notifier.ImpactNone,
			Components:     []string{"styreweb"},
			StartedAt:      at("2024-05-10T22:00:00+02:00"),
			ScheduledStart: ptr(at("2024-05-10T22:00:00+02:00")),
			ScheduledEnd:   ptr(at("2024-05-10T23:30:00+02:00")),
			Message: notifier.Localized{
				"en": "StyreWeb may be slow for a few minutes.",
				"nb": "StyreWeb kan være treg i noen minutter.",
			},
		}}
	}
	post := incident("db-5", notifier.IncidentPostmortem, "2024-05-03T12:00:00+02:00", notifier.StatusResolved, nil)
	post.Incident.Message = notifier.Localized{"en": "An index was missing after an upgrade. We have added it and a test that catches it."}
	return []*notifier.Event{
		incident("db-1", notifier.IncidentOpened, "2024-05-02T10:00:00+02:00", notifier.StatusInvestigating, ptr(at("2024-05-02T10:30:00+02:00"))),
		incident("db-2", notifier.IncidentUpdated, "2024-05-02T10:30:00+02:00", notifier.StatusMonitoring, ptr(at("2024-05-03T08:00:00+02:00"))),
		incident("db-3", notifier.IncidentResolved, "2024-05-02T11:00:00+02:00", notifier.StatusResolved, nil),
		post,
		maint("m-1", notifier.MaintenanceScheduled, "2024-05-06T09:00:00+02:00", notifier.StatusScheduled),
		maint("m-2", notifier.MaintenanceStarted, "2024-05-10T22:00:00+02:00", notifier.StatusInProgress),
		maint("m-3", notifier.MaintenanceCompleted, "2024-05-10T23:10:00+02:00", notifier.StatusCompleted),
		{ID: "letter-1", Type: notifier.LetterBroadcast, Time: at("2024-05-04T09:00:00+02:00"), Letter: &notifier.Letter{
			Audience:  notifier.Audience{All: true},
			Subject:   notifier.Localized{"en": "About last week", "nb": "Om forrige uke"},
			Body:      notifier.Localized{"en": "Thank you for your patience.", "nb": "Takk for tålmodigheten."},
			Signature: notifier.Signature{Name: "Kari Nordmann", Title: notifier.Localized{"en": "Head of operations", "nb": "Driftssjef"}},
		}},
	}
}
