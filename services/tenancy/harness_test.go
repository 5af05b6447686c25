package tenancy_test

import (
	"context"
	"encoding/json"

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
	"github.com/infrapilot/infrapilot/services/tenancy"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// harness runs the tenancy module inside a real host (app.New) on a real
// embedded NATS server and a fresh Postgres database, next to a stand-in
// for the auth service.
type harness struct {
	t     *testing.T
	nc    *nats.Conn
	pgURL string
	db    *pgxpool.Pool // superuser pool on the test database
	auth  *fakeAuth
	clock *clock
}

// clock is the service's clock: real time plus an offset a test moves
// forward to expire invitations and tokens.
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

func start(t *testing.T, cfg tenancy.Config) *harness {
	t.Helper()
	srv := natstest.Run(t)
	nc := srv.Connect()
	js, err := natsx.JetStream(nc)
	if err != nil {
		t.Fatal(err)
	}
	pgURL := pgtest.URL(t)
	h := &harness{t: t, nc: nc, pgURL: pgURL, clock: &clock{}}
	cfg.Now = h.clock.Now
	h.auth = startFakeAuth(t, nc)

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	host, err := app.New(app.Config{Instance: "t", Version: "test", PostgresURL: pgURL, Topology: events.DefaultTopology()},
		nc, js, log, prometheus.NewRegistry(), []app.Module{tenancy.Module(cfg)})
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
	h.db, err = pgxpool.New(context.Background(), pgURL+"&search_path=tenancy")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.db.Close)
	return h
}

// who is the caller of a request as the gateway would describe it.
type who struct {
	org  string
	user string
	role events.Role
	kind events.ActorKind
}

func (w who) headers() nats.Header {
	h := nats.Header{}
	kind := w.kind
	if kind == "" && w.user != "" {
		kind = events.ActorUser
	}
	reqctx.Info{OrgID: w.org, Role: string(w.role), Actor: events.Actor{Kind: kind, ID: w.user}, RequestID: "test"}.Headers(h)
	return h
}

// call sends a request to svc.tenancy.<op> and decodes the reply into out
// (when not nil); it returns the service's error, if any.
func (h *harness) call(w who, op string, req, out any) *events.Error {
	h.t.Helper()
	msg := nats.NewMsg(events.ServiceEndpoint("tenancy", op))
	msg.Header = w.headers()
	if req != nil {
		b, err := json.Marshal(req)
		if err != nil {
			h.t.Fatal(err)
		}
		msg.Data = b
	}
	reply, err := h.nc.RequestMsg(msg, 20*time.Second)
	if err != nil {
		h.t.Fatalf("%s: %v", op, err)
	}
	if code := reply.Header.Get(events.HeaderServiceErrorCode); code != "" {
		var e events.Error
		if err := json.Unmarshal(reply.Data, &e); err != nil {
			h.t.Fatalf("%s: undecodable error %q: %s", op, code, reply.Data)
		}
		e.Code = events.Code(code)
		return &e
	}
	if out != nil {
		if err := json.Unmarshal(reply.Data, out); err != nil {
			h.t.Fatalf("%s: %v (%s)", op, err, reply.Data)
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

// fails asserts that op fails with code (and, when given, a message
// containing msg) and returns the error.
func (h *harness) fails(w who, op string, req any, code events.Code, msg string) *events.Error {
	h.t.Helper()
	e := h.call(w, op, req, nil)
	if e == nil {
		h.t.Fatalf("%s succeeded, want %s", op, code)
	}
	if e.Code != code || !strings.Contains(e.Message, msg) {
		h.t.Fatalf("%s: got %s %q, want %s containing %q", op, e.Code, e.Message, code, msg)
	}
	return e
}

// signUp creates a user (in the stand-in auth) and an org they own, as the
// auth service's registration does, and returns the owner's identity.
func (h *harness) signUp(email, orgName string) who {
	h.t.Helper()
	u := h.auth.add(email, strings.Split(email, "@")[0])
	var org events.OrgSummary
	h.must(who{}, events.OpTenancyCreateOrg, events.CreateOrgRequest{Name: orgName, OwnerUserID: u.ID}, &org)
	return who{org: org.ID, user: u.ID, role: events.RoleOwner}
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

// fakeAuth is a STAND-IN for the auth service, which is written in
// parallel: a micro responder on svc.auth.* answering the three identity
// operations tenancy calls (users_get, user_find, user_create) from an
// in-memory table, with the contract of events/api_identity.go. It is not
// the auth service and tests nothing about it.
type fakeAuth struct {
	mu      sync.Mutex
	byID    map[string]events.UserSummary
	byEmail map[string]string
}

func startFakeAuth(t *testing.T, nc *nats.Conn) *fakeAuth {
	t.Helper()
	f := &fakeAuth{byID: map[string]events.UserSummary{}, byEmail: map[string]string{}}
	srv, err := endpoint.New(endpoint.Config{Service: "auth", Version: "0.0.0-fake"}, nc, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	endpoint.Handle(srv, events.OpAuthGetUsers, func(_ context.Context, req events.GetUsersRequest) (events.List[events.UserSummary], error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		out := events.List[events.UserSummary]{Items: []events.UserSummary{}}
		for _, id := range req.IDs {
			if u, ok := f.byID[id]; ok {
				out.Items = append(out.Items, u)
			}
		}
		return out, nil
	})
	endpoint.Handle(srv, events.OpAuthFindUser, func(_ context.Context, req events.FindUserRequest) (events.UserSummary, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		id, ok := f.byEmail[strings.ToLower(req.Email)]
		if !ok {
			return events.UserSummary{}, events.NotFound("no such user")
		}
		return f.byID[id], nil
	})
	endpoint.Handle(srv, events.OpAuthCreateUser, func(_ context.Context, req events.CreateUserRequest) (events.UserSummary, error) {
		if req.Password == "" {
			return events.UserSummary{}, events.Invalid("password required")
		}
		f.mu.Lock()
		_, taken := f.byEmail[strings.ToLower(req.Email)]
		f.mu.Unlock()
		if taken {
			return events.UserSummary{}, events.Errorf(events.CodeConflict, "e-mail taken")
		}
		return f.add(req.Email, req.Name), nil
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

func (f *fakeAuth) add(email, name string) events.UserSummary {
	id, err := uuid.NewV7()
	if err != nil {
		panic(err)
	}
	u := events.UserSummary{ID: id.String(), Email: email, Name: name}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.byID[u.ID] = u
	f.byEmail[strings.ToLower(email)] = u.ID
	return u
}

func (f *fakeAuth) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.byID)
}
