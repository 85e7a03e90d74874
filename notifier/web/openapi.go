package web

import (
	_ "embed"
	"net/http"
)

// openAPI describes the public API (GET /api/v1/status, the feeds) in
// OpenAPI 3.1; docs/api.md says the same in prose. TestOpenAPINamesEveryField
// keeps it in step with what statusJSON writes.
//
//go:embed openapi.json
var openAPI []byte

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(openAPI)
}
