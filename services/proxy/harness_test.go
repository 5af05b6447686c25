package proxy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/app"
	"github.com/infrapilot/infrapilot/services/internal/platform/endpoint"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/infrapilot/infrapilot/services/internal/platform/natsx"
	"github.com/infrapilot/infrapilot/services/internal/platform/pgtest"
	"github.com/infrapilot/infrapilot/services/internal/platform/reqctx"
	"github.com/infrapilot/infrapilot/services/proxy"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// harness runs the proxy module inside a real host (app.New) on a real
// embedded NATS server and a fresh Postgres database, next to a stand-in
// for the tenancy service's agent lookup and scripted stand-in agents.
type harness struct {
	t       *testing.T
	nc      *nats.Conn
	js      jetstream.JetStream
	clock   *clock
	tenancy *fakeTenancy
}

// clock is the service's clock: real time plus an offset a test moves
// forward to a retry or renewal time.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

func start(t *testing.T, cfg proxy.Config) *harness { return startReplicas(t, cfg, 1) }

// startReplicas runs n replicas of the service (hosts of their own, with
// connections of their own) on one NATS server and one database.
func startReplicas(t *testing.T, cfg proxy.Config, n int) *harness {
	t.Helper()
	srv := natstest.Run(t)
	nc := srv.Connect()
	js, err := natsx.JetStream(nc)
	if err != nil {
		t.Fatal(err)
	}
	pgURL := pgtest.URL(t)
	h := &harness{t: t, nc: nc, js: js, clock: &clock{}}
	cfg.Now = h.clock.Now
	if cfg.CertInterval == 0 {
		cfg.CertInterval = 50 * time.Millisecond
	}
	if cfg.ACMEDirectoryURL == "" {
		cfg.ACMEDirectoryURL = "https://acme.test/directory"
	}
	h.tenancy = startFakeTenancy(t, nc)
	for i := range n {
		rnc := srv.Connect()
		rjs, err := natsx.JetStream(rnc)
		if err != nil {
			t.Fatal(err)
		}
		runHost(t, fmt.Sprintf("t%d", i+1), pgURL, rnc, rjs, cfg)
	}
	return h
}

func runHost(t *testing.T, instance, pgURL string, nc *nats.Conn, js jetstream.JetStream, cfg proxy.Config) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	host, err := app.New(app.Config{Instance: instance, Version: "test", PostgresURL: pgURL, Topology: events.DefaultTopology()},
		nc, js, log, prometheus.NewRegistry(), []app.Module{proxy.Module(cfg)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- host.Run(ctx) }()
	select {
	case <-host.Ready():
	case err := <-done:
		t.Fatalf("host failed to start: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("host not ready")
	}
	// The endpoints subscribed on this connection: a round trip makes
	// sure the server has them before the test's connection asks.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("host stopped with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("host did not stop")
		}
		host.Close()
	})
}

// who is the caller of a request as the gateway would describe it.
type who struct {
	org  string
	role events.Role
}

func (h *harness) call(w who, op string, req, out any) *events.Error {
	h.t.Helper()
	msg := nats.NewMsg(events.ServiceEndpoint("proxy", op))
	reqctx.Info{OrgID: w.org, Role: string(w.role), Actor: events.Actor{Kind: events.ActorUser, ID: "u-" + w.org}, RequestID: "test"}.Headers(msg.Header)
	if req != nil {
		b, err := json.Marshal(req)
		if err != nil {
			h.t.Fatal(err)
		}
		msg.Data = b
	}
	reply, err := h.nc.RequestMsg(msg, 30*time.Second)
	if err != nil {
		h.t.Fatalf("%s: %v", op, err)
	}
	return decodeReply(h.t, op, reply, out)
}

func decodeReply(t *testing.T, op string, reply *nats.Msg, out any) *events.Error {
	t.Helper()
	if code := reply.Header.Get(events.HeaderServiceErrorCode); code != "" {
		var e events.Error
		if err := json.Unmarshal(reply.Data, &e); err != nil {
			t.Fatalf("%s: undecodable error %q: %s", op, code, reply.Data)
		}
		e.Code = events.Code(code)
		return &e
	}
	if out != nil {
		if err := json.Unmarshal(reply.Data, out); err != nil {
			t.Fatalf("%s: %v (%s)", op, err, reply.Data)
		}
	}
	return nil
}

// must is call that fails the test on an error.
func (h *harness) must(w who, op string, req, out any) {
	h.t.Helper()
	if e := h.call(w, op, req, out); e != nil {
		h.t.Fatalf("%s: %s: %s %+v", op, e.Code, e.Message, e.Fields)
	}
}

// fails asserts that op fails with code (and a message containing msg).
func (h *harness) fails(w who, op string, req any, code events.Code, msg string) *events.Error {
	h.t.Helper()
	e := h.call(w, op, req, nil)
	if e == nil {
		h.t.Fatalf("%s succeeded, want %s", op, code)
	}
	if e.Code != code || !strings.Contains(e.Message, msg) {
		h.t.Fatalf("%s: got %s %q %+v, want %s containing %q", op, e.Code, e.Message, e.Fields, code, msg)
	}
	return e
}

// hasField asserts that e lists a field error for field.
func hasField(t *testing.T, e *events.Error, field string) {
	t.Helper()
	for _, f := range e.Fields {
		if f.Field == field {
			return
		}
	}
	t.Fatalf("no field error for %q in %+v", field, e.Fields)
}

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
	srv, err := endpoint.New(endpoint.Config{Service: "tenancy", Version: "0.0.0-fake"}, nc, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
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
	ctx, cancel := context.WithCancel(context.Background())
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = srv.Stop()
		cancel()
	})
	return f
}

func (f *fakeTenancy) add(org, agent string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.agents[agent] = org
}
