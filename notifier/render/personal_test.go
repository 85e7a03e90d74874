package render

import (
	"github.com/varsel/varsel/templates"
	"strings"
	"testing"

	"github.com/varsel/varsel/notifier"
)

// TestPersonalPlan checks that the embedded templates take the fast paths:
// greetings cached by name, the text footer split with a bare link piece.
func TestPersonalPlan(t *testing.T) {
	r := newTestRenderer(t, Config{})
	for _, locale := range Locales {
		pp := r.sets[locale].personal
		if pp.greetings == nil {
			t.Errorf("%s: greetings are not cached", locale)
		}
		links := 0
		for _, seg := range pp.footer {
			if seg.link {
				links++
			}
		}
		if links != 1 {
			t.Errorf("%s: text footer has %d bare link pieces, want 1 (%+v)", locale, links, pp.footer)
		}
	}
}

// TestPersonalCachedGreetings renders alternating names through the caches
// and checks each email against a fresh renderer's.
func TestPersonalCachedGreetings(t *testing.T) {
	events, states := loadScenario(t, "styreweb")
	const id = "styreweb-2019-09-17-1000"
	warm := newTestRenderer(t, Config{})
	for i, name := range []string{"Kari  Nordmann", "", "Ola <b>&</b>", "Kari Nordmann", "", "Ola <b>&</b>"} {
		sub := &notifier.Subscriber{ID: "s" + string(rune('a'+i)), Name: name, Locale: "en-GB"}
		got, err := warm.Render(events[id], states[id], sub, notifier.Email)
		if err != nil {
			t.Fatal(err)
		}
		want, err := newTestRenderer(t, Config{}).Render(events[id], states[id], sub, notifier.Email)
		if err != nil {
			t.Fatal(err)
		}
		if got.Text != want.Text || got.HTML != want.HTML {
			t.Errorf("name %q: cached render differs from a fresh one", name)
		}
		if !strings.Contains(got.Text, want.UnsubscribeURL) || !strings.Contains(got.HTML, want.UnsubscribeURL) {
			t.Errorf("name %q: unsubscribe link missing", name)
		}
		if strings.Contains(got.HTML, "<b>") {
			t.Errorf("name %q: HTML greeting not escaped", name)
		}
	}
}

// TestHTMLFooterFrame checks the filled HTML footer against executing the
// template, for plain links (the frame) and links it must not fill (the
// template), in every locale.
func TestHTMLFooterFrame(t *testing.T) {
	r := newTestRenderer(t, Config{})
	links := []string{
		"https://status.example.com/unsubscribe/ZW1haWx8a2FyaXxlbWFpbA.AbC-_9",
		"http://localhost:8080/preferences/cHJlZnN8YWxleA.x_Y-z",
		"https://status.example.com/a+b/unsubscribe/x", // '+' is escaped in an attribute
		"https://status.example.com/u?tok=a&b=\"c\"",   // & and " are escaped
		"javascript:alert(1)",                               // filtered by html/template
		"https://status.example.com/æøå/unsubscribe/x",      // normalised
		"https://status.example.com/<script>/unsubscribe/x", // escaped
	}
	for _, locale := range Locales {
		ls := r.sets[locale]
		if ls.personal.htmlFrames == nil {
			t.Fatalf("%s: the embedded HTML footer is not framed", locale)
		}
		for _, site := range []string{"", "Gnist & Co <AS>"} {
			for i, u := range links {
				pd := personal{UnsubscribeURL: u, PreferencesURL: links[(i+1)%len(links)], StatusURL: "https://status.example.com/?lang=" + locale, SiteName: site}
				if got, want := footers(t, ls, pd); got != want {
					t.Errorf("%s, site %q, links %q and %q:\n got %s\nwant %s", locale, site, pd.UnsubscribeURL, pd.PreferencesURL, got, want)
				}
			}
			f, ok := ls.personal.htmlFrames.get(htmlFrameKey{statusURL: "https://status.example.com/?lang=" + locale, siteName: site})
			if !ok || f == nil || len(f.unsubscribe) != 2 {
				t.Errorf("%s, site %q: no frame with two links was made (%+v)", locale, site, f)
			}
		}
	}
}

// TestHTMLFooterFrameRefusesEscapedPlaces checks that a footer putting a
// link where html/template escapes even plain characters (a URL's query)
// is executed whole, and so still right.
func TestHTMLFooterFrameRefusesEscapedPlaces(t *testing.T) {
	orig, err := templates.FS.ReadFile("email.html.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	const anchor = `<a href="{{.UnsubscribeURL}}"`
	if !strings.Contains(string(orig), anchor) {
		t.Fatalf("email.html.tmpl has no %s", anchor)
	}
	text := strings.Replace(string(orig), anchor, `<a href="https://example.com/go?next={{.UnsubscribeURL}}">x</a>`+anchor, 1)
	r := newTestRenderer(t, Config{TemplatesDir: writeOverride(t, "email.html.tmpl", text)})
	ls := r.sets["en"]
	pd := personal{UnsubscribeURL: "https://status.example.com/unsubscribe/abc.def", PreferencesURL: "https://status.example.com/preferences/abc.def",
		StatusURL: "https://status.example.com/"}
	got, want := footers(t, ls, pd)
	if got != want || !strings.Contains(got, `?next=https%3a%2f%2fstatus.example.com%2funsubscribe%2fabc.def"`) {
		t.Errorf("got %s\nwant %s", got, want)
	}
	if f, ok := ls.personal.htmlFrames.get(htmlFrameKey{statusURL: pd.StatusURL}); !ok || f != nil {
		t.Errorf("a frame was kept for a footer with a link in a query: %+v", f)
	}
}

// footers returns the HTML footer for pd as filled from its frame (or
// executed, where it has none) and as executing the template gives it.
func footers(t *testing.T, ls *langSet, pd personal) (got, want string) {
	t.Helper()
	got, err := ls.htmlFooter(pd)
	if err != nil {
		t.Fatal(err)
	}
	want, err = ls.execHTML(tmplHTMLFooter, pd)
	if err != nil {
		t.Fatal(err)
	}
	return got, want
}
