package notifier

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// validIncident and validLetter are minimal valid events; the table below
// breaks them one field at a time.
const (
	validIncident = `{
  "id": "styreweb-2019-09-17-1000",
  "type": "incident.updated",
  "time": "2019-09-17T10:00:00+02:00",
  "incident": {
    "id": "styreweb-login-2019-09",
    "title": {"en": "Login problems in StyreWeb", "nb": "Problemer med innlogging i StyreWeb"},
    "status": "identified",
    "impact": "major",
    "components": ["styreweb", "gnist"],
    "started_at": "2019-09-16T07:50:00+02:00",
    "next_update_at": "2019-09-17T12:00:00+02:00",
    "message": {"en": "Next update at 12:00.", "nb": "Neste status kl. 12."},
    "data": {"at_risk": false, "restored_from_backup_at": "2019-09-15T03:00:00+02:00"}
  }
}`
	validLetter = `{
  "id": "led-letter-2019-03-06",
  "type": "letter.broadcast",
  "time": "2019-03-06T22:30:00Z",
  "letter": {
    "incident_id": "led-outage-2019-03",
    "audience": {"components": ["led"]},
    "subject": {"en": "Life Events Diary availability"},
    "sections": {
      "what_happened": {"en": "A dirty shutdown corrupted the drives."},
      "data_safety": {"en": "At no time was any of your data at risk."},
      "going_forward": {"en": "We are adding a mirror of our servers."},
      "apology": {"en": "For that we are truly sorry."}
    },
    "signature": {"name": "Kyle Cottington", "title": {"en": "Managing Director"}}
  }
}`
)

// remove marks a field for deletion in edit.
var remove = &struct{}{}

