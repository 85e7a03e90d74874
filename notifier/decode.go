package notifier

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/language"
)

// MaxEventSize is the largest event payload accepted, in bytes.
const MaxEventSize = 64 << 10

// ErrInvalidEvent is wrapped by every error DecodeEvent returns.
var ErrInvalidEvent = errors.New("invalid event")

// idPattern constrains event, incident, component and subscriber ids. Dots are
// excluded because ids are joined with dots into NATS subjects and KV keys.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$`)

// ValidID reports whether s may be used as an event, incident, component or
// subscriber id: 1–128 letters, digits, '-' or '_', starting with a letter or digit.
func ValidID(s string) bool { return idPattern.MatchString(s) }

// clockSkew is how far a producer's clock may run ahead of the event time
// it writes: a start that much after the event is still taken as written.
const clockSkew = 5 * time.Minute

// furthestPromise bounds an incident's promised next update.
const furthestPromise = 31 * 24 * time.Hour

// FieldError is one problem with one field of an event or subscriber.
type FieldError struct {
	Field   string `json:"field"` // JSON path, e.g. "incident.status"
	Problem string `json:"problem"`
}

func (e FieldError) Error() string {
	if e.Field == "" {
		return e.Problem
	}
	return e.Field + ": " + e.Problem
}

// ValidationError lists every problem found in one document.
type ValidationError struct {
	Problems []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Error()
	}
	return strings.Join(parts, "; ")
}

// Unwrap lets errors.Is(err, ErrInvalidEvent) hold.
func (e *ValidationError) Unwrap() error { return ErrInvalidEvent }

