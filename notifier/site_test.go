package notifier

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSiteFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "site.toml")
	if err := os.WriteFile(good, []byte(`name = { en = "Gnist status", nb = "Gnist driftsstatus" }
[[components]]
id = "gnist"
name = { en = "Gnist member app", nb = "Gnist medlemsapp" }
group = { en = "Apps", nb = "Apper" }
[[components]]
id = "styreweb"
name = { en = "StyreWeb", nb = "StyreWeb" }
`), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSite(good)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ got, want string }{
		{s.SiteName("nb-NO"), "Gnist driftsstatus"},
		{s.SiteName("de"), "Gnist status"},
		{s.ComponentName("gnist", "nb"), "Gnist medlemsapp"},
		{s.ComponentName("gnist", "en"), "Gnist member app"},
		{s.ComponentName("ukjent", "nb"), "ukjent"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	if u := s.Unknown([]string{"gnist", "ukjent"}); len(u) != 1 || u[0] != "ukjent" {
		t.Errorf("unknown = %v", u)
	}
	var none *Site
	if !none.Known("x") || none.ComponentName("x", "nb") != "x" || none.SiteName("nb") != "" {
		t.Error("no site file must name everything by its id")
	}

	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte(`nmae = "x"
[[components]]
id = "a b"
name = { en = "" }
[[components]]
id = "c"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadSite(bad)
	for _, want := range []string{`unknown key "nmae"`, `components[0].id "a b"`, "components[0].name.en is empty", "components[1].name is missing"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bad site file: error %v lacks %q", err, want)
		}
	}
}

func TestScrubContactsMasksAddressesAndNumbers(t *testing.T) {
	got := ScrubContacts("550 5.1.1 <kari.nordmann@example.com>: user unknown; to +4792211333 failed")
	if strings.Contains(got, "kari.nordmann@") || strings.Contains(got, "92211333") || !strings.Contains(got, "k***@example.com") || !strings.Contains(got, "+47******33") {
		t.Errorf("scrubbed: %q", got)
	}
	if ScrubError(nil) != "" {
		t.Error("ScrubError(nil) is not empty")
	}
}