// edit returns doc with the value at a dotted path replaced (or deleted when
// value is remove). It panics on a bad path: the table is test data.
func edit(doc, path string, value any) string {
	var m map[string]any
	if err := json.Unmarshal([]byte(doc), &m); err != nil {
		panic(err)
	}
	keys := strings.Split(path, ".")
	obj := m
	for _, k := range keys[:len(keys)-1] {
		obj = obj[k].(map[string]any)
	}
	if value == remove {
		delete(obj, keys[len(keys)-1])
	} else {
		obj[keys[len(keys)-1]] = value
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// badEvents each break one rule of the event contract. field is the
// FieldError.Field the rejection must name ("" for a problem with the whole
// document), problem a phrase the message must contain.
var badEvents = []struct {
	name, json, field, problem string
}{
	{"invalid JSON", `{"id" "x"}`, "", "not valid JSON"},
	{"truncated JSON", `{"id": "x", "type":`, "", "unexpected end"},
	{"empty", ``, "", "empty"},
	{"only whitespace", " \n\t", "", "empty"},
	{"trailing data", validIncident + `{}`, "", "after the JSON object"},
	{"trailing garbage", validIncident + `x`, "", "after the JSON object"},
	{"array instead of object", `[` + validIncident + `]`, "", "must be a JSON object"},
	{"string instead of object", `"incident.opened"`, "", "must be a JSON object"},
	{"unknown top-level field", edit(validIncident, "severity", "high"), "severity", "unknown field"},
	{"unknown nested field", edit(validIncident, "incident.severity", "high"), "incident.severity", "unknown field"},
	{"unknown field in data", edit(validIncident, "incident.data.encrypted", true), "incident.data.encrypted", "unknown field"},
	{"missing id", edit(validIncident, "id", remove), "id", "required"},
	{"bad id characters", edit(validIncident, "id", "styreweb.2019/09"), "id", "letters, digits"},
	{"id too long", edit(validIncident, "id", strings.Repeat("a", 129)), "id", "1–128"},
	{"id is a number", edit(validIncident, "id", 42), "id", "must be a string"},
	{"missing type", edit(validIncident, "type", remove), "type", "required"},
	{"unknown type", edit(validIncident, "type", "incident.closed"), "type", "unknown type"},
	{"missing time", edit(validIncident, "time", remove), "time", "required"},
	{"bad time", edit(validIncident, "time", "17.09.2019 kl.10"), "time", "RFC 3339"},
	{"time without zone", edit(validIncident, "time", "2019-09-17T10:00:00"), "time", "RFC 3339"},
	{"time as number", edit(validIncident, "time", 1568707200), "time", "RFC 3339"},
	{"bad nested time", edit(validIncident, "incident.next_update_at", "kl.12"), "incident.next_update_at", "RFC 3339"},
	{"bad backup time", edit(validIncident, "incident.data.restored_from_backup_at", "2019-09-15"), "incident.data.restored_from_backup_at", "RFC 3339"},
	{"missing incident", edit(validIncident, "incident", remove), "incident", "required"},
	{"incident is null", edit(validIncident, "incident", nil), "incident", "required"},
	{"missing incident id", edit(validIncident, "incident.id", remove), "incident.id", "required"},
	{"letter on incident event", edit(validIncident, "letter", map[string]any{"subject": map[string]any{"en": "Sorry"}}), "letter", "only allowed on letter.broadcast"},
	{"incident on letter", edit(validLetter, "incident", map[string]any{"id": "x"}), "incident", "not allowed on letter.broadcast"},
	{"missing status", edit(validIncident, "incident.status", remove), "incident.status", "required"},
	{"unknown status", edit(validIncident, "incident.status", "down"), "incident.status", "unknown status"},
	{"maintenance status on incident", edit(validIncident, "incident.status", "in_progress"), "incident.status", "unknown status"},
	{"incident status on maintenance", edit(edit(edit(validIncident, "type", "maintenance.started"), "incident.status", "identified"), "incident.scheduled_start", "2019-09-17T09:00:00+02:00"), "incident.status", "unknown status"},
	{"wrong status for resolved", edit(edit(validIncident, "type", "incident.resolved"), "incident.next_update_at", remove), "incident.status", `must be "resolved"`},
	{"resolved status on updated", edit(validIncident, "incident.status", "resolved"), "incident.status", "send incident.resolved"},
	{"missing impact", edit(validIncident, "incident.impact", remove), "incident.impact", "required"},
	{"unknown impact", edit(validIncident, "incident.impact", "severe"), "incident.impact", "unknown impact"},
	{"no components", edit(validIncident, "incident.components", []string{}), "incident.components", "at least one"},
	{"components as string", edit(validIncident, "incident.components", "styreweb"), "incident.components", "must be an array"},
	{"bad component id", edit(validIncident, "incident.components", []string{"styreweb", "gnist web"}), "incident.components[1]", "letters, digits"},
	{"missing started_at", edit(validIncident, "incident.started_at", remove), "incident.started_at", "required"},
	{"missing title", edit(validIncident, "incident.title", remove), "incident.title", "required"},
	{"empty localized map", edit(validIncident, "incident.title", map[string]any{}), "incident.title", "at least one language"},
	{"unknown language tag", edit(validIncident, "incident.message", map[string]any{"norsk": "Neste status kl. 12."}), "incident.message.norsk", "unknown language tag"},
	{"language tag with too many parts", edit(validIncident, "incident.message", map[string]any{"en-US-x-a-b": "Hi"}), "incident.message.en-US-x-a-b", "unknown language tag"},
	{"blank text", edit(validIncident, "incident.message", map[string]any{"en": " \n\t"}), "incident.message.en", "empty"},
	{"blank contact", edit(validIncident, "incident.contact", map[string]any{"nb": ""}), "incident.contact.nb", "empty"},
	{"text is a number", edit(validIncident, "incident.message", map[string]any{"en": 12}), "incident.message", "must be a string"},
	{"at_risk not a bool", edit(validIncident, "incident.data.at_risk", "no"), "incident.data.at_risk", "true or false"},
	{"unknown risk", edit(validIncident, "incident.data", map[string]any{"risk": "medium"}), "incident.data.risk", `unknown risk "medium"`},
	{"at_risk contradicts risk", edit(validIncident, "incident.data", map[string]any{"risk": "low", "at_risk": false}), "incident.data.at_risk", "contradicts risk"},
	{"empty data", edit(validIncident, "incident.data", map[string]any{}), "incident.data", "empty"},
	{"restore without state", edit(validIncident, "incident.data", map[string]any{"restore": map[string]any{"from_backup_at": "2019-09-15T03:00:00+02:00"}}), "incident.data.restore.state", "required"},
	{"unknown restore state", edit(validIncident, "incident.data", map[string]any{"restore": map[string]any{"from_backup_at": "2019-09-15T03:00:00+02:00", "state": "running"}}), "incident.data.restore.state", `unknown state "running"`},
	{"restore without backup point", edit(validIncident, "incident.data", map[string]any{"restore": map[string]any{"state": "planned"}}), "incident.data.restore.from_backup_at", "required"},
	{"bad restore time", edit(validIncident, "incident.data", map[string]any{"restore": map[string]any{"from_backup_at": "15.09.2019", "state": "done"}}), "incident.data.restore.from_backup_at", "RFC 3339"},
	{"backup point after the event", edit(validIncident, "incident.data", map[string]any{"restore": map[string]any{"from_backup_at": "2019-09-18T03:00:00+02:00", "state": "planned"}}), "incident.data.restore.from_backup_at", "after the event time"},
	{"old backup point after the event", edit(validIncident, "incident.data.restored_from_backup_at", "2019-09-18T03:00:00+02:00"), "incident.data.restored_from_backup_at", "after the event time"},
	{"restored_from_backup_at contradicts restore", edit(validIncident, "incident.data.restore", map[string]any{"from_backup_at": "2019-09-15T03:00:00+02:00", "state": "in_progress"}), "incident.data.restored_from_backup_at", "contradicts restore"},
	{"holding update on opened", edit(edit(validIncident, "type", "incident.opened"), "incident.holding_since", "2019-09-17T08:00:00+02:00"), "incident.holding_since", "only allowed on incident.updated"},
	{"holding since after the event", edit(validIncident, "incident.holding_since", "2019-09-17T11:00:00+02:00"), "incident.holding_since", "after the event time"},
	{"no message and no holding", edit(validIncident, "incident.message", remove), "incident.message", "required"},
	{"postmortem of an open incident", edit(edit(validIncident, "type", "incident.postmortem"), "incident.next_update_at", remove), "incident.status", `must be "resolved" on incident.postmortem`},
	{"next_update_at before time", edit(validIncident, "incident.next_update_at", "2019-09-17T09:59:00+02:00"), "incident.next_update_at", "before the event time"},
	// A mistyped year: neither is true, and both were published.
	{"next_update_at years ahead", edit(validIncident, "incident.next_update_at", "2029-09-17T12:00:00+02:00"), "incident.next_update_at", "more than 31 days after the event time"},
	{"started_at after the event", edit(validIncident, "incident.started_at", "2020-09-17T09:00:00+02:00"), "incident.started_at", "after the event time"},
	{"scheduled window on incident", edit(validIncident, "incident.scheduled_start", "2019-09-20T22:00:00+02:00"), "incident.scheduled_start", "only allowed on maintenance"},
	{"maintenance without window", edit(edit(validIncident, "type", "maintenance.scheduled"), "incident.status", "scheduled"), "incident.scheduled_start", "required for maintenance"},
	{"maintenance ends before it starts", edit(edit(edit(edit(validIncident, "type", "maintenance.scheduled"), "incident.status", "scheduled"),
		"incident.scheduled_start", "2019-09-20T22:00:00+02:00"), "incident.scheduled_end", "2019-09-20T21:00:00+02:00"), "incident.scheduled_end", "after scheduled_start"},
	{"oversize", edit(validIncident, "incident.message.en", strings.Repeat("x", MaxEventSize)), "", "more than the limit"},
	{"invalid UTF-8", strings.Replace(validIncident, "Problemer", "Problemer \xff\xfe", 1), "", "UTF-8"},
	{"letter without letter", edit(validLetter, "letter", remove), "letter", "required for letter.broadcast"},
	{"letter without signature", edit(validLetter, "letter.signature", remove), "letter.signature.name", "signed by a person"},
	{"letter with blank signature", edit(validLetter, "letter.signature.name", "  "), "letter.signature.name", "signed by a person"},
	{"letter with both sections and body", edit(validLetter, "letter.body", map[string]any{"en": "Sorry."}), "letter.body", "not both"},
	{"letter with neither sections nor body", edit(validLetter, "letter.sections", remove), "letter.sections", "required"},
	{"letter section missing", edit(validLetter, "letter.sections.apology", remove), "letter.sections.apology", "required"},
	{"letter without audience", edit(validLetter, "letter.audience", map[string]any{}), "letter.audience", "required"},
	{"letter to all and to components", edit(validLetter, "letter.audience.all", true), "letter.audience", "not both"},
	{"letter without subject", edit(validLetter, "letter.subject", remove), "letter.subject", "required"},
	{"letter with bad incident id", edit(validLetter, "letter.incident_id", "led outage"), "letter.incident_id", "letters, digits"},
}

func TestDecodeEventRejects(t *testing.T) {
	for _, tc := range badEvents {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := DecodeEvent([]byte(tc.json))
			if err == nil {
				t.Fatalf("DecodeEvent accepted %s: %+v", tc.json, ev)
			}
			if ev != nil {
				t.Errorf("DecodeEvent returned an event with error %v", err)
			}
			if !errors.Is(err, ErrInvalidEvent) {
				t.Errorf("error %v does not wrap ErrInvalidEvent", err)
			}
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("error %T is not a *ValidationError", err)
			}
			i := slices.IndexFunc(verr.Problems, func(p FieldError) bool { return p.Field == tc.field })
			if i < 0 {
				t.Fatalf("problems %q do not name field %q", verr.Problems, tc.field)
			}
			if p := verr.Problems[i].Problem; !strings.Contains(p, tc.problem) {
				t.Errorf("problem with %q is %q, want it to mention %q", tc.field, p, tc.problem)
			}
		})
	}
}

