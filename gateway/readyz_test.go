package gateway_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway"
	"github.com/infrapilot/infrapilot/gateway/internal/natstest"
	"github.com/nats-io/nats.go/micro"
)

type readyBody struct {
	Status  string            `json:"status"`
	Version string            `json:"version"`
	Checks  map[string]string `json:"checks"`
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	h := newHarness(t, gateway.Config{RequiredServices: []string{"auth"}, Version: "test"}, nil)

	// Required service missing: 503 naming it.
	resp, body := h.get("/readyz")
	p := problem(t, resp, body, http.StatusServiceUnavailable)
	if p.Code != events.CodeUnavailable || !strings.Contains(p.Detail, "service:auth") ||
		p.Checks["service:auth"] != "not running" || p.Checks["nats"] != "ok" {
		t.Fatalf("not-ready body %s", body)
	}

	// Service up and healthy: 200 with every check, its own included.
	auth := natstest.Service(t, h.nc, "auth", map[string]micro.HandlerFunc{
		events.HealthOperation: natstest.Health("auth", events.HealthOK, map[string]string{"postgres": "ok"}),
	})
	checkFor(t, func() error {
		resp, body := h.get("/readyz")
		if resp.StatusCode != http.StatusOK {
			return errors.New(string(body))
		}
		var rb readyBody
		if err := json.Unmarshal(body, &rb); err != nil {
			return err
		}
		want := map[string]string{"nats": "ok", "service:auth": "ok", "service:auth/postgres": "ok"}
		for k, v := range want {
			if rb.Checks[k] != v {
				return errors.New("checks " + string(body))
			}
		}
		if rb.Status != "ok" || rb.Version != "test" {
			return errors.New("body " + string(body))
		}
		return nil
	})

	// Service degraded (its database is down): 503 naming it.
	if err := auth.Stop(); err != nil {
		t.Fatal(err)
	}
	natstest.Service(t, h.nc, "auth", map[string]micro.HandlerFunc{
		events.HealthOperation: natstest.Health("auth", events.HealthDegraded, map[string]string{"postgres": "unreachable"}),
	})
	checkFor(t, func() error {
		resp, body := h.get("/readyz")
		if resp.StatusCode != http.StatusServiceUnavailable {
			return errors.New(string(body))
		}
		p := problem(t, resp, body, http.StatusServiceUnavailable)
		if p.Checks["service:auth"] != "degraded" || p.Checks["service:auth/postgres"] != "unreachable" ||
			p.Detail != "not ready: service:auth" {
			return errors.New(string(body))
		}
		return nil
	})

	// NATS gone: 503 naming it.
	h.nc.Close()
	resp, body = h.get("/readyz")
	p = problem(t, resp, body, http.StatusServiceUnavailable)
	if p.Checks["nats"] != "unavailable" || !strings.Contains(p.Detail, "nats") {
		t.Fatalf("body %s", body)
	}
}

// TestReadyzChecksConcurrently makes each service's health handler wait
// until both services have been asked: asked one after the other, the
// first would time out.
func TestReadyzChecksConcurrently(t *testing.T) {
	t.Parallel()
	h := newHarness(t, gateway.Config{RequiredServices: []string{"auth", "tenancy"}, ReadyTimeout: 5 * time.Second}, nil)
	arrived := make(chan struct{}, 2)
	both := make(chan struct{})
	go func() {
		<-arrived
		<-arrived
		close(both)
	}()
	for _, name := range []string{"auth", "tenancy"} {
		ok := natstest.Health(name, events.HealthOK, nil)
		natstest.Service(t, h.nc, name, map[string]micro.HandlerFunc{
			events.HealthOperation: func(req micro.Request) {
				arrived <- struct{}{}
				select {
				case <-both:
					ok(req)
				case <-time.After(10 * time.Second):
				}
			},
		})
	}
	resp, body := h.get("/readyz")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}