func (e *ValidationError) add(field, format string, args ...any) {
	e.Problems = append(e.Problems, FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
}

func (e *ValidationError) err() error {
	if len(e.Problems) == 0 {
		return nil
	}
	return e
}

// DecodeEvent parses and validates one event. Unknown fields, trailing data,
// payloads over MaxEventSize, invalid UTF-8 and every rule in Validate are
// errors; the returned error wraps ErrInvalidEvent and names each bad field.
func DecodeEvent(b []byte) (*Event, error) {
	if len(b) > MaxEventSize {
		return nil, &ValidationError{Problems: []FieldError{{Problem: fmt.Sprintf("event is %d bytes, more than the limit of %d", len(b), MaxEventSize)}}}
	}
	if !utf8.Valid(b) {
		return nil, &ValidationError{Problems: []FieldError{{Problem: "event is not valid UTF-8"}}}
	}
	if fe := checkKeys(b, reflect.TypeOf(Event{})); fe != nil {
		return nil, &ValidationError{Problems: []FieldError{*fe}}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var ev Event
	var timeProblems []FieldError
	if err := dec.Decode(&ev); err != nil {
		// A bad time stops encoding/json at once. Set the bad times
		// aside and decode the rest, so that one decode reports every
		// problem, the bad times among them.
		fixed, problems := withoutBadTimes(b)
		if len(problems) == 0 {
			return nil, &ValidationError{Problems: []FieldError{jsonProblem(b, err)}}
		}
		timeProblems = problems
		ev = Event{}
		dec = json.NewDecoder(bytes.NewReader(fixed))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ev); err != nil {
			return nil, &ValidationError{Problems: append(timeProblems, jsonProblem(fixed, err))}
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &ValidationError{Problems: []FieldError{{Problem: "unexpected data after the JSON object"}}}
	}
	if err := ev.Validate(); err != nil || len(timeProblems) > 0 {
		v := &ValidationError{Problems: timeProblems}
		var verr *ValidationError
		if errors.As(err, &verr) {
			for _, p := range verr.Problems {
				// A bad time is reported once, not also as missing.
				if !slices.ContainsFunc(timeProblems, func(tp FieldError) bool { return tp.Field == p.Field }) {
					v.Problems = append(v.Problems, p)
				}
			}
		}
		return nil, v
	}
	if ev.Incident != nil && ev.Incident.Data != nil {
		ev.Incident.Data.normalize()
	}
	return &ev, nil
}

// timeFields are the JSON paths of every timestamp in an event, checked one
// by one when decoding fails on a time so the error can name the field.
var timeFields = [][]string{
	{"time"},
	{"incident", "started_at"},
	{"incident", "next_update_at"},
	{"incident", "scheduled_start"},
	{"incident", "scheduled_end"},
	{"incident", "holding_since"},
	{"incident", "data", "restored_from_backup_at"},
	{"incident", "data", "restore", "from_backup_at"},
}

// jsonProblem turns a decoding error into a FieldError that names the field
// where encoding/json can tell, and finds the bad timestamp where it cannot.
func jsonProblem(b []byte, err error) FieldError {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return FieldError{Problem: fmt.Sprintf("the event must be a JSON object, not %s", typeErr.Value)}
		}
		return FieldError{Field: field, Problem: fmt.Sprintf("must be %s, not %s", jsonKind(typeErr.Type.String()), typeErr.Value)}
	case errors.As(err, &syntaxErr):
		return FieldError{Problem: fmt.Sprintf("not valid JSON at byte %d: %v", syntaxErr.Offset, syntaxErr)}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return FieldError{Field: strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`), Problem: "unknown field"}
	case errors.Is(err, io.EOF):
		return FieldError{Problem: "event is empty"}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return FieldError{Problem: "not valid JSON: unexpected end of input"}
	}
	var generic map[string]any
	if json.Unmarshal(b, &generic) == nil {
		for _, path := range timeFields {
			v, ok := lookup(generic, path)
			if !ok || v == nil {
				continue
			}
			s, isString := v.(string)
			if !isString {
				return FieldError{Field: strings.Join(path, "."), Problem: "must be an RFC 3339 time string"}
			}
			if _, perr := time.Parse(time.RFC3339, s); perr != nil {
				return FieldError{Field: strings.Join(path, "."), Problem: fmt.Sprintf("%q is not an RFC 3339 time such as 2019-09-17T10:00:00+02:00", s)}
			}
		}
	}
	return FieldError{Problem: err.Error()}
}

// withoutBadTimes finds every timestamp of b (a JSON object) that does not
// decode as a time, and returns b with each of them set to null, so that
// the rest decodes, and a problem for each. It returns no problems when
// every time is good or b is not an object.
func withoutBadTimes(b []byte) ([]byte, []FieldError) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // numbers re-encode as they were written
	var generic map[string]any
	if dec.Decode(&generic) != nil {
		return nil, nil
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil
	}
	var problems []FieldError
	for _, path := range timeFields {
		v, ok := lookup(generic, path)
		if !ok || v == nil {
			continue
		}
		field := strings.Join(path, ".")
		s, isString := v.(string)
		if !isString {
			problems = append(problems, FieldError{Field: field, Problem: "must be an RFC 3339 time string"})
		} else if raw, _ := json.Marshal(s); new(time.Time).UnmarshalJSON(raw) != nil {
			problems = append(problems, FieldError{Field: field, Problem: fmt.Sprintf("%q is not an RFC 3339 time such as 2019-09-17T10:00:00+02:00", s)})
		} else {
			continue
		}
		parent, _ := lookup(generic, path[:len(path)-1])
		parent.(map[string]any)[path[len(path)-1]] = nil
	}
	if len(problems) == 0 {
		return nil, nil
	}
	fixed, err := json.Marshal(generic)
	if err != nil {
		return nil, nil
	}
	return fixed, problems
}

func lookup(m map[string]any, path []string) (any, bool) {
	var cur any = m
	for _, key := range path {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[key]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func jsonKind(goType string) string {
	switch {
	case strings.HasPrefix(goType, "map["):
		return "an object"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case goType == "string" || strings.HasSuffix(goType, "notifier.EventType") || strings.HasSuffix(goType, "notifier.Status") ||
		strings.HasSuffix(goType, "notifier.Impact") || strings.HasSuffix(goType, "notifier.Risk") || strings.HasSuffix(goType, "notifier.RestoreState"):
		return "a string"
	case goType == "bool":
		return "true or false"
	}
	return "an object"
}

// Validate checks every rule of the event contract and returns a
// *ValidationError listing all problems, or nil.
func (e *Event) Validate() error {
	v := &ValidationError{}
	if e.ID == "" {
		v.add("id", "required")
	} else if !ValidID(e.ID) {
		v.add("id", "%q must be 1–128 letters, digits, '-' or '_'", e.ID)
	}
	switch {
	case e.Type == "":
		v.add("type", "required")
	case !e.Type.Valid():
		v.add("type", "unknown type %q (want one of %s)", e.Type, joinQuoted(EventTypes))
	}
	if e.Time.IsZero() {
		v.add("time", "required")
	}
	if e.Type == LetterBroadcast {
		if e.Incident != nil {
			v.add("incident", "not allowed on letter.broadcast (use letter.incident_id)")
		}
		if e.Letter == nil {
			v.add("letter", "required for letter.broadcast")
		} else {
			e.Letter.validate(v)
		}
	} else if e.Type.Valid() {
		if e.Letter != nil {
			v.add("letter", "only allowed on letter.broadcast")
		}
		if e.Incident == nil {
			v.add("incident", "required for %s", e.Type)
		} else {
			e.Incident.validate(v, e)
		}
	}
	return v.err()
}

func (in *Incident) validate(v *ValidationError, e *Event) {
	if in.ID == "" {
		v.add("incident.id", "required")
	} else if !ValidID(in.ID) {
		v.add("incident.id", "%q must be 1–128 letters, digits, '-' or '_'", in.ID)
	}
	validateLocalized(v, "incident.title", in.Title, true)
	// A holding update says "the update of then still applies" by itself.
	validateLocalized(v, "incident.message", in.Message, in.HoldingSince == nil)
	validateLocalized(v, "incident.contact", in.Contact, false)
	if in.HoldingSince != nil {
		switch {
		case e.Type != IncidentUpdated:
			v.add("incident.holding_since", "only allowed on incident.updated")
		case !e.Time.IsZero() && in.HoldingSince.After(e.Time):
			v.add("incident.holding_since", "%s is after the event time %s", in.HoldingSince.Format(time.RFC3339), e.Time.Format(time.RFC3339))
		}
	}
	if in.Data != nil {
		in.Data.validate(v, e.Time)
	}

	statuses, kind := IncidentStatuses, "an incident"
	if e.Type.IsMaintenance() {
		statuses, kind = MaintenanceStatuses, "maintenance"
	}
	switch {
	case in.Status == "":
		v.add("incident.status", "required")
	case !slices.Contains(statuses, in.Status):
		v.add("incident.status", "unknown status %q for %s (want one of %s)", in.Status, kind, joinQuoted(statuses))
	default:
		if want, ok := requiredStatus[e.Type]; ok && in.Status != want {
			v.add("incident.status", "must be %q on %s, not %q", want, e.Type, in.Status)
		}
		if in.Status.Closed() && (e.Type == IncidentOpened || e.Type == IncidentUpdated) {
			v.add("incident.status", "%q closes the incident: send incident.resolved", in.Status)
		}
	}
	switch {
	case in.Impact == "":
		v.add("incident.impact", "required")
	case in.Impact.Rank() < 0:
		v.add("incident.impact", "unknown impact %q (want one of %s)", in.Impact, joinQuoted(Impacts))
	}
	if len(in.Components) == 0 {
		v.add("incident.components", "at least one component is required")
	}
	for i, c := range in.Components {
		if !ValidID(c) {
			v.add(fmt.Sprintf("incident.components[%d]", i), "%q must be 1–128 letters, digits, '-' or '_'", c)
		}
	}
	if in.StartedAt.IsZero() {
		v.add("incident.started_at", "required")
	}
	// An incident cannot have started after the event that reports it,
	// nor promise its next update further out than anyone would (a
	// mistyped year published "started 02.12.2027" and "next update
	// 02.12.2036" as if true). Maintenance plans ahead: its window is
	// scheduled_start and scheduled_end.
	if !e.Type.IsMaintenance() && !e.Time.IsZero() && !in.StartedAt.IsZero() && in.StartedAt.After(e.Time.Add(clockSkew)) {
		v.add("incident.started_at", "%s is after the event time %s: an incident starts before it is reported", in.StartedAt.Format(time.RFC3339), e.Time.Format(time.RFC3339))
	}
	if in.NextUpdateAt != nil && !e.Time.IsZero() && in.NextUpdateAt.Before(e.Time) {
		v.add("incident.next_update_at", "%s is before the event time %s", in.NextUpdateAt.Format(time.RFC3339), e.Time.Format(time.RFC3339))
	}
	if in.NextUpdateAt != nil && !e.Type.IsMaintenance() && !e.Time.IsZero() && in.NextUpdateAt.After(e.Time.Add(furthestPromise)) {
		v.add("incident.next_update_at", "%s is more than %d days after the event time %s", in.NextUpdateAt.Format(time.RFC3339), int(furthestPromise/(24*time.Hour)), e.Time.Format(time.RFC3339))
	}
	if e.Type.IsMaintenance() {
		if in.ScheduledStart == nil {
			v.add("incident.scheduled_start", "required for maintenance")
		}
		if in.ScheduledStart != nil && in.ScheduledEnd != nil && !in.ScheduledEnd.After(*in.ScheduledStart) {
			v.add("incident.scheduled_end", "must be after scheduled_start")
		}
	} else {
		if in.ScheduledStart != nil {
			v.add("incident.scheduled_start", "only allowed on maintenance events")
		}
		if in.ScheduledEnd != nil {
			v.add("incident.scheduled_end", "only allowed on maintenance events")
		}
	}
}

// validate checks the data statement: known values, no contradiction
// between a field and its older form, and no backup point after the event.
func (d *DataSafety) validate(v *ValidationError, eventTime time.Time) {
	if d.Risk == "" && d.Restore == nil && d.AtRisk == nil && d.RestoredFromBackupAt == nil {
		v.add("incident.data", `empty: give "risk", "restore" or both, or leave "data" out`)
		return
	}
	if d.Risk != "" && !slices.Contains(Risks, d.Risk) {
		v.add("incident.data.risk", "unknown risk %q (want one of %s)", d.Risk, joinQuoted(Risks))
	}
	if d.Risk != "" && d.AtRisk != nil {
		if want := d.Risk == RiskConfirmed; *d.AtRisk != want || d.Risk != RiskNone && d.Risk != RiskConfirmed {
			v.add("incident.data.at_risk", "%t contradicts risk %q (at_risk is the older form of risk: false is \"none\", true is \"confirmed\"; give one of them)", *d.AtRisk, d.Risk)
		}
	}
	afterEvent := func(field string, t time.Time) {
		if !eventTime.IsZero() && t.After(eventTime) {
			v.add(field, "the backup point %s is after the event time %s", t.Format(time.RFC3339), eventTime.Format(time.RFC3339))
		}
	}
	if r := d.Restore; r != nil {
		if r.FromBackupAt.IsZero() {
			v.add("incident.data.restore.from_backup_at", "required: the time of the backup the data is restored from")
		} else {
			afterEvent("incident.data.restore.from_backup_at", r.FromBackupAt)
		}
		switch {
		case r.State == "":
			v.add("incident.data.restore.state", "required (want one of %s)", joinQuoted(RestoreStates))
		case !slices.Contains(RestoreStates, r.State):
			v.add("incident.data.restore.state", "unknown state %q (want one of %s)", r.State, joinQuoted(RestoreStates))
		}
		if old := d.RestoredFromBackupAt; old != nil && (r.State != RestoreDone || !old.Equal(r.FromBackupAt)) {
			v.add("incident.data.restored_from_backup_at", "contradicts restore (restored_from_backup_at is the older form of a restore in state \"done\"; give one of them)")
		}
	} else if old := d.RestoredFromBackupAt; old != nil {
		afterEvent("incident.data.restored_from_backup_at", *old)
	}
}

// requiredStatus is the status an event type implies.
var requiredStatus = map[EventType]Status{
	IncidentResolved:     StatusResolved,
	IncidentPostmortem:   StatusResolved,
	MaintenanceScheduled: StatusScheduled,
	MaintenanceStarted:   StatusInProgress,
	MaintenanceCompleted: StatusCompleted,
}

func (l *Letter) validate(v *ValidationError) {
	if l.IncidentID != "" && !ValidID(l.IncidentID) {
		v.add("letter.incident_id", "%q must be 1–128 letters, digits, '-' or '_'", l.IncidentID)
	}
	switch {
	case l.Audience.All && len(l.Audience.Components) > 0:
		v.add("letter.audience", `give either "all": true or "components", not both`)
	case !l.Audience.All && len(l.Audience.Components) == 0:
		v.add("letter.audience", `required: {"all": true} or {"components": [...]}`)
	}
	for i, c := range l.Audience.Components {
		if !ValidID(c) {
			v.add(fmt.Sprintf("letter.audience.components[%d]", i), "%q must be 1–128 letters, digits, '-' or '_'", c)
		}
	}
	validateLocalized(v, "letter.subject", l.Subject, true)
	switch {
	case l.Sections != nil && l.Body != nil:
		v.add("letter.body", "give either sections or body, not both")
	case l.Sections == nil && l.Body == nil:
		v.add("letter.sections", "required (or a free body)")
	case l.Sections != nil:
		validateLocalized(v, "letter.sections.what_happened", l.Sections.WhatHappened, true)
		validateLocalized(v, "letter.sections.data_safety", l.Sections.DataSafety, true)
		validateLocalized(v, "letter.sections.going_forward", l.Sections.GoingForward, true)
		validateLocalized(v, "letter.sections.apology", l.Sections.Apology, true)
	default:
		validateLocalized(v, "letter.body", l.Body, true)
	}
	if strings.TrimSpace(l.Signature.Name) == "" {
		v.add("letter.signature.name", "required: a letter is signed by a person")
	} else if problem := ControlCharProblem(l.Signature.Name); problem != "" {
		v.add("letter.signature.name", "%s", problem)
	}
	validateLocalized(v, "letter.signature.title", l.Signature.Title, false)
}

// validateLocalized checks a localized text map: every key a known BCP 47
// language tag, every text non-blank, and at least one language when required.
func validateLocalized(v *ValidationError, field string, l Localized, required bool) {
	if l == nil {
		if required {
			v.add(field, "required: an object of language tag to text, e.g. {\"en\": \"…\"}")
		}
		return
	}
	if len(l) == 0 {
		v.add(field, "needs at least one language")
		return
	}
	for _, tag := range sortedKeys(l) {
		if tag == "" {
			v.add(field+`[""]`, "empty language tag")
			continue
		}
		if problem := checkTag(tag); problem != "" {
			v.add(field+"."+tag, "%s", problem)
			continue
		}
		if strings.TrimSpace(l[tag]) == "" {
			v.add(field+"."+tag, "text is empty")
		} else if problem := ControlCharProblem(l[tag]); problem != "" {
			v.add(field+"."+tag, "%s", problem)
		}
	}
}

// ControlCharProblem says where s holds a C0 or C1 control character other
// than newline and tab, or DEL ("control character U+001B at byte 12"), or
// is empty when it holds none. Text with such characters is refused: they
// reach email subjects, SMS and terminals, where they can rewrite or hide
// what is shown. A carriage return is let through only as the first half of
// a CRLF newline, which is how browsers send a textarea's lines.
func ControlCharProblem(s string) string {
	for i, r := range s {
		if r == '\r' && strings.HasPrefix(s[i+1:], "\n") {
			continue
		}
		if isControl(r) {
			return fmt.Sprintf("control character U+%04X at byte %d", r, i)
		}
		if isBidiControl(r) {
			// They reorder what a reader sees ("exe.gnp" shown as
			// "png.exe"); plain text in Norwegian and English needs none.
			return fmt.Sprintf("control character U+%04X at byte %d (a bidirectional override)", r, i)
		}
	}
	return ""
}

// isBidiControl reports the explicit directional embeddings, overrides and
// isolates (U+202A–U+202E, U+2066–U+2069).
func isBidiControl(r rune) bool {
	return r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069
}

func isControl(r rune) bool {
	return r < 0x20 && r != '\n' && r != '\t' || r >= 0x7f && r <= 0x9f
}

// checkTag accepts a BCP 47 tag of a real language in canonical form
// ("en", "nb", "en-GB"), so that texts are found by the same tag subscribers use.
func checkTag(tag string) string {
	t, err := language.Parse(tag)
	if err != nil {
		return fmt.Sprintf("unknown language tag %q", tag)
	}
	if strings.Count(tag, "-") > 2 {
		return fmt.Sprintf("unknown language tag %q: too many parts (use e.g. nb or en-GB)", tag)
	}
	if base, _ := t.Base(); base.String() == "und" || strings.HasPrefix(tag, "und") || strings.Contains(tag, "x-") {
		return fmt.Sprintf("%q names no language", tag)
	}
	if t.String() != tag {
		return fmt.Sprintf("write the language tag %q as %q", tag, t.String())
	}
	return ""
}

func sortedKeys(l Localized) []string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func joinQuoted[T ~string](values []T) string {
	parts := make([]string, len(values))
	for i, s := range values {
		parts[i] = string(s)
	}
	return strings.Join(parts, ", ")
}