// TestValidationErrorListsEveryProblem checks that one decode reports all
// the faults of a document, not only the first.
func TestValidationErrorListsEveryProblem(t *testing.T) {
	doc := edit(edit(edit(validIncident, "id", remove), "incident.impact", "severe"), "incident.title", map[string]any{})
	_, err := DecodeEvent([]byte(doc))
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("error %v is not a *ValidationError", err)
	}
	var fields []string
	for _, p := range verr.Problems {
		fields = append(fields, p.Field)
	}
	for _, want := range []string{"id", "incident.impact", "incident.title"} {
		if !slices.Contains(fields, want) {
			t.Errorf("problems name %v, want %s among them", fields, want)
		}
	}
}

// TestBadTimeDoesNotHideTheRest: a time that does not parse stops
// encoding/json at once; it is reported with the other problems, each once.
func TestBadTimeDoesNotHideTheRest(t *testing.T) {
	for name, doc := range map[string]string{
		"bad time":         edit(edit(edit(validIncident, "time", "17.09.2019 kl.10"), "incident.status", "on fire"), "incident.title", remove),
		"time as number":   edit(edit(edit(validIncident, "time", 1568707200), "incident.status", "on fire"), "incident.title", remove),
		"bad nested times": edit(edit(edit(edit(validIncident, "incident.next_update_at", "kl.12"), "incident.started_at", "i går"), "incident.status", "on fire"), "incident.title", remove),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeEvent([]byte(doc))
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("error %v is not a *ValidationError", err)
			}
			count := map[string]int{}
			for _, p := range verr.Problems {
				count[p.Field]++
			}
			times := []string{"time"}
			if name == "bad nested times" {
				times = []string{"incident.next_update_at", "incident.started_at"}
			}
			for _, want := range append(times, "incident.status", "incident.title") {
				if count[want] != 1 {
					t.Errorf("%s named %d times in %v, want once", want, count[want], verr)
				}
			}
			for _, f := range times {
				i := slices.IndexFunc(verr.Problems, func(p FieldError) bool { return p.Field == f })
				if i >= 0 && !strings.Contains(verr.Problems[i].Problem, "RFC 3339") {
					t.Errorf("%s: %q does not say what a time looks like", f, verr.Problems[i].Problem)
				}
			}
		})
	}
}

