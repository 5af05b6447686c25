package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/infrapilot/infrapilot/gateway"
	"github.com/infrapilot/infrapilot/gateway/internal/httpapi"
	"github.com/infrapilot/infrapilot/gateway/internal/natstest"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// harness is one gateway served on a random loopback port against its own
// embedded NATS server.
type harness struct {
	t    *testing.T
	nc   *nats.Conn
	gw   *gateway.Gateway
	base string
	logs *syncBuffer
	stop func() error // cancels Run and returns its error
	// stopChecked is set by a test that checks Run's error itself.
	stopChecked bool
}

// newHarness builds and runs a gateway. routes, when not nil, registers
// test routes on the /api/v1 router before Run, as route packages will.
func newHarness(t *testing.T, cfg gateway.Config, routes func(nc *nats.Conn, api chi.Router)) *harness {
	t.Helper()
	nc := natstest.Connect(t, natstest.Run(t))
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Addr = "127.0.0.1:0"
	gw, err := gateway.New(cfg, gateway.Deps{NC: nc, Log: log, Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if routes != nil {
		routes(nc, gw.API())
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := gw.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				runErr = errors.New("Run did not return")
			}
		})
		return runErr
	}
	h := &harness{t: t, nc: nc, gw: gw, base: "http://" + gw.Addr(), logs: logs, stop: stop}
	t.Cleanup(func() {
		if err := stop(); err != nil && !h.stopChecked {
			t.Errorf("Run: %v", err)
		}
	})
	return h
}

var client = &http.Client{Timeout: 20 * time.Second}

// do sends a request and returns the response with its body read.
func (h *harness) do(method, path string, body io.Reader, header http.Header) (*http.Response, []byte) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.base+path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp, data
}

func (h *harness) get(path string) (*http.Response, []byte) {
	h.t.Helper()
	return h.do(http.MethodGet, path, nil, nil)
}

// problemBody is a problem document with the /readyz extension.
type problemBody struct {
	httpapi.Problem
	Checks map[string]string `json:"checks"`
}

// problem asserts that resp is an application/problem+json answer with
// status and returns it.
func problem(t *testing.T, resp *http.Response, body []byte, status int) problemBody {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != httpapi.ProblemContentType {
		t.Fatalf("content type %q; body %s", ct, body)
	}
	var p problemBody
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("problem body %s: %v", body, err)
	}
	if p.Status != status || p.Title != http.StatusText(status) || !strings.HasPrefix(p.Type, "urn:infrapilot:problem:") {
		t.Fatalf("problem %+v", p)
	}
	if p.RequestID == "" || p.RequestID != resp.Header.Get(gateway.HeaderRequestID) {
		t.Fatalf("problem request id %q, header %q", p.RequestID, resp.Header.Get(gateway.HeaderRequestID))
	}
	return p
}

// checkFor polls fn until it returns nil; see natstest.CheckFor.
func checkFor(t *testing.T, fn func() error) {
	t.Helper()
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, fn)
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines decodes every log line, failing the test on one that is not JSON.
func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// accessLine returns the access log line of the request with id, if any.
func (b *syncBuffer) accessLine(t *testing.T, id string) (map[string]any, error) {
	t.Helper()
	for _, m := range b.lines(t) {
		if m["msg"] == "http request" && m["request_id"] == id {
			return m, nil
		}
	}
	return nil, fmt.Errorf("no access log line for request %s", id)
}
