package render

import (
	"fmt"
	htmltemplate "html/template"
	"regexp"
	"strings"
	texttemplate "text/template"
	"unicode"
	"unicode/utf8"
)

// funcs are the template functions bound to one locale.
func (ls *langSet) funcs() texttemplate.FuncMap {
	return texttemplate.FuncMap{
		// t returns a fixed phrase: {{t "NextUpdate" "Time" .NextUpdateAt}}.
		"t": func(id string, kv ...any) (string, error) {
			if len(kv) == 0 {
				return ls.phrase(id)
			}
			data, err := pairs(id, kv)
			if err != nil {
				return "", err
			}
			return ls.localize(id, nil, data)
		},
		// tn returns a phrase in the plural form for count:
		// {{tn "StartedUpdated" .Updates "Time" .StartedAt}}; the count is .Count.
		"tn": func(id string, count int, kv ...any) (string, error) {
			data, err := pairs(id, kv)
			if err != nil {
				return "", err
			}
			data["Count"] = count
			return ls.localize(id, count, data)
		},
		"status": func(s string) (string, error) { return ls.phrase("Status" + camel(s)) },
		"impact": func(s string) (string, error) { return ls.phrase("Impact" + camel(s)) },
		// impactWas names an impact in the past tense: "Service was down".
		"impactWas": func(s string) (string, error) { return ls.phrase("ImpactWas" + camel(s)) },
		// risk and restore are the sentences of a data statement:
		// {{risk .Risk .Restore}}, {{restore .Restore .RestoreFrom}}. Beside
		// a restore, risk "none" says the data was not exposed: it cannot
		// say the data was never at risk when recent entries may be lost.
		"risk": func(risk, restore string) (string, error) { return ls.phrase(RiskPhrase(risk, restore)) },
		"restore": func(state, from string) (string, error) {
			return ls.localize("DataRestore"+camel(state), nil, map[string]any{"Time": from})
		},
		"lower": lowerFirst,
		"paras": paragraphs,
		"lines": func(s string) []string { return strings.Split(s, "\n") },
		// oneline folds all whitespace, newlines included, into single spaces.
		"oneline": func(s string) string { return strings.Join(strings.Fields(s), " ") },
		"color":   impactColor,
		"section": func(heading, text string) section { return section{Heading: heading, Text: text} },
	}
}

// section is one headed part of a letter.
type section struct {
	Heading, Text string
}

func pairs(id string, kv []any) (map[string]any, error) {
	if len(kv)%2 != 0 {
		return nil, fmt.Errorf("message %q: data must be key/value pairs", id)
	}
	data := make(map[string]any, len(kv)/2+1)
	for i := 0; i < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			return nil, fmt.Errorf("message %q: key %v is not a string", id, kv[i])
		}
		data[k] = kv[i+1]
	}
	return data, nil
}

// camel turns "in_progress" into "InProgress", the suffix of a message id.
func camel(s string) string {
	var b strings.Builder
	for part := range strings.SplitSeq(s, "_") {
		r, n := utf8.DecodeRuneInString(part)
		if n == 0 {
			continue
		}
		b.WriteRune(unicode.ToUpper(r))
		b.WriteString(part[n:])
	}
	return b.String()
}

// camelType turns "incident.opened" into "IncidentOpened".
func camelType(t string) string {
	return camel(strings.ReplaceAll(t, ".", "_"))
}

func lowerFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return string(unicode.ToLower(r)) + s[n:]
}

var blankLines = regexp.MustCompile(`\n[ \t]*\n`)

// paragraphs splits free text on blank lines.
func paragraphs(s string) []string {
	var out []string
	for _, p := range blankLines.Split(strings.ReplaceAll(s, "\r\n", "\n"), -1) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// impactColor is the accent colour of an impact; letters have none and get
// the neutral blue.
func impactColor(impact string) htmltemplate.CSS {
	switch impact {
	case "none":
		return "#15803d"
	case "minor":
		return "#a16207"
	case "major":
		return "#c2410c"
	case "critical":
		return "#b91c1c"
	}
	return "#1d4ed8"
}

var blankRuns = regexp.MustCompile(`\n{3,}`)

// tidy trims trailing spaces from every line, folds runs of blank lines into
// one and trims the ends, so text templates can be written for legibility.
func tidy(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t")
	}
	return strings.TrimSpace(blankRuns.ReplaceAllString(strings.Join(lines, "\n"), "\n\n"))
}

// foldLines folds the spaces of every line into single ones, so a one-line
// summary whose optional parts are empty has no gaps.
func foldLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

// RiskPhrase is the message id of the sentence for a data risk, given the
// restore state beside it ("" for none).
func RiskPhrase(risk, restore string) string {
	if risk == "none" && restore != "" {
		return "DataRiskNoneRestored"
	}
	return "DataRisk" + camel(risk)
}