// TestDocumentedProblemList: the list docs/events.md shows for a bad time
// and a bad impact is what DecodeEvent says, word for word.
func TestDocumentedProblemList(t *testing.T) {
	doc, err := os.ReadFile("../docs/events.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), "All problems are reported at once")
	if !ok {
		t.Fatal(`docs/events.md no longer says "All problems are reported at once": update this test`)
	}
	start := strings.Index(after, "`")
	end := strings.Index(after[start+1:], "`")
	documented := after[start+1 : start+1+end]
	_, err = DecodeEvent([]byte(edit(edit(validIncident, "incident.next_update_at", "kl.12"), "incident.impact", "severe")))
	if err == nil || err.Error() != documented {
		t.Errorf("DecodeEvent says\n%v\ndocs/events.md\n%s", err, documented)
	}
}

// exampleFiles are the event files of examples/ (read from disk: the
// examples package imports this one).
func exampleFiles(tb testing.TB) []string {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join("..", "examples", "*", "*.json"))
	if err != nil {
		tb.Fatal(err)
	}
	if len(files) == 0 {
		tb.Fatal("no example events in ../examples")
	}
	return files
}

func TestDecodeEventAccepts(t *testing.T) {
	valid := map[string]string{
		"minimal incident": validIncident,
		"minimal letter":   validLetter,
		"letter with body": edit(edit(validLetter, "letter.sections", remove), "letter.body", map[string]any{"nb": "Vi beklager."}),
		"letter to all":    edit(validLetter, "letter.audience", map[string]any{"all": true}),
		"maintenance": edit(edit(edit(edit(validIncident, "type", "maintenance.scheduled"), "incident.status", "scheduled"),
			"incident.scheduled_start", "2019-09-20T22:00:00+02:00"), "incident.scheduled_end", "2019-09-20T23:00:00+02:00"),
		"exactly the size limit": padTo(validIncident, MaxEventSize),
	}
	for _, f := range exampleFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		valid[filepath.ToSlash(f)] = string(b)
	}
	for name, doc := range valid {
		t.Run(name, func(t *testing.T) {
			ev, err := DecodeEvent([]byte(doc))
			if err != nil {
				t.Fatalf("DecodeEvent: %v", err)
			}
			if ev.ID == "" || !ev.Type.Valid() || ev.Time.IsZero() {
				t.Errorf("decoded event lacks id, type or time: %+v", ev)
			}
		})
	}
}

