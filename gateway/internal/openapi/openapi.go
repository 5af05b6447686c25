// Package openapi serves the OpenAPI document of the gateway's REST API.
// The document grows with the routes; keep docs/ in the repository root in
// step with it (go:embed cannot reach outside the module).
package openapi

import (
	_ "embed"
	"net/http"
)

//go:embed openapi.json
var document []byte

// Handler serves the embedded document.
func Handler(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(document)
}
