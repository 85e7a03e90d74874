package webhook

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/varsel/varsel/examples"
	"github.com/varsel/varsel/notifier"
	"github.com/varsel/varsel/notifier/render"
)

// TestPayloadNamesComponents: beside the ids of "components", which stay
// as they were, "component_names" names each component in the payload's
// language from the site file; without one each is named by its id.
func TestPayloadNamesComponents(t *testing.T) {
	site, err := examples.Site()
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := notifier.NewTokens([]byte("names-secret-names-secret-names-secret"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		site   *notifier.Site
		locale string
		want   map[string]string
		text   string // in the text, "" for nothing
	}{
		{"Norwegian with the site file", site, "nb", map[string]string{"styreweb": "StyreWeb", "gnist": "Gnist medlemsapp"},
			"Berørte tjenester: StyreWeb, Gnist medlemsapp."},
		{"English with the site file", site, "en", map[string]string{"styreweb": "StyreWeb", "gnist": "Gnist member app"},
			"Affected services: StyreWeb, Gnist member app."},
		{"no site file", nil, "nb", map[string]string{"styreweb": "styreweb", "gnist": "gnist"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := render.New(render.Config{PublicURL: "https://status.example.com", Site: tc.site}, tokens, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			secret := newSecret(t)
			rc := newReceiver(t, nil, secret)
			c := newTestChannel(t, Config{}, nil)
			d := incidentDelivery(rc.srv.URL+"/hooks/varsel", secret)
			d.Subscriber.Locale = tc.locale
			if d.Message, err = r.Render(d.Event, d.Incident, d.Subscriber, notifier.Webhook); err != nil {
				t.Fatal(err)
			}
			if _, retry, err := c.Notify(context.Background(), d); err != nil || retry {
				t.Fatalf("Notify = %v, retry %v", err, retry)
			}
			reqs := rc.requests()
			if len(reqs) != 1 {
				t.Fatalf("receiver got %d requests, want 1", len(reqs))
			}
			var p struct {
				Data struct {
					Incident struct {
						Components []string `json:"components"`
					} `json:"incident"`
					ComponentNames map[string]string `json:"component_names"`
					Locale         string            `json:"locale"`
					Text           string            `json:"text"`
				} `json:"data"`
			}
			if err := json.Unmarshal(reqs[0].body, &p); err != nil {
				t.Fatalf("payload is not JSON: %v\n%s", err, reqs[0].body)
			}
			if !slices.Equal(p.Data.Incident.Components, []string{"styreweb", "gnist"}) {
				t.Errorf("incident.components = %q, want the ids as before", p.Data.Incident.Components)
			}
			if !maps.Equal(p.Data.ComponentNames, tc.want) {
				t.Errorf("component_names = %v, want %v\n%s", p.Data.ComponentNames, tc.want, reqs[0].body)
			}
			if p.Data.Locale != tc.locale {
				t.Errorf("locale %q, want %q", p.Data.Locale, tc.locale)
			}
			if tc.text != "" && !strings.Contains(p.Data.Text, tc.text) {
				t.Errorf("text %q does not name the components: want %q in it", p.Data.Text, tc.text)
			}
			if tc.text == "" && (strings.Contains(p.Data.Text, "Berørte") || strings.Contains(p.Data.Text, "Affected")) {
				t.Errorf("text %q names components without a site file", p.Data.Text)
			}
		})
	}
}