// TestDataStatementForms checks that the older data fields and the newer
// ones mean the same and that a decoded event carries both forms, so
// webhook receivers written for either keep working.
func TestDataStatementForms(t *testing.T) {
	backup := time.Date(2019, 9, 15, 3, 0, 0, 0, time.FixedZone("", 2*3600))
	no, yes := false, true
	tests := []struct {
		name        string
		data        map[string]any
		wantRisk    Risk
		wantRestore *Restore
		wantAtRisk  *bool
		wantOld     bool // restored_from_backup_at filled in
	}{
		{"at_risk false is none", map[string]any{"at_risk": false}, RiskNone, nil, &no, false},
		{"at_risk true is confirmed", map[string]any{"at_risk": true}, RiskConfirmed, nil, &yes, false},
		{"risk low has no older form", map[string]any{"risk": "low"}, RiskLow, nil, nil, false},
		{"risk unknown has no older form", map[string]any{"risk": "unknown"}, RiskUnknown, nil, nil, false},
		{"risk none and at_risk false agree", map[string]any{"risk": "none", "at_risk": false}, RiskNone, nil, &no, false},
		{"restored_from_backup_at is a restore done", map[string]any{"restored_from_backup_at": "2019-09-15T03:00:00+02:00"}, "", &Restore{FromBackupAt: backup, State: RestoreDone}, nil, true},
		{"restore in progress has no older form", map[string]any{"restore": map[string]any{"from_backup_at": "2019-09-15T03:00:00+02:00", "state": "in_progress"}}, "", &Restore{FromBackupAt: backup, State: RestoreInProgress}, nil, false},
		{"restore done fills in the older form", map[string]any{"restore": map[string]any{"from_backup_at": "2019-09-15T03:00:00+02:00", "state": "done"}}, "", &Restore{FromBackupAt: backup, State: RestoreDone}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := DecodeEvent([]byte(edit(validIncident, "incident.data", tt.data)))
			if err != nil {
				t.Fatal(err)
			}
			d := ev.Incident.Data
			if d.Risk != tt.wantRisk {
				t.Errorf("risk = %q, want %q", d.Risk, tt.wantRisk)
			}
			switch {
			case (d.Restore == nil) != (tt.wantRestore == nil):
				t.Errorf("restore = %+v, want %+v", d.Restore, tt.wantRestore)
			case d.Restore != nil && (d.Restore.State != tt.wantRestore.State || !d.Restore.FromBackupAt.Equal(tt.wantRestore.FromBackupAt)):
				t.Errorf("restore = %+v, want %+v", d.Restore, tt.wantRestore)
			}
			if (d.AtRisk == nil) != (tt.wantAtRisk == nil) || d.AtRisk != nil && *d.AtRisk != *tt.wantAtRisk {
				t.Errorf("at_risk = %v, want %v", d.AtRisk, tt.wantAtRisk)
			}
			if (d.RestoredFromBackupAt != nil) != tt.wantOld {
				t.Errorf("restored_from_backup_at = %v, want it set: %v", d.RestoredFromBackupAt, tt.wantOld)
			}
			// A record stored with only the older fields reads the same.
			old := &DataSafety{AtRisk: d.AtRisk, RestoredFromBackupAt: d.RestoredFromBackupAt}
			oldRisk, oldRestore := old.Current()
			if tt.wantAtRisk != nil && oldRisk != tt.wantRisk {
				t.Errorf("at_risk %v alone reads as risk %q, want %q", *old.AtRisk, oldRisk, tt.wantRisk)
			}
			if tt.wantOld && (oldRestore == nil || oldRestore.State != RestoreDone || !oldRestore.FromBackupAt.Equal(backup)) {
				t.Errorf("restored_from_backup_at alone reads as restore %+v, want done from %s", oldRestore, backup)
			}
		})
	}
}

