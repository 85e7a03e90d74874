package console

import (
	"strconv"
	"strings"
	"time"

	"github.com/varsel/varsel/notifier"
)

// fieldLabels name an event's fields (and the form's own) by the label
// the staff member sees on the form, so a problem says where it is in
// their language, not as a JSON path ("incident.next_update_at").
var fieldLabels = map[string]string{
	"incident.id": "ConsoleIncidentID", "incident_id": "ConsoleIncidentID",
	"incident.title": "ConsoleTitle", "title": "ConsoleTitle",
	"incident.message": "ConsoleMessage", "message": "ConsoleMessage",
	"incident.contact": "ConsoleContact", "contact": "ConsoleContact",
	"incident.status": "ConsoleState", "incident.impact": "ConsoleState",
	"incident.components": "ConsoleComponents",
	"incident.started_at": "ConsoleStartedAt", "started_at": "ConsoleStartedAt",
	"incident.next_update_at": "ConsoleNextUpdate", "next_at": "ConsoleNextUpdate",
	"incident.scheduled_start": "ConsoleWindowStart", "window_start": "ConsoleWindowStart",
	"incident.scheduled_end": "ConsoleWindowEnd", "window_end": "ConsoleWindowEnd",
	"incident.data": "ConsoleRisk", "incident.data.risk": "ConsoleRisk",
	"incident.data.restore": "ConsoleRestore", "incident.data.restore.state": "ConsoleRestore",
	"incident.data.restore.from_backup_at": "ConsoleRestoreFrom", "restore_from": "ConsoleRestoreFrom",
	"letter.subject": "ConsoleLetterSubject", "subject": "ConsoleLetterSubject",
	"letter.sections.what_happened": "LetterWhatHappened", "what_happened": "LetterWhatHappened",
	"letter.sections.data_safety": "LetterDataSafety", "data_safety": "LetterDataSafety",
	"letter.sections.going_forward": "LetterGoingForward", "going_forward": "LetterGoingForward",
	"letter.sections.apology": "LetterApology", "apology": "LetterApology",
	"letter.signature.name":  "ConsoleSignName",
	"letter.signature.title": "ConsoleSignTitle", "signature_title": "ConsoleSignTitle",
	"letter.audience": "ConsoleLetterAudience", "letter.audience.components": "ConsoleLetterAudience",
}

// label is the form's name for field: the label of its input, "" when
// the field has none.
func (p Page) label(field string) string {
	base := field
	if i := strings.IndexByte(base, '['); i >= 0 {
		base = base[:i] // incident.components[1]
	}
	id, ok := fieldLabels[base]
	for !ok && strings.Contains(base, ".") {
		// A text's language: incident.title.en is the title.
		base = base[:strings.LastIndexByte(base, '.')]
		id, ok = fieldLabels[base]
	}
	if !ok {
		return ""
	}
	return p.T(id, "Zone", p.Zone)
}

// problem says what is wrong with field in the staff member's language:
// the field by its label, the problem in a fixed phrase where there is one
// (msgID with kv), else the validator's own words.
func (p Page) problem(field, msgID string, kv ...any) string {
	name := p.label(field)
	if name == "" {
		name = field
	}
	return p.T(msgID, append([]any{"Field", name}, kv...)...)
}

// problemOf is problem for one of the event validator's findings: in a
// fixed phrase for those a form can lead to, else the validator's words.
func (p Page) problemOf(fe notifier.FieldError) string {
	pr := fe.Problem
	switch {
	case pr == "text is empty" || strings.HasPrefix(pr, "required") || strings.HasPrefix(pr, "needs at least one language") ||
		strings.HasPrefix(pr, "at least one component is required"):
		return p.problem(fe.Field, "ConsoleErrRequired")
	case strings.Contains(pr, "must be 1–128 letters, digits, '-' or '_'"):
		if v, err := strconv.QuotedPrefix(pr); err == nil {
			v, _ = strconv.Unquote(v)
			return p.problem(fe.Field, "ConsoleErrID", "Value", v)
		}
	case pr == "must be after scheduled_start":
		return p.problem(fe.Field, "ConsoleErrWindowOrder")
	case strings.HasPrefix(pr, "the backup point "):
		if at, err := time.Parse(time.RFC3339, strings.Fields(strings.TrimPrefix(pr, "the backup point "))[0]); err == nil {
			return p.problem(fe.Field, "ConsoleErrBackupLater", "Time", p.Time(at))
		}
	}
	return p.problem(fe.Field, "ConsoleErrField", "Problem", pr)
}
