package gateway_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway"
	"github.com/infrapilot/infrapilot/gateway/internal/natstest"
	"github.com/nats-io/nats.go/micro"
)

// TestErrorMapping drives every events.Code from a service's micro error
// through Call and the problem writer to its HTTP status.
func TestErrorMapping(t *testing.T) {
	t.Parallel()
	h := newHarness(t, gateway.Config{}, testRoutes)
	want := map[events.Code]int{
		events.CodeInvalid:      400,
		events.CodeUnauthorized: 401,
		events.CodeForbidden:    403,
		events.CodeNotFound:     404,
		events.CodeConflict:     409,
		events.CodeRateLimited:  429,
		events.CodeUnavailable:  503,
		events.CodeInternal:     500,
	}
	ops := map[string]micro.HandlerFunc{}
	for code := range want {
		ops[string(code)] = func(req micro.Request) {
			e := &events.Error{Code: code, Message: "service says " + string(code)}
			if code == events.CodeInvalid {
				e.Fields = []events.FieldError{{Field: "name", Message: "is required"}}
			}
			body, _ := json.Marshal(e)
			_ = req.Error(string(code), e.Message, body)
		}
	}
	natstest.Service(t, h.nc, "errs", ops)
	for code, status := range want {
		t.Run(string(code), func(t *testing.T) {
			resp, body := h.get("/api/v1/call/errs/" + string(code))
			p := problem(t, resp, body, status)
			if p.Code != code || p.Type != "urn:infrapilot:problem:"+string(code) || p.Instance != "/api/v1/call/errs/"+string(code) {
				t.Fatalf("problem %s", body)
			}
			switch code {
			case events.CodeInternal:
				if p.Detail != "internal error" {
					t.Fatalf("internal detail leaked: %s", body)
				}
			case events.CodeInvalid:
				if len(p.Errors) != 1 || p.Errors[0] != (events.FieldError{Field: "name", Message: "is required"}) {
					t.Fatalf("field errors %s", body)
				}
				fallthrough
			default:
				if p.Detail != "service says "+string(code) {
					t.Fatalf("detail %s", body)
				}
			}
		})
	}
	// The internal error was logged, with the request id and its cause.
	resp, body := h.get("/api/v1/call/errs/internal")
	problem(t, resp, body, 500)
	line, err := h.logs.accessLine(t, resp.Header.Get(gateway.HeaderRequestID))
	if err != nil {
		t.Fatal(err)
	}
	if line["level"] != "ERROR" || !strings.Contains(line["err"].(string), "service says internal") {
		t.Fatalf("access line %v", line)
	}
}

func TestNoResponders(t *testing.T) {
	t.Parallel()
	h := newHarness(t, gateway.Config{}, testRoutes)
	resp, body := h.get("/api/v1/call/ghost/op")
	if p := problem(t, resp, body, 503); p.Detail != "service ghost is not running" {
		t.Fatalf("problem %s", body)
	}
}

// TestDeadlinePropagation: a service slower than the request timeout makes
// the gateway answer 504 in time, and the service was told the deadline.
func TestDeadlinePropagation(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	h := newHarness(t, gateway.Config{RequestTimeout: timeout}, testRoutes)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	deadlines := make(chan string, 1)
	natstest.Service(t, h.nc, "slow", map[string]micro.HandlerFunc{
		"op": func(req micro.Request) {
			deadlines <- req.Headers().Get(events.HeaderDeadline)
			<-release
			_ = req.Respond([]byte(`{}`))
		},
	})
	start := time.Now()
	resp, body := h.get("/api/v1/call/slow/op")
	end := time.Now()
	p := problem(t, resp, body, http.StatusGatewayTimeout)
	if p.Code != events.CodeUnavailable || p.Detail != "service slow did not answer in time" {
		t.Fatalf("problem %s", body)
	}
	dl, err := time.Parse(time.RFC3339Nano, <-deadlines)
	if err != nil {
		t.Fatal(err)
	}
	if dl.Before(start.Add(timeout)) || dl.After(end.Add(timeout)) {
		t.Fatalf("deadline %s not within [%s, %s]", dl, start.Add(timeout), end.Add(timeout))
	}
	if end.Sub(start) > timeout+5*time.Second {
		t.Fatalf("answer took %s", end.Sub(start))
	}
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, gateway.Config{BodyLimit: 64}, testRoutes)
	big := `{"name":"` + strings.Repeat("x", 100) + `"}`
	jsonHeader := http.Header{"Content-Type": {"application/json"}}

	t.Run("declared length", func(t *testing.T) {
		resp, body := h.do(http.MethodPost, "/api/v1/decode", strings.NewReader(big), jsonHeader)
		if p := problem(t, resp, body, http.StatusRequestEntityTooLarge); p.Type != "urn:infrapilot:problem:body_too_large" {
			t.Fatalf("problem %s", body)
		}
	})
	t.Run("chunked", func(t *testing.T) {
		// io.MultiReader hides the length, so the client streams it chunked
		// and only the reader cap can catch it.
		resp, body := h.do(http.MethodPost, "/api/v1/decode", io.MultiReader(strings.NewReader(big)), jsonHeader)
		problem(t, resp, body, http.StatusRequestEntityTooLarge)
	})
	t.Run("within limit", func(t *testing.T) {
		resp, body := h.do(http.MethodPost, "/api/v1/decode", strings.NewReader(`{"name":"ok"}`), jsonHeader)
		if resp.StatusCode != http.StatusCreated || strings.TrimSpace(string(body)) != `{"name":"ok"}` {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})
	t.Run("unknown field", func(t *testing.T) {
		resp, body := h.do(http.MethodPost, "/api/v1/decode", strings.NewReader(`{"nme":"typo"}`), jsonHeader)
		if p := problem(t, resp, body, http.StatusBadRequest); len(p.Errors) != 1 || p.Errors[0].Field != "nme" {
			t.Fatalf("problem %s", body)
		}
	})
}

func TestNotFoundAndMethodNotAllowed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, gateway.Config{}, testRoutes)
	for _, path := range []string{"/nope", "/api/v1/nope", "/api/v1"} {
		resp, body := h.get(path)
		if p := problem(t, resp, body, http.StatusNotFound); p.Code != events.CodeNotFound {
			t.Fatalf("%s: %s", path, body)
		}
	}
	resp, body := h.do(http.MethodPost, "/healthz", nil, nil)
	problem(t, resp, body, http.StatusMethodNotAllowed)
	if allow := resp.Header.Get("Allow"); allow != "GET" {
		t.Fatalf("Allow %q", allow)
	}
	resp, body = h.do(http.MethodDelete, "/api/v1/decode", nil, nil)
	problem(t, resp, body, http.StatusMethodNotAllowed)
	if allow := resp.Header.Get("Allow"); allow != "POST" {
		t.Fatalf("Allow %q", allow)
	}
}
