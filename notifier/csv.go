package notifier

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// CSVColumns are the columns of a subscriber CSV file, in any order; a
// header row is required and only id and one contact must be present.
var CSVColumns = []string{"id", "name", "email", "phone", "webhook_url", "webhook_secret", "locale", "timezone", "components"}

// RowError is one bad row of a subscriber CSV file.
type RowError struct {
	Line   int    // 1-based line in the file
	Column string // the column at fault, "" for the row as a whole
	Err    error
}

func (e RowError) Error() string {
	if e.Column == "" {
		return fmt.Sprintf("line %d: %v", e.Line, e.Err)
	}
	return fmt.Sprintf("line %d, column %s: %v", e.Line, e.Column, e.Err)
}

// ReadSubscribersCSV parses a subscriber CSV file. Good rows are returned
// normalized and validated; every bad row is reported with its line and
// column, and does not stop the others. A bad header is an error.
func ReadSubscribersCSV(r io.Reader) ([]*Subscriber, []RowError, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		return nil, nil, fmt.Errorf("read header row: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if !slices.Contains(CSVColumns, h) {
			return nil, nil, fmt.Errorf("header column %d: unknown column %q (want %s)", i+1, h, strings.Join(CSVColumns, ","))
		}
		if _, dup := col[h]; dup {
			return nil, nil, fmt.Errorf("header column %d: %q given twice", i+1, h)
		}
		col[h] = i
	}
	if _, ok := col["id"]; !ok {
		return nil, nil, errors.New("header: the id column is required")
	}
	var subs []*Subscriber
	var bad []RowError
	seen := map[string]int{}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			// No field positions for a record that failed (FieldPos
			// panicked on a quote left open to the end of the file).
			line := 0
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				line = pe.StartLine
			}
			bad = append(bad, RowError{Line: line, Err: err})
			continue
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != len(header) {
			bad = append(bad, RowError{Line: line, Err: fmt.Errorf("%d fields, the header has %d", len(rec), len(header))})
			continue
		}
		get := func(name string) string {
			if i, ok := col[name]; ok {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		s := &Subscriber{ID: get("id"), Name: get("name"), Email: get("email"), Phone: get("phone"),
			WebhookURL: get("webhook_url"), WebhookSecret: get("webhook_secret"), Locale: get("locale"), Timezone: get("timezone")}
		if c := get("components"); c != "" && c != "*" {
			for _, part := range strings.Split(c, ";") {
				if part = strings.TrimSpace(part); part != "" {
					s.Components = append(s.Components, part)
				}
			}
		}
		if err := s.Normalize(); err != nil {
			return nil, nil, err
		}
		if err := s.Validate(); err != nil {
			var ve *ValidationError
			if errors.As(err, &ve) {
				for _, p := range ve.Problems {
					column, _, _ := strings.Cut(p.Field, "[")
					bad = append(bad, RowError{Line: line, Column: column, Err: errors.New(p.Problem)})
				}
				continue
			}
		}
		if first, dup := seen[s.ID]; dup {
			bad = append(bad, RowError{Line: line, Column: "id", Err: fmt.Errorf("%q already on line %d", s.ID, first)})
			continue
		}
		seen[s.ID] = line
		subs = append(subs, s)
	}
	return subs, bad, nil
}