func TestHoldingUpdateNeedsNoMessage(t *testing.T) {
	doc := edit(edit(validIncident, "incident.message", remove), "incident.holding_since", "2019-09-17T08:00:00+02:00")
	ev, err := DecodeEvent([]byte(doc))
	if err != nil {
		t.Fatalf("holding update without message: %v", err)
	}
	if ev.Incident.HoldingSince == nil || ev.Incident.HoldingSince.Hour() != 8 {
		t.Errorf("holding_since = %v", ev.Incident.HoldingSince)
	}
}

// padTo pads doc with trailing whitespace to exactly n bytes.
func padTo(doc string, n int) string {
	return doc + strings.Repeat(" ", n-len(doc))
}

// FuzzDecodeEvent checks that DecodeEvent never panics, that every rejection
// is a *ValidationError wrapping ErrInvalidEvent, and that an accepted event
// survives encoding: it re-encodes, decodes again to an equal event, and
// its encoding is then stable.
func FuzzDecodeEvent(f *testing.F) {
	for _, file := range exampleFiles(f) {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(validIncident))
	f.Add([]byte(validLetter))
	for _, tc := range badEvents {
		// The oversize case would only teach the fuzzer the length check,
		// and minimizing a 64 KiB input eats the whole fuzzing time.
		if len(tc.json) <= MaxEventSize {
			f.Add([]byte(tc.json))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := DecodeEvent(b)
		if err != nil {
			var verr *ValidationError
			if !errors.Is(err, ErrInvalidEvent) || !errors.As(err, &verr) || len(verr.Problems) == 0 {
				t.Fatalf("rejection %#v is not a *ValidationError with problems", err)
			}
			return
		}
		if verr := ev.Validate(); verr != nil {
			t.Fatalf("DecodeEvent accepted an event that Validate rejects: %v", verr)
		}
		enc, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("re-encode accepted event: %v", err)
		}
		again, err := DecodeEvent(enc)
		if err != nil {
			t.Fatalf("re-encoded event is rejected: %v\n%s", err, enc)
		}
		enc2, err := json.Marshal(again)
		if err != nil {
			t.Fatalf("re-encode decoded event: %v", err)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable:\n%s\n%s", enc, enc2)
		}
		if diff := eventDiff(ev, again); diff != "" {
			t.Fatalf("re-decoded event differs: %s\n%s", diff, enc)
		}
	})
}

