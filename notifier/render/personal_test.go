package render

import (
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
