package proxy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/app"
	"github.com/infrapilot/infrapilot/services/internal/platform/endpoint"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/infrapilot/infrapilot/services/internal/platform/pgtest"
	"github.com/infrapilot/infrapilot/services/internal/platform/reqctx"
	"github.com/infrapilot/infrapilot/services/internal/platform/servicetest"
	"github.com/infrapilot/infrapilot/services/proxy"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// harness runs the proxy module inside a real host (servicetest.Start) on
// a real embedded NATS server and a fresh Postgres database, next to a stand-in
// for the tenancy service's agent lookup and scripted stand-in agents.
type harness struct {
	t       *testing.T
	nc      *nats.Conn
	js      jetstream.JetStream
	clock   *servicetest.Clock // moved forward to a retry or renewal time
	tenancy *fakeTenancy
}

func start(t *testing.T, cfg proxy.Config) *harness { return startReplicas(t, cfg, 1) }

// startReplicas runs n replicas of the service (hosts of their own, with
// connections of their own) on one NATS server and one database.
func startReplicas(t *testing.T, cfg proxy.Config, n int) *harness {
	t.Helper()
	srv := natstest.Run(t)
	nc, js := srv.JetStream()
	pgURL := pgtest.URL(t)
	h := &harness{t: t, nc: nc, js: js, clock: &servicetest.Clock{}}
	cfg.Now = h.clock.Now
	if cfg.CertInterval == 0 {
		cfg.CertInterval = 50 * time.Millisecond
	}
	if cfg.ACMEDirectoryURL == "" {
		cfg.ACMEDirectoryURL = "https://acme.test/directory"
	}
	h.tenancy = startFakeTenancy(t, nc)
	for i := range n {
		rnc, rjs := srv.JetStream()
		runHost(t, fmt.Sprintf("t%d", i+1), pgURL, rnc, rjs, cfg)
	}
	return h
}

func runHost(t *testing.T, instance, pgURL string, nc *nats.Conn, js jetstream.JetStream, cfg proxy.Config) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	servicetest.Start(t, app.Config{Instance: instance, Version: "test", PostgresURL: pgURL, Topology: events.DefaultTopology()},
		nc, js, log, proxy.Module(cfg))
}

// who is the caller of a request as the gateway would describe it.
type who struct {
	org  string
	role events.Role
}

func (h *harness) call(w who, op string, req, out any) *events.Error {
	h.t.Helper()
	from := reqctx.Info{OrgID: w.org, Role: string(w.role), Actor: events.Actor{Kind: events.ActorUser, ID: "u-" + w.org}, RequestID: "test"}
	return servicetest.Call(h.t, h.nc, events.ServiceEndpoint("proxy", op), from, req, out)
}

// must is call that fails the test on an error.
func (h *harness) must(w who, op string, req, out any) {
	h.t.Helper()
	servicetest.WantOK(h.t, op, h.call(w, op, req, out))
}

// fails asserts that op fails with code (and a message containing msg).
func (h *harness) fails(w who, op string, req any, code events.Code, msg string) *events.Error {
	h.t.Helper()
	return servicetest.WantError(h.t, op, h.call(w, op, req, nil), code, msg)
}

// hasField asserts that e lists a field error for field.
var hasField = servicetest.HasField

// org makes a new org with an operator calling, and one stand-in agent.
func (h *harness) org() (who, *fakeAgent) {
	h.t.Helper()
	w := who{org: newID(), role: events.RoleOperator}
	return w, h.agent(w.org)
}

func newID() string {
	id, err := uuid.NewV7()
	if err != nil {
		panic(err)
	}
	return id.String()
}

// desired reads the agent's desired state from KV (nil when none).
func (h *harness) desired(org, agent string) *events.NginxDesired {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := h.js.KeyValue(ctx, events.BucketAgentDesired)
	if err != nil {
		h.t.Fatal(err)
	}
	e, err := kv.Get(ctx, events.AgentDesiredKey(org, agent))
	if err != nil {
		if err == jetstream.ErrKeyNotFound {
			return nil
		}
		h.t.Fatal(err)
	}
	var d events.NginxDesired
	if err := json.Unmarshal(e.Value(), &d); err != nil {
		h.t.Fatal(err)
	}
	return &d
}

// fileOf returns the file of hostID in d ("" and false when absent).
func fileOf(d *events.NginxDesired, hostID string) (events.NginxFile, bool) {
	for _, f := range d.Files {
		if f.HostID == hostID {
			return f, true
		}
	}
	return events.NginxFile{}, false
}

func hasPath(d *events.NginxDesired, path string) bool {
	for _, f := range d.Files {
		if f.Path == path {
			return true
		}
	}
	return false
}

// checkFor polls fn until it returns nil (10 s at most).
func checkFor(t *testing.T, fn func() error) {
	t.Helper()
	natstest.CheckFor(t, 10*time.Second, 25*time.Millisecond, fn)
}

// host reads a host through the API.
func (h *harness) host(w who, agent, id string) events.ProxyHost {
	h.t.Helper()
	var out events.ProxyHost
	h.must(w, events.OpProxyHostGet, events.ProxyHostRef{AgentID: agent, HostID: id}, &out)
	return out
}

// fakeTenancy is a STAND-IN for the tenancy service: a micro responder on
// svc.tenancy.agent_get answering from an in-memory table of agents per
// org, with the contract of events/api_fleet.go (not_found for an agent of
// another org). It is not the tenancy service and tests nothing about it.
type fakeTenancy struct {
	mu     sync.Mutex
	agents map[string]string // agent -> org
	calls  int
}

func startFakeTenancy(t *testing.T, nc *nats.Conn) *fakeTenancy {
	t.Helper()
	f := &fakeTenancy{agents: map[string]string{}}
	servicetest.StandIn(t, nc, "tenancy", func(srv *endpoint.Server) {
		endpoint.Handle(srv, events.OpTenancyGetAgent, func(ctx context.Context, req events.IDRequest) (events.Agent, error) {
			info := reqctx.From(ctx)
			if !events.Allowed(events.Role(info.Role), events.PermAgentsRead) {
				return events.Agent{}, events.Errorf(events.CodeForbidden, "role %q may not read agents", info.Role)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			f.calls++
			if org, ok := f.agents[req.ID]; !ok || org != info.OrgID {
				return events.Agent{}, events.NotFound("agent not found")
			}
			return events.Agent{ID: req.ID, OrgID: info.OrgID, Status: events.AgentOnline}, nil
		})
	})
	return f
}

func (f *fakeTenancy) add(org, agent string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.agents[agent] = org
}