// eventDiff compares two events: times by instant and UTC offset (one
// decode may give time.Local and the next time.UTC for the same "+00:00"),
// everything else deeply, an empty audience list being no list. It returns "" when they are equal. It clears the
// times it compares, so the events must not be used afterwards.
func eventDiff(a, b *Event) string {
	at, bt := eventTimes(a), eventTimes(b)
	for i := range at {
		switch {
		case (at[i] == nil) != (bt[i] == nil):
			return fmt.Sprintf("time %d: %v vs %v", i, at[i], bt[i])
		case at[i] == nil:
			continue
		}
		_, ao := at[i].Zone()
		_, bo := bt[i].Zone()
		if !at[i].Equal(*bt[i]) || ao != bo {
			return fmt.Sprintf("time %d: %s vs %s", i, at[i].Format(time.RFC3339Nano), bt[i].Format(time.RFC3339Nano))
		}
		*at[i], *bt[i] = time.Time{}, time.Time{}
	}
	// "components": [] next to "all": true is valid and omitted when
	// encoded: an empty list and no list mean the same.
	for _, e := range []*Event{a, b} {
		if e.Letter != nil && len(e.Letter.Audience.Components) == 0 {
			e.Letter.Audience.Components = nil
		}
	}
	if !reflect.DeepEqual(a, b) {
		return fmt.Sprintf("%+v vs %+v", a, b)
	}
	return ""
}

// eventTimes returns pointers to every timestamp of an event, nil where the
// optional ones are absent, in a fixed order.
func eventTimes(e *Event) []*time.Time {
	ts := make([]*time.Time, 8)
	ts[0] = &e.Time
	if in := e.Incident; in != nil {
		ts[1], ts[2], ts[3], ts[4], ts[5] = &in.StartedAt, in.NextUpdateAt, in.ScheduledStart, in.ScheduledEnd, in.HoldingSince
		if in.Data != nil {
			ts[6] = in.Data.RestoredFromBackupAt
			if in.Data.Restore != nil {
				ts[7] = &in.Data.Restore.FromBackupAt
			}
		}
	}
	return ts
}

func TestDecodeIsStrictAboutKeysAndTags(t *testing.T) {
	base := `{"id":"e","type":"incident.opened","time":"2019-09-16T08:00:00+02:00","incident":{"id":"i","title":{"en":"t"},"status":"investigating","impact":"major","components":["c"],"started_at":"2019-09-16T08:00:00+02:00","message":{"en":"m"}}}`
	tests := []struct{ name, from, to, field string }{
		{"key in another case", `"id":"e"`, `"ID":"e"`, "ID"},
		{"nested key in another case", `"started_at"`, `"Started_At"`, "incident.Started_At"},
		{"repeated key", `"id":"e"`, `"id":"e","id":"f"`, "id"},
		{"repeated language", `{"en":"m"}`, `{"en":"m","en":"n"}`, "incident.message.en"},
		{"upper-case tag", `{"en":"m"}`, `{"EN":"m"}`, "incident.message.EN"},
		{"no language", `{"en":"m"}`, `{"und":"m"}`, "incident.message.und"},
		{"private use", `{"en":"m"}`, `{"x-klingon":"m"}`, "incident.message.x-klingon"},
		{"empty tag", `{"en":"m"}`, `{"":"m"}`, `incident.message[""]`},
		{"scheduled_end off maintenance", `"message":{"en":"m"}`, `"message":{"en":"m"},"scheduled_end":"2019-09-16T09:00:00+02:00"`, "incident.scheduled_end"},
	}
	if _, err := DecodeEvent([]byte(base)); err != nil {
		t.Fatalf("base event invalid: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := strings.Replace(base, tt.from, tt.to, 1)
			_, err := DecodeEvent([]byte(raw))
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("accepted %s", raw)
			}
			for _, p := range ve.Problems {
				if p.Field == tt.field {
					return
				}
			}
			t.Errorf("error %q does not name %s", err, tt.field)
		})
	}
}

func TestMetricFieldIsBounded(t *testing.T) {
	for path, want := range map[string]string{
		"id": "id", "incident.status": "incident.status", "incident.components[3]": "incident.components",
		"incident.data.at_risk": "incident.data", "letter.sections.apology": "letter.sections",
		"anything-goes-here": "unknown_field", "incident.severity": "unknown_field", `incident.title[""]`: "incident.title",
	} {
		if got := metricField(path); got != want {
			t.Errorf("metricField(%q) = %q, want %q", path, got, want)
		}
	}
}

