package render

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// abbreviations end in a full stop without ending a sentence, in either
// language ("kl. 14", "f.eks. StyreWeb", "Mr. Smith"). Compared in lower
// case, without the final stop.
var abbreviations = map[string]bool{
	// Norwegian
	"kl": true, "ca": true, "f.eks": true, "bl.a": true, "nr": true, "jf": true, "dvs": true,
	"mht": true, "evt": true, "tlf": true, "pga": true, "ref": true, "iht": true, "ihht": true,
	"mv": true, "osv": true, "mnd": true, "min": true, "sek": true, "t.o.m": true, "f.o.m": true,
	"inkl": true, "eks": true, "hhv": true, "o.l": true, "m.m": true, "vedr": true, "pr": true,
	// English
	"mr": true, "mrs": true, "ms": true, "dr": true, "st": true, "e.g": true, "i.e": true,
	"etc": true, "vs": true, "approx": true, "no": true, "inc": true, "ltd": true, "jan": true,
	"feb": true, "mar": true, "apr": true, "jun": true, "jul": true, "aug": true, "sep": true,
	"sept": true, "oct": true, "nov": true, "dec": true, "a.m": true, "p.m": true, "incl": true,
}

// sentenceEnds are the characters that end a sentence; closers may follow
// them before the space ("…lav.»", "(see below.)").
const (
	sentenceEnds = ".!?…"
	closers      = "\"'»”’)]"
)

// sentences splits free text into whole sentences, in order, for messages
// that have room for only part of it. A sentence ends at . ! ? or …
// (followed by closing quotes or brackets) before a space and a capital
// letter, digit-free opening quote or the end, unless the word is a known
// abbreviation; a line break also ends one. A line without a final stop
// gets one, so joined lines stay readable. When in doubt it does not split:
// a sentence too long for the room is left out whole, never cut.
//
// It stops before the first list item ("- ", "• ", "* ") and leaves out a
// sentence ending in a colon that would introduce it: a list does not fit
// an SMS, and its heading alone says nothing.
func sentences(text string) []string {
	var out []string
	for line := range strings.SplitSeq(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		line = strings.Join(strings.Fields(line), " ")
		if line == "" {
			continue
		}
		if isListItem(line) {
			break
		}
		for _, s := range splitLine(line) {
			if r, _ := utf8.DecodeLastRuneInString(strings.TrimRight(s, closers)); !strings.ContainsRune(sentenceEnds+":", r) {
				s += "."
			}
			out = append(out, s)
		}
	}
	for len(out) > 0 && strings.HasSuffix(out[len(out)-1], ":") {
		out = out[:len(out)-1]
	}
	return out
}

func isListItem(line string) bool {
	for _, p := range []string{"- ", "• ", "* ", "– "} {
		if strings.HasPrefix(line, p) {
			return true
		}
	}
	return false
}

// splitLine splits one line (whitespace already folded) into sentences.
func splitLine(line string) []string {
	var out []string
	start := 0
	for i := 0; i < len(line); {
		r, n := utf8.DecodeRuneInString(line[i:])
		i += n
		if !strings.ContainsRune(sentenceEnds, r) {
			continue
		}
		end := i
		for end < len(line) {
			c, cn := utf8.DecodeRuneInString(line[end:])
			if !strings.ContainsRune(sentenceEnds+closers, c) {
				break
			}
			end += cn
		}
		if end >= len(line) || line[end] != ' ' || !startsSentence(line[end+1:]) || r == '.' && isAbbreviation(line[start:i-n]) {
			i = end
			continue
		}
		out = append(out, line[start:end])
		start, i = end+1, end+1
	}
	if rest := strings.TrimSpace(line[start:]); rest != "" {
		out = append(out, rest)
	}
	return out
}

// startsSentence reports whether s begins like a sentence: a capital
// letter, possibly after opening quotes or a bracket.
func startsSentence(s string) bool {
	s = strings.TrimLeft(s, "\"'«“‘([")
	r, _ := utf8.DecodeRuneInString(s)
	return unicode.IsUpper(r)
}

// isAbbreviation reports whether the text before a full stop ends in a
// known abbreviation or a single letter ("J. Smith").
func isAbbreviation(before string) bool {
	word := before
	if i := strings.LastIndexAny(before, " (\"'«“"); i >= 0 {
		word = before[i+1:]
	}
	word = strings.ToLower(word)
	return abbreviations[word] || utf8.RuneCountInString(word) == 1 && unicode.IsLetter([]rune(word)[0])
}
