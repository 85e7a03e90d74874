package render

import "strings"

// The HTML footer differs between subscribers only in their two links.
// html/template escapes a value for its place in the page, which only an
// execution knows; but a link made of characters that no context escapes
// comes out as it went in. So the footer is executed once per status URL
// and site name with a sentinel for each link, cut at the sentinels, and
// filled with each subscriber's links, when:
//
//   - the template reads nothing else that differs between subscribers
//     (checked on its parse tree at New time);
//   - the links are plain: http(s) URLs of letters, digits and "-._~:/"
//     only (ours are the public URL and a token), else the footer is
//     executed whole;
//   - filling the frame with probe links of every plain character gives
//     exactly what executing the template with them gives (checked once
//     per frame); a template that puts a link where it is escaped (a
//     script, say) fails this and is executed whole every time.

// Sentinel links: plain, and found nowhere else in a footer.
const (
	sentinelUnsubscribe = "https://sentinel.invalid/varsel-unsubscribe-link"
	sentinelPreferences = "https://sentinel.invalid/varsel-preferences-link"
	probeUnsubscribe    = "https://probe.invalid:8443/unsubscribe/AZaz09-_.~Zz/x"
	probePreferences    = "http://probe.invalid/p/preferences/09azAZ~._-/y"
)

// htmlFrameKey is what the HTML footer's frame depends on.
type htmlFrameKey struct {
	statusURL, siteName string
}

// htmlFrame is an executed HTML footer cut where the links go: pieces
// around the links, unsubscribe[i] telling which link follows pieces[i].
// A nil frame stands for a footer that must be executed whole.
type htmlFrame struct {
	pieces      []string
	unsubscribe []bool
}

// cacheableHTMLFooter reports whether the HTML footer reads nothing that
// differs between subscribers but the two links.
func cacheableHTMLFooter(ls *langSet) bool {
	t := ls.html.Lookup(tmplHTMLFooter)
	if t == nil || t.Tree == nil || t.Tree.Root == nil {
		return false
	}
	fields, opaque := reads(t.Tree.Root)
	return !opaque && !fields[fieldName]
}

// htmlFooter returns the HTML footer for pd.
func (ls *langSet) htmlFooter(pd personal) (string, error) {
	pp := ls.personal
	if pp.htmlFrames == nil || !plainLink(pd.UnsubscribeURL) || !plainLink(pd.PreferencesURL) {
		return ls.execHTML(tmplHTMLFooter, pd)
	}
	key := htmlFrameKey{statusURL: pd.StatusURL, siteName: pd.SiteName}
	f, ok := pp.htmlFrames.get(key)
	if !ok {
		var err error
		if f, err = ls.newHTMLFrame(key); err != nil {
			return "", err
		}
		pp.htmlFrames.put(key, f)
	}
	if f == nil {
		return ls.execHTML(tmplHTMLFooter, pd)
	}
	return f.fill(pd.UnsubscribeURL, pd.PreferencesURL), nil
}

// newHTMLFrame executes the footer with the sentinels and cuts it, or
// returns nil when filling it would not give what executing does.
func (ls *langSet) newHTMLFrame(key htmlFrameKey) (*htmlFrame, error) {
	pd := personal{StatusURL: key.statusURL, SiteName: key.siteName}
	pd.UnsubscribeURL, pd.PreferencesURL = sentinelUnsubscribe, sentinelPreferences
	out, err := ls.execHTML(tmplHTMLFooter, pd)
	if err != nil {
		return nil, err
	}
	f := &htmlFrame{}
	for {
		u, p := strings.Index(out, sentinelUnsubscribe), strings.Index(out, sentinelPreferences)
		if u < 0 && p < 0 {
			break
		}
		at, isU, n := p, false, len(sentinelPreferences)
		if u >= 0 && (p < 0 || u < p) {
			at, isU, n = u, true, len(sentinelUnsubscribe)
		}
		f.pieces = append(f.pieces, out[:at])
		f.unsubscribe = append(f.unsubscribe, isU)
		out = out[at+n:]
	}
	f.pieces = append(f.pieces, out)
	pd.UnsubscribeURL, pd.PreferencesURL = probeUnsubscribe, probePreferences
	want, err := ls.execHTML(tmplHTMLFooter, pd)
	if err != nil {
		return nil, err
	}
	if f.fill(probeUnsubscribe, probePreferences) != want {
		return nil, nil
	}
	return f, nil
}

// fill puts the links in the frame.
func (f *htmlFrame) fill(unsubscribe, preferences string) string {
	n := 0
	for _, p := range f.pieces {
		n += len(p)
	}
	n += len(f.unsubscribe) * max(len(unsubscribe), len(preferences))
	var b strings.Builder
	b.Grow(n)
	for i, p := range f.pieces {
		b.WriteString(p)
		if i == len(f.unsubscribe) {
			break
		}
		if f.unsubscribe[i] {
			b.WriteString(unsubscribe)
		} else {
			b.WriteString(preferences)
		}
	}
	return b.String()
}

// plainLink reports whether s is an http(s) URL that no context of an HTML
// template escapes: letters, digits and "-._~:/" only.
func plainLink(s string) bool {
	rest, ok := strings.CutPrefix(s, "https://")
	if !ok {
		if rest, ok = strings.CutPrefix(s, "http://"); !ok {
			return false
		}
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == ':', c == '/':
		default:
			return false
		}
	}
	return true
}
