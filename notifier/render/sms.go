package render

import "strings"

// SMS encodings reported by Segments.
const (
	GSM7 = "GSM-7"
	UCS2 = "UCS-2"
)

// Segment sizes (3GPP TS 23.038 / 23.040): a single SMS carries 160 GSM-7
// septets or 70 UCS-2 code units; a part of a concatenated one loses room to
// its header and carries 153 or 67.
const (
	gsmSingle = 160
	gsmPart   = 153
	ucsSingle = 70
	ucsPart   = 67
)

// gsmBasic is the GSM 03.38 basic character set (one septet each); Æ Ø Å
// æ ø å are in it. gsmExtension needs an escape septet first (two each).
const (
	gsmBasic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
		"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsmExtension = "\f^{}\\[~]|€"
)

var gsmSeptets = func() map[rune]int {
	m := make(map[rune]int, 140)
	for _, r := range gsmBasic {
		m[r] = 1
	}
	for _, r := range gsmExtension {
		m[r] = 2
	}
	return m
}()

// Segments returns how many SMS segments body needs and in which encoding:
// GSM-7 when every character is in the GSM 03.38 basic or extension table
// (extension characters such as € [ ] { } ~ \ ^ | count two), UCS-2
// otherwise. Parts of a long message never split an escape sequence or a
// UTF-16 surrogate pair, as phones and providers do. An empty body needs 0.
func Segments(body string) (segments int, encoding string) {
	if body == "" {
		return 0, GSM7
	}
	units := make([]int, 0, len(body))
	total, gsm := 0, true
	for _, r := range body {
		n, ok := gsmSeptets[r]
		if !ok {
			gsm = false
			break
		}
		units = append(units, n)
		total += n
	}
	single, part := gsmSingle, gsmPart
	encoding = GSM7
	if !gsm {
		units, total = units[:0], 0
		for _, r := range body {
			n := utf16Len(r)
			units = append(units, n)
			total += n
		}
		single, part, encoding = ucsSingle, ucsPart, UCS2
	}
	if total <= single {
		return 1, encoding
	}
	segments, used := 1, 0
	for _, n := range units {
		if used+n > part {
			segments++
			used = 0
		}
		used += n
	}
	return segments, encoding
}

func utf16Len(r rune) int {
	if r >= 0x10000 {
		return 2
	}
	return 1
}

// gsmReplacer maps typographic characters that would force UCS-2 (and so
// cut a segment from 160 to 70 characters) to their GSM-7 look-alikes.
var gsmReplacer = strings.NewReplacer(
	"\u2018", "'", "\u2019", "'", "\u201A", "'", "\u2032", "'", // ‘ ’ ‚ ′
	"\u201C", `"`, "\u201D", `"`, "\u201E", `"`, "\u00AB", `"`, "\u00BB", `"`, // “ ” „ « »
	"\u2013", "-", "\u2014", "-", "\u2212", "-", "\u2010", "-", "\u2011", "-", // – — − ‐ ‑
	"\u2026", "...", // …
	"\u00A0", " ", "\u202F", " ", "\u2009", " ", // no-break, narrow and thin spaces
	"\u2022", "-", // •
	"\t", " ",
)

// NormalizeGSM replaces the typographic characters ’ ‘ “ ” « » – — … and
// unusual spaces with GSM-7 equivalents so a message stays in GSM-7. Other
// characters are left as they are.
func NormalizeGSM(s string) string { return gsmReplacer.Replace(s) }
