package gateway_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway"
	"github.com/infrapilot/infrapilot/gateway/internal/httpapi"
	"github.com/infrapilot/infrapilot/gateway/internal/natsreq"
	"github.com/infrapilot/infrapilot/gateway/internal/reqctx"
	"github.com/nats-io/nats.go"
)

// testRoutes stand in for the route packages of later issues: they use the
// same helpers (Decode, Call, JSON, Error) a real handler uses.
func testRoutes(nc *nats.Conn, api chi.Router) {
	api.Get("/call/{service}/{op}", func(w http.ResponseWriter, r *http.Request) {
		subject := events.ServiceEndpoint(chi.URLParam(r, "service"), chi.URLParam(r, "op"))
		out, err := natsreq.Call[struct{}, map[string]any](r.Context(), nc, subject, struct{}{})
		if err != nil {
			httpapi.Error(w, r, err)
			return
		}
		httpapi.JSON(w, r, http.StatusOK, out)
	})
	api.Post("/decode", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Name string `json:"name"`
		}
		if err := httpapi.Decode(r, &in); err != nil {
			httpapi.Error(w, r, err)
			return
		}
		httpapi.JSON(w, r, http.StatusCreated, in)
	})
	api.Get("/whoami", func(w http.ResponseWriter, r *http.Request) {
		info, _ := reqctx.RequestInfoFrom(r.Context())
		httpapi.JSON(w, r, http.StatusOK, info)
	})
	api.Get("/panic", func(http.ResponseWriter, *http.Request) { panic("kaboom") })
}

func TestHealthz(t *testing.T) {
	t.Parallel()
	h := newHarness(t, gateway.Config{}, nil)
	resp, body := h.get("/healthz")
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != `{"status":"ok"}` {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}

func TestOpenAPI(t *testing.T) {
	t.Parallel()
	h := newHarness(t, gateway.Config{}, nil)
	resp, body := h.get("/api/v1/openapi.json")
	var doc map[string]any
	if resp.StatusCode != 200 || json.Unmarshal(body, &doc) != nil || doc["openapi"] != "3.1.0" {
		t.Fatalf("%d %.200s", resp.StatusCode, body)
	}
}
