package gateway_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway"
	"github.com/infrapilot/infrapilot/gateway/internal/natstest"
	"github.com/infrapilot/infrapilot/gateway/internal/reqctx"
	"github.com/nats-io/nats.go/micro"
)

func TestRequestID(t *testing.T) {
	t.Parallel()
	h := newHarness(t, gateway.Config{}, testRoutes)
	seen := make(chan string, 1)
	natstest.Service(t, h.nc, "echo", map[string]micro.HandlerFunc{
		"op": func(req micro.Request) {
			seen <- req.Headers().Get(events.HeaderRequestID)
			_ = req.Respond([]byte(`{}`))
		},
	})

	// A sane incoming id is kept, echoed, and sent on to the service.
	resp, _ := h.do(http.MethodGet, "/api/v1/call/echo/op", nil, http.Header{gateway.HeaderRequestID: {"edge-42.a:b"}})
	if got := resp.Header.Get(gateway.HeaderRequestID); got != "edge-42.a:b" {
		t.Fatalf("echoed %q", got)
	}
	if got := <-seen; got != "edge-42.a:b" {
		t.Fatalf("service saw %q", got)
	}
	// An insane one is replaced by a generated id; so is a missing one.
	for _, bad := range []string{"has space", strings.Repeat("a", 129), "a\u00e9", ""} {
		hdr := http.Header{}
		if bad != "" {
			hdr.Set(gateway.HeaderRequestID, bad)
		}
		resp, _ := h.do(http.MethodGet, "/healthz", nil, hdr)
		got := resp.Header.Get(gateway.HeaderRequestID)
		if got == "" || got == bad || len(got) != 36 {
			t.Fatalf("incoming %q: echoed %q", bad, got)
		}
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	h := newHarness(t, gateway.Config{Version: "test"}, testRoutes)
	h.get("/healthz")
	h.get("/healthz")
	h.get("/no/such/path")
	h.get("/api/v1/call/ghost/op")
	_, body := h.get("/metrics")
	for _, want := range []string{
		`infrapilot_gateway_http_requests_total{method="GET",route="/healthz",status="200"} 2`,
		`infrapilot_gateway_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`infrapilot_gateway_http_requests_total{method="GET",route="/api/v1/call/{service}/{op}",status="503"} 1`,
		`infrapilot_gateway_http_request_duration_seconds_count{method="GET",route="/healthz"} 2`,
		`infrapilot_gateway_build_info{version="test"} 1`,
		`go_goroutines `,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestAccessLog(t *testing.T) {
	t.Parallel()
	h := newHarness(t, gateway.Config{}, testRoutes)
	const secret = "sekret-bearer-value"
	resp, _ := h.do(http.MethodGet, "/api/v1/whoami?token=sekret-query", nil, http.Header{
		"Authorization": {"Bearer " + secret},
		"Cookie":        {"session=sekret-cookie"},
	})
	id := resp.Header.Get(gateway.HeaderRequestID)
	var line map[string]any
	checkFor(t, func() (err error) {
		line, err = h.logs.accessLine(t, id)
		return err
	})
	if line["method"] != "GET" || line["route"] != "/api/v1/whoami" || line["status"] != float64(200) ||
		line["bytes"].(float64) <= 0 || line["client_ip"] != "127.0.0.1" || line["level"] != "INFO" {
		t.Fatalf("access line %v", line)
	}
	if _, ok := line["duration_ms"].(float64); !ok {
		t.Fatalf("no duration: %v", line)
	}
	if strings.Contains(h.logs.String(), "sekret") {
		t.Fatalf("log holds a secret:\n%s", h.logs.String())
	}
	h.logs.lines(t) // every line is JSON
}

func TestPanicIsProblem(t *testing.T) {
	t.Parallel()
	h := newHarness(t, gateway.Config{}, testRoutes)
	resp, body := h.get("/api/v1/panic")
	if p := problem(t, resp, body, 500); p.Detail != "internal error" || strings.Contains(string(body), "kaboom") {
		t.Fatalf("problem %s", body)
	}
	line, err := h.logs.accessLine(t, resp.Header.Get(gateway.HeaderRequestID))
	if err != nil {
		t.Fatal(err)
	}
	if line["status"] != float64(500) || line["level"] != "ERROR" {
		t.Fatalf("access line %v", line)
	}
	if !strings.Contains(h.logs.String(), `"msg":"handler panic"`) {
		t.Fatal("panic not logged")
	}
	// The server survived.
	if resp, _ := h.get("/healthz"); resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
}

func TestCORS(t *testing.T) {
	t.Parallel()
	preflight := http.Header{"Origin": {"https://app.example.com"}, "Access-Control-Request-Method": {"POST"}}

	t.Run("listed origin", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, gateway.Config{CORSOrigins: []string{"https://app.example.com"}}, testRoutes)
		resp, _ := h.do(http.MethodOptions, "/api/v1/decode", nil, preflight)
		if resp.StatusCode != http.StatusNoContent ||
			resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
			resp.Header.Get("Access-Control-Allow-Credentials") != "true" ||
			!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
			t.Fatalf("preflight %d %v", resp.StatusCode, resp.Header)
		}
		resp, _ = h.do(http.MethodGet, "/healthz", nil, http.Header{"Origin": {"https://app.example.com"}})
		if resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
			resp.Header.Get("Access-Control-Expose-Headers") != gateway.HeaderRequestID+", Retry-After, WWW-Authenticate" {
			t.Fatalf("simple request headers %v", resp.Header)
		}
		resp, body := h.do(http.MethodOptions, "/api/v1/decode", nil,
			http.Header{"Origin": {"https://evil.example"}, "Access-Control-Request-Method": {"POST"}})
		problem(t, resp, body, http.StatusForbidden)
		if resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatal("disallowed origin got CORS headers")
		}
	})
	t.Run("wildcard never with credentials", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, gateway.Config{CORSOrigins: []string{"*"}}, testRoutes)
		resp, _ := h.do(http.MethodOptions, "/api/v1/decode", nil, preflight)
		if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
			resp.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Fatalf("preflight %d %v", resp.StatusCode, resp.Header)
		}
	})
	t.Run("off by default", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, gateway.Config{}, testRoutes)
		resp, _ := h.do(http.MethodGet, "/healthz", nil, http.Header{"Origin": {"https://app.example.com"}})
		if resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatal("CORS answered while off")
		}
	})
}

func TestClientIP(t *testing.T) {
	t.Parallel()
	whoami := func(h *harness, xff string) string {
		t.Helper()
		hdr := http.Header{}
		if xff != "" {
			hdr.Set("X-Forwarded-For", xff)
		}
		_, body := h.do(http.MethodGet, "/api/v1/whoami", nil, hdr)
		var info reqctx.RequestInfo
		if err := json.Unmarshal(body, &info); err != nil {
			t.Fatal(err)
		}
		return info.ClientIP
	}
	untrusting := newHarness(t, gateway.Config{}, testRoutes)
	if got := whoami(untrusting, "198.51.100.7"); got != "127.0.0.1" {
		t.Fatalf("X-Forwarded-For believed without a trusted proxy: %s", got)
	}
	trusting := newHarness(t, gateway.Config{TrustedProxies: []string{"127.0.0.1", "10.0.0.0/8"}}, testRoutes)
	for xff, want := range map[string]string{
		"":                                     "127.0.0.1",
		"198.51.100.7":                         "198.51.100.7",
		"198.51.100.7, 10.1.2.3":               "198.51.100.7",
		"6.6.6.6, 198.51.100.7, 10.1.2.3":      "198.51.100.7", // the left entry is the client's own claim
		"garbage, 10.1.2.3":                    "10.1.2.3",
		"2001:db8::1":                          "2001:db8::1",
		"10.9.9.9, 10.1.2.3":                   "10.9.9.9",
		"198.51.100.7,10.1.2.3 , 10.200.0.1  ": "198.51.100.7",
	} {
		if got := whoami(trusting, xff); got != want {
			t.Errorf("X-Forwarded-For %q: client %s, want %s", xff, got, want)
		}
	}
}
