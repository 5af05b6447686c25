package gateway_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/infrapilot/infrapilot/gateway"
	"github.com/infrapilot/infrapilot/gateway/internal/httpapi"
	"github.com/infrapilot/infrapilot/gateway/internal/natstest"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// TestGracefulShutdown: once Run's context ends, new connections are
// refused while an in-flight request still completes, and Run returns
// only after it did.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	started, release := make(chan struct{}), make(chan struct{})
	h := newHarness(t, gateway.Config{}, func(_ *nats.Conn, api chi.Router) {
		api.Get("/slow", func(w http.ResponseWriter, r *http.Request) {
			close(started)
			<-release
			httpapi.JSON(w, r, http.StatusOK, map[string]string{"done": "yes"})
		})
	})
	inflight := make(chan int, 1)
	go func() {
		resp, err := client.Get(h.base + "/api/v1/slow")
		if err != nil {
			inflight <- 0
			return
		}
		resp.Body.Close()
		inflight <- resp.StatusCode
	}()
	<-started
	stopped := make(chan error, 1)
	go func() { stopped <- h.stop() }()
	checkFor(t, func() error {
		conn, err := net.Dial("tcp", h.gw.Addr())
		if err == nil {
			conn.Close()
			return errors.New("still accepting")
		}
		return nil
	})
	select {
	case err := <-stopped:
		t.Fatalf("Run returned before the in-flight request finished: %v", err)
	default:
	}
	close(release)
	if code := <-inflight; code != http.StatusOK {
		t.Fatalf("in-flight request: %d", code)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestShutdownIsBounded: a request that outlives ShutdownTimeout is cut
// off and Run reports it.
func TestShutdownIsBounded(t *testing.T) {
	t.Parallel()
	started, release := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(release) })
	h := newHarness(t, gateway.Config{ShutdownTimeout: 200 * time.Millisecond}, func(_ *nats.Conn, api chi.Router) {
		api.Get("/stuck", func(http.ResponseWriter, *http.Request) {
			close(started)
			<-release
		})
	})
	h.stopChecked = true
	go func() {
		if resp, err := client.Get(h.base + "/api/v1/stuck"); err == nil {
			resp.Body.Close()
		}
	}()
	<-started
	begin := time.Now()
	err := h.stop()
	if err == nil || !strings.Contains(err.Error(), "graceful shutdown") {
		t.Fatalf("Run: %v", err)
	}
	if took := time.Since(begin); took > 10*time.Second {
		t.Fatalf("shutdown took %s", took)
	}
}

func TestNewRejects(t *testing.T) {
	t.Parallel()
	nc := natstest.Connect(t, natstest.Run(t))
	if _, err := gateway.New(gateway.Config{}, gateway.Deps{}); err == nil {
		t.Error("New without NATS succeeded")
	}
	if _, err := gateway.New(gateway.Config{RequiredServices: []string{"a.b"}}, gateway.Deps{NC: nc}); err == nil {
		t.Error("New with an invalid config succeeded")
	}
}

// TestSharedRegistry: a second gateway on the same registry (a restart
// inside one process) reuses the metrics instead of failing, and keeps a
// runtime collector the caller registered.
func TestSharedRegistry(t *testing.T) {
	t.Parallel()
	nc := natstest.Connect(t, natstest.Run(t))
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	for range 2 {
		if _, err := gateway.New(gateway.Config{}, gateway.Deps{NC: nc, Registry: reg}); err != nil {
			t.Fatal(err)
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
	}
	for _, want := range []string{"go_goroutines", "process_start_time_seconds", "infrapilot_gateway_build_info"} {
		if !names[want] {
			t.Errorf("registry lacks %s", want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		cfg gateway.Config
		ok  bool
	}{
		"zero":                {gateway.Config{}, true},
		"full":                {gateway.Config{Addr: ":8080", RequiredServices: []string{"auth", "proxy"}, CORSOrigins: []string{"https://a.example", "http://localhost:5173"}, TrustedProxies: []string{"10.0.0.0/8", "::1"}}, true},
		"wildcard":            {gateway.Config{CORSOrigins: []string{"*"}}, true},
		"bad addr":            {gateway.Config{Addr: "8080"}, false},
		"negative limit":      {gateway.Config{BodyLimit: -1}, false},
		"negative timeout":    {gateway.Config{RequestTimeout: -time.Second}, false},
		"service token":       {gateway.Config{RequiredServices: []string{"auth.*"}}, false},
		"duplicate service":   {gateway.Config{RequiredServices: []string{"auth", "auth"}}, false},
		"wildcard and origin": {gateway.Config{CORSOrigins: []string{"*", "https://a.example"}}, false},
		"origin with path":    {gateway.Config{CORSOrigins: []string{"https://a.example/app"}}, false},
		"origin no scheme":    {gateway.Config{CORSOrigins: []string{"a.example"}}, false},
		"bad proxy":           {gateway.Config{TrustedProxies: []string{"10.0.0.0/33"}}, false},
		"auth settings":       {gateway.Config{AuthRateLimit: 100, JWKSRefresh: 30 * time.Second, APIKeyCacheTTL: time.Second, MembershipCacheTTL: time.Second}, true},
		"auth limits off":     {gateway.Config{AuthRateLimit: -1, APIKeyCacheTTL: -1, MembershipCacheTTL: -1}, true},
		"api key cache long":  {gateway.Config{APIKeyCacheTTL: 6 * time.Second}, false},
		"member cache long":   {gateway.Config{MembershipCacheTTL: 3 * time.Second}, false},
		"negative jwks":       {gateway.Config{JWKSRefresh: -time.Second}, false},
	} {
		if err := c.cfg.Validate(); (err == nil) != c.ok {
			t.Errorf("%s: Validate() = %v", name, err)
		}
	}
}

func TestRunTwice(t *testing.T) {
	t.Parallel()
	h := newHarness(t, gateway.Config{}, nil)
	checkFor(t, func() error { // an answer proves the harness's Run is serving
		resp, err := client.Get(h.base + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err
	})
	if err := h.gw.Run(context.Background()); err == nil {
		t.Fatal("second Run succeeded")
	}
}
