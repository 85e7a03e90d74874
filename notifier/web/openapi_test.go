package web

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/varsel/varsel/notifier"
)

// plannedWork is maintenance in a window, so the status names every field.
const plannedWork = `{"id":"m1","type":"maintenance.scheduled","time":"2019-10-01T10:00:00Z","incident":{"id":"db-upgrade","title":{"en":"Database upgrade","nb":"Oppgradering av databasen"},"status":"scheduled","impact":"minor","components":["web"],"started_at":"2019-10-08T21:00:00Z","scheduled_start":"2019-10-08T21:00:00Z","scheduled_end":"2019-10-09T00:00:00Z","message":{"en":"Planned.","nb":"Planlagt."}}}`

// TestOpenAPINamesEveryField: the document served at /api/v1/openapi.json
// is JSON, OpenAPI 3.1, and its schemas name exactly the fields a real
// /api/v1/status writes (an open incident with a promise, a resolved one
// and planned maintenance between them use every field).
func TestOpenAPINamesEveryField(t *testing.T) {
	f := newFixture(t)
	f.publish(t, openedInc)
	f.publish(t, plannedWork)
	f.publish(t, apiInc)
	f.publish(t, `{"id":"a2","type":"incident.resolved","time":"2019-09-18T10:00:00Z","incident":{"id":"api-slow","title":{"en":"Slow API"},"status":"resolved","impact":"none","components":["api"],"started_at":"2019-09-18T08:45:00Z","message":{"en":"Fast again."}}}`)

	res, doc := f.get(t, http.MethodGet, "/api/v1/openapi.json")
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("openapi.json: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	var spec map[string]any
	if err := json.Unmarshal([]byte(doc), &spec); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	if v, _ := spec["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		t.Errorf("openapi %q, want 3.1.x", v)
	}
	paths, _ := spec["paths"].(map[string]any)
	for _, p := range []string{"/api/v1/status", "/feed.atom", "/api/v1/openapi.json"} {
		if paths[p] == nil {
			t.Errorf("openapi.json does not describe %s", p)
		}
	}
	resolve := func(s map[string]any) map[string]any {
		for range 10 {
			ref, ok := s["$ref"].(string)
			if !ok {
				break
			}
			node := any(spec)
			for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
				m, _ := node.(map[string]any)
				node = m[part]
			}
			next, ok := node.(map[string]any)
			if !ok {
				t.Fatalf("openapi.json: $ref %s resolves to nothing", ref)
			}
			s = next
		}
		return s
	}
	status := resolve(map[string]any{"$ref": "#/components/schemas/Status"})

	_, js := f.get(t, http.MethodGet, "/api/v1/status")
	var body any
	if err := json.Unmarshal([]byte(js), &body); err != nil {
		t.Fatal(err)
	}
	// Walk the real response beside the schema: every key must be named
	// there, with the type written; every property named must occur.
	used := map[string]map[string]bool{} // where in the response → properties seen
	var walk func(at string, v any, s map[string]any)
	walk = func(at string, v any, s map[string]any) {
		s = resolve(s)
		switch v := v.(type) {
		case map[string]any:
			if typ, _ := s["type"].(string); typ != "object" {
				t.Errorf("%s: an object, the schema says %q", at, typ)
			}
			props, _ := s["properties"].(map[string]any)
			extra, _ := s["additionalProperties"].(map[string]any)
			for k, sub := range v {
				if p, ok := props[k].(map[string]any); ok {
					if used[at] == nil {
						used[at] = map[string]bool{}
					}
					used[at][k] = true
					walk(at+"."+k, sub, p)
				} else if extra != nil {
					walk(at+"."+k, sub, extra)
				} else {
					t.Errorf("%s.%s is in the response but not in openapi.json", at, k)
				}
			}
			reqs, _ := s["required"].([]any)
			for _, req := range reqs {
				if _, ok := v[req.(string)]; !ok {
					t.Errorf("%s: required %s missing from the response", at, req)
				}
			}
		case []any:
			items, _ := s["items"].(map[string]any)
			for _, it := range v {
				walk(at+"[]", it, items)
			}
		case string:
			if typ, _ := s["type"].(string); typ != "string" {
				t.Errorf("%s: a string, the schema says %q", at, typ)
			}
			if enum, ok := s["enum"].([]any); ok && !slices.Contains(enum, any(v)) {
				t.Errorf("%s: %q is not in the enum %v", at, v, enum)
			}
		case bool:
			if typ, _ := s["type"].(string); typ != "boolean" {
				t.Errorf("%s: a boolean, the schema says %q", at, typ)
			}
		default:
			t.Errorf("%s: unexpected %T", at, v)
		}
	}
	walk("status", body, status)

	// Every documented property was written by the real response.
	for at, schema := range map[string]string{"status": "Status", "status.open[]": "Incident"} {
		s := resolve(map[string]any{"$ref": "#/components/schemas/" + schema})
		seen := map[string]bool{}
		for k := range used[at] {
			seen[k] = true
		}
		if at == "status.open[]" {
			for k := range used["status.recent[]"] {
				seen[k] = true
			}
		}
		for k := range s["properties"].(map[string]any) {
			if !seen[k] {
				t.Errorf("openapi.json names %s.%s, which /api/v1/status never wrote", schema, k)
			}
		}
	}
}

// TestOpenAPIEnumsAreNotifiers: the enums are the statuses and impacts
// notifier accepts, in its order.
func TestOpenAPIEnumsAreNotifiers(t *testing.T) {
	var spec struct {
		Components struct {
			Schemas struct {
				Impact   struct{ Enum []string }
				Incident struct {
					Properties struct {
						Status struct{ Enum []string }
					}
				}
			}
		}
	}
	if err := json.Unmarshal(openAPI, &spec); err != nil {
		t.Fatal(err)
	}
	var impacts, statuses []string
	for _, i := range notifier.Impacts {
		impacts = append(impacts, string(i))
	}
	for _, s := range slices.Concat(notifier.IncidentStatuses, notifier.MaintenanceStatuses) {
		statuses = append(statuses, string(s))
	}
	if got := spec.Components.Schemas.Impact.Enum; !slices.Equal(got, impacts) {
		t.Errorf("Impact enum %v, want %v", got, impacts)
	}
	if got := spec.Components.Schemas.Incident.Properties.Status.Enum; !slices.Equal(got, statuses) {
		t.Errorf("status enum %v, want %v", got, statuses)
	}
}
