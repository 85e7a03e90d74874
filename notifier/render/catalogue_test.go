package render

import (
	"slices"
	"testing"
)

// TestCataloguesMatch fails when a message id is in one catalogue and not the
// other, when the plural forms differ, or when a Norwegian entry is a copy of
// the English one (except SameInBothLanguages).
func TestCataloguesMatch(t *testing.T) {
	en, err := Catalogue("en")
	if err != nil {
		t.Fatal(err)
	}
	nb, err := Catalogue("nb")
	if err != nil {
		t.Fatal(err)
	}
	if len(en) < 50 {
		t.Fatalf("English catalogue has only %d messages; did it parse?", len(en))
	}
	for id, enForms := range en {
		nbForms, ok := nb[id]
		if !ok {
			t.Errorf("message %q is in active.en.toml but not in active.nb.toml", id)
			continue
		}
		for _, form := range []string{"zero", "one", "two", "few", "many", "other"} {
			e, n := enForms[form], nbForms[form]
			switch {
			case (e == "") != (n == ""):
				t.Errorf("message %q: plural form %q is in only one catalogue (en %q, nb %q)", id, form, e, n)
			case e != "" && e == n && !slices.Contains(SameInBothLanguages, id):
				t.Errorf("message %q: the Norwegian text %q is the English one; translate it or add the id to SameInBothLanguages", id, n)
			}
		}
	}
	for id := range nb {
		if _, ok := en[id]; !ok {
			t.Errorf("message %q is in active.nb.toml but not in active.en.toml", id)
		}
	}
	for _, id := range SameInBothLanguages {
		if en[id]["other"] != nb[id]["other"] {
			t.Errorf("SameInBothLanguages lists %q, but its texts differ: drop it from the list", id)
		}
	}
}

// TestEveryStatusAndImpactHasAName guards the ids the templates build from
// the event's status and impact.
func TestEveryStatusAndImpactHasAName(t *testing.T) {
	r := newTestRenderer(t, Config{})
	for _, locale := range Locales {
		ls := r.sets[locale]
		for _, s := range []string{"investigating", "identified", "monitoring", "resolved", "scheduled", "in_progress", "completed"} {
			if _, err := ls.phrase("Status" + camel(s)); err != nil {
				t.Errorf("%s: status %s: %v", locale, s, err)
			}
		}
		for _, i := range []string{"none", "minor", "major", "critical"} {
			if _, err := ls.phrase("Impact" + camel(i)); err != nil {
				t.Errorf("%s: impact %s: %v", locale, i, err)
			}
		}
	}
}
