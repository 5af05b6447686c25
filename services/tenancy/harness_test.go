package tenancy_test

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/app"
	"github.com/infrapilot/infrapilot/services/internal/platform/endpoint"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/infrapilot/infrapilot/services/internal/platform/pgtest"
	"github.com/infrapilot/infrapilot/services/internal/platform/reqctx"
	"github.com/infrapilot/infrapilot/services/internal/platform/servicetest"
	"github.com/infrapilot/infrapilot/services/tenancy"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
)

// harness runs the tenancy module inside a real host (servicetest.Start)
// on a real embedded NATS server and a fresh Postgres database, next to a
// stand-in for the auth service.
type harness struct {
	t     *testing.T
	nc    *nats.Conn
	pgURL string
	db    *pgxpool.Pool // superuser pool on the test database
	auth  *fakeAuth
	clock *servicetest.Clock // moved forward to expire invitations and tokens
}

func start(t *testing.T, cfg tenancy.Config) *harness {
	t.Helper()
	srv := natstest.Run(t)
	nc, js := srv.JetStream()
	pgURL := pgtest.URL(t)
	h := &harness{t: t, nc: nc, pgURL: pgURL, clock: &servicetest.Clock{}}
	cfg.Now = h.clock.Now
	h.auth = startFakeAuth(t, nc)

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	servicetest.Start(t, app.Config{Instance: "t", Version: "test", PostgresURL: pgURL, Topology: events.DefaultTopology()},
		nc, js, log, tenancy.Module(cfg))
	h.db = pgtest.New(t, "tenancy")
	return h
}

// who is the caller of a request as the gateway would describe it.
type who struct {
	org  string
	user string
	role events.Role
	kind events.ActorKind
}

// info is the request context the gateway would send for w.
func (w who) info() reqctx.Info {
	kind := w.kind
	if kind == "" && w.user != "" {
		kind = events.ActorUser
	}
	return reqctx.Info{OrgID: w.org, Role: string(w.role), Actor: events.Actor{Kind: kind, ID: w.user}, RequestID: "test"}
}

// call sends a request to svc.tenancy.<op> and decodes the reply into out
// (when not nil); it returns the service's error, if any.
func (h *harness) call(w who, op string, req, out any) *events.Error {
	h.t.Helper()
	return servicetest.Call(h.t, h.nc, events.ServiceEndpoint("tenancy", op), w.info(), req, out)
}

// must is call that fails the test on an error.
func (h *harness) must(w who, op string, req, out any) {
	h.t.Helper()
	servicetest.WantOK(h.t, op, h.call(w, op, req, out))
}

// fails asserts that op fails with code (and, when given, a message
// containing msg) and returns the error.
func (h *harness) fails(w who, op string, req any, code events.Code, msg string) *events.Error {
	h.t.Helper()
	return servicetest.WantError(h.t, op, h.call(w, op, req, nil), code, msg)
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
var hasField = servicetest.HasField

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
	servicetest.StandIn(t, nc, "auth", func(srv *endpoint.Server) {
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