// Every text field holding a C0 or C1 control character other than newline
// and tab is refused, naming the field and where the character is.
func TestDecodeEventRejectsControlCharacters(t *testing.T) {
	fields := []struct{ doc, path, field string }{
		{validIncident, "incident.title.en", "incident.title.en"},
		{validIncident, "incident.message.nb", "incident.message.nb"},
		{edit(validIncident, "incident.contact", map[string]any{"en": "ok"}), "incident.contact.en", "incident.contact.en"},
		{validLetter, "letter.subject.en", "letter.subject.en"},
		{validLetter, "letter.sections.what_happened.en", "letter.sections.what_happened.en"},
		{validLetter, "letter.sections.apology.en", "letter.sections.apology.en"},
		{validLetter, "letter.signature.name", "letter.signature.name"},
		{validLetter, "letter.signature.title.en", "letter.signature.title.en"},
		{edit(edit(validLetter, "letter.sections", remove), "letter.body", map[string]any{"en": "ok"}), "letter.body.en", "letter.body.en"},
	}
	chars := []struct {
		name, char, code string
	}{
		{"ESC", "\x1b", "U+001B"},
		{"BEL", "\a", "U+0007"},
		{"NUL", "\x00", "U+0000"},
		{"lone CR", "\r", "U+000D"},
		{"DEL", "\x7f", "U+007F"},
		{"C1 NEL", "\u0085", "U+0085"},
		{"C1 CSI", "\u009b", "U+009B"},
		{"right-to-left override", "\u202e", "U+202E"},
		{"first strong isolate", "\u2068", "U+2068"},
	}
	for _, f := range fields {
		for _, c := range chars {
			t.Run(f.field+"/"+c.name, func(t *testing.T) {
				text := "Login fails" + c.char + "[2J"
				_, err := DecodeEvent([]byte(edit(f.doc, f.path, text)))
				var verr *ValidationError
				if !errors.As(err, &verr) {
					t.Fatalf("DecodeEvent accepted %q in %s (err %v)", text, f.path, err)
				}
				want := FieldError{Field: f.field, Problem: "control character " + c.code + " at byte 11"}
				if !slices.ContainsFunc(verr.Problems, func(p FieldError) bool {
					return p.Field == want.Field && strings.HasPrefix(p.Problem, want.Problem)
				}) {
					t.Errorf("problems %q, want %q among them", verr.Problems, want)
				}
			})
		}
	}
	_, err := DecodeEvent([]byte(edit(validIncident, "incident.title.en", "Login \x1b]0;owned\a")))
	if err == nil || !strings.Contains(err.Error(), "incident.title.en: control character U+001B at byte 6") {
		t.Errorf("error %v does not name the field and the byte", err)
	}
}

func TestDecodeEventAcceptsNewlineAndTab(t *testing.T) {
	for _, text := range []string{"Line one\nline two", "Col\tumn", "Windows\r\nlines\r\n", "Ærlig talt – æøå ✓"} {
		doc := edit(edit(validIncident, "incident.message.en", text), "incident.title.en", text)
		ev, err := DecodeEvent([]byte(doc))
		if err != nil {
			t.Errorf("DecodeEvent refused %q: %v", text, err)
			continue
		}
		if ev.Incident.Message["en"] != text {
			t.Errorf("message %q became %q", text, ev.Incident.Message["en"])
		}
	}
	if p := ControlCharProblem("a\tb\nc\r\nd"); p != "" {
		t.Errorf("ControlCharProblem of tab and newlines: %q", p)
	}
}

// A subscriber's name, from the admin API or a CSV import, follows the same
// rule as event text.
func TestSubscriberNameRejectsControlCharacters(t *testing.T) {
	in := "id,name,email\n" +
		"kari,Kari\x1b[31m Nordmann,kari@example.com\n" +
		"ola,Ola\tNordmann,ola@example.com\n"
	subs, bad, err := ReadSubscribersCSV(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(subs) != 1 || subs[0].ID != "ola" {
		t.Errorf("good rows = %+v, want ola's alone", subs)
	}
	if len(bad) != 1 || !strings.HasPrefix(bad[0].Error(), "line 2, column name") || !strings.Contains(bad[0].Error(), "U+001B at byte 4") {
		t.Errorf("bad rows = %v, want line 2's name refused", bad)
	}
	s := Subscriber{ID: "x", Name: "X\u0085", Email: "x@example.com"}
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "name: control character U+0085") {
		t.Errorf("Validate of a name with NEL: %v", err)
	}
}
