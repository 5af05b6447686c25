package auth_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/auth"
	"github.com/infrapilot/infrapilot/services/internal/platform/app"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/infrapilot/infrapilot/services/internal/platform/pgtest"
	"github.com/infrapilot/infrapilot/services/internal/platform/reqctx"
	"github.com/infrapilot/infrapilot/services/internal/platform/servicetest"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// cheapArgon2 keeps tests fast; production parameters are measured by
// BenchmarkLogin.
var cheapArgon2 = auth.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1, SaltLen: 16, KeyLen: 32}

// env is one running auth service on a private NATS server and database.
type env struct {
	t     testing.TB
	nc    *nats.Conn
	js    jetstream.JetStream
	db    *pgxpool.Pool // the auth schema, for assertions
	clock *servicetest.Clock
	orgs  atomic.Int64 // orgs the tenancy stand-in created

	mu      sync.Mutex
	secrets []string // every secret the tests saw; none may be in an event
}

type options struct {
	tenancy bool
	cfg     func(*auth.Config)
}

func withoutTenancy() func(*options) { return func(o *options) { o.tenancy = false } }
func withConfig(f func(*auth.Config)) func(*options) {
	return func(o *options) { o.cfg = f }
}

// start runs the auth module in a real host (servicetest.Start) with
// a stand-in tenancy responder.
func start(t testing.TB, opts ...func(*options)) *env {
	t.Helper()
	o := options{tenancy: true}
	for _, f := range opts {
		f(&o)
	}
	srv := natstest.Run(t)
	nc, js := srv.JetStream()
	e := &env{t: t, nc: nc, js: js, clock: &servicetest.Clock{}}
	cfg := auth.DefaultConfig()
	cfg.Argon2 = cheapArgon2
	cfg.Clock = e.clock.Now
	cfg.Throttle.IPFailures = 8
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	if o.tenancy {
		e.tenancyStandIn()
	}
	pgURL := pgtest.URL(t)
	servicetest.Start(t, app.Config{Instance: "t", Version: "test", PostgresURL: pgURL, Topology: events.DefaultTopology()},
		nc, js, slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})), auth.Module(cfg))
	e.db = pgtest.New(t, "auth")
	return e
}

// tenancyStand-in: a TEST-ONLY responder for svc.tenancy.org_create, so
// that register can be tested without the real tenancy service (which
// lives in services/tenancy). It answers like tenancy would, with a fresh
// org id, and counts the orgs.
func (e *env) tenancyStandIn() {
	sub, err := e.nc.Subscribe(events.ServiceEndpoint("tenancy", events.OpTenancyCreateOrg), func(m *nats.Msg) {
		var req events.CreateOrgRequest
		_ = json.Unmarshal(m.Data, &req)
		id, _ := uuid.NewV7()
		e.orgs.Add(1)
		b, _ := json.Marshal(events.OrgSummary{ID: id.String(), Name: req.Name, Slug: strings.ToLower(strings.ReplaceAll(req.Name, " ", "-")),
			Plan: "free", Role: events.RoleOwner})
		_ = m.Respond(b)
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = sub.Unsubscribe() })
}

// secret remembers values that must never appear in an event.
func (e *env) secret(vals ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, v := range vals {
		if v != "" {
			e.secrets = append(e.secrets, v)
		}
	}
}

// caller is who a request comes from.
type caller = reqctx.Info

func anon(ip string) caller { return caller{Actor: events.Actor{IP: ip}} }

func user(id string) caller {
	return caller{Actor: events.Actor{Kind: events.ActorUser, ID: id, IP: "192.0.2.1"}}
}

func member(id, org string, role events.Role) caller {
	c := user(id)
	c.OrgID, c.Role = org, string(role)
	return c
}

// call sends one request to svc.auth.<op> and decodes the reply into out,
// returning the service's error, if any.
func (e *env) call(op string, from caller, req, out any) *events.Error {
	e.t.Helper()
	return servicetest.Call(e.t, e.nc, events.ServiceEndpoint("auth", op), from, req, out)
}

// must is call that fails the test on an error.
func (e *env) must(op string, from caller, req, out any) {
	e.t.Helper()
	servicetest.WantOK(e.t, op, e.call(op, from, req, out))
}

// wantCode fails unless err has code.
func wantCode(t testing.TB, err *events.Error, code events.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("want %s, got success", code)
	}
	if err.Code != code {
		t.Fatalf("want %s, got %s: %s", code, err.Code, err.Message)
	}
}

// register signs up a user with password "correct horse battery" and
// returns the response.
func (e *env) register(email string) events.RegisterResponse {
	e.t.Helper()
	var out events.RegisterResponse
	req := events.RegisterRequest{Email: email, Password: "correct horse battery", Name: "Test User", OrgName: "Acme " + email}
	e.must(events.OpAuthRegister, anon("192.0.2.10"), req, &out)
	e.secret(req.Password, out.AccessToken, out.RefreshToken)
	return out
}

const password = "correct horse battery"

// login logs in with the right password from ip.
func (e *env) login(email, ip string) (events.LoginResponse, *events.Error) {
	e.t.Helper()
	var out events.LoginResponse
	err := e.call(events.OpAuthLogin, anon(ip), events.LoginRequest{Email: email, Password: password}, &out)
	e.secret(out.AccessToken, out.RefreshToken, out.MFAToken)
	return out, err
}

// storedEvents reads every event of the AUTH stream.
func (e *env) storedEvents() []events.Envelope {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := e.js.Stream(ctx, events.DomainStream("auth"))
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []events.Envelope
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			e.t.Fatal(err)
		}
		env, err := events.Unmarshal(m.Data)
		if err != nil {
			e.t.Fatalf("seq %d: %v", seq, err)
		}
		env.Sequence = seq
		// Every stored event must be of a registered type and decode.
		if !events.Catalogue.Known(env.Type, env.Version) {
			e.t.Errorf("unregistered event type %s v%d", env.Type, env.Version)
		}
		out = append(out, env)
	}
	return out
}

// eventsOf returns the stored events of a type.
func (e *env) eventsOf(typ string) []events.Envelope {
	var out []events.Envelope
	for _, env := range e.storedEvents() {
		if env.Type == typ {
			out = append(out, env)
		}
	}
	return out
}

// assertNoSecrets scans every stored event (envelope and data) for every
// secret the test saw, and for anything that looks like a password hash.
func (e *env) assertNoSecrets() {
	e.t.Helper()
	e.mu.Lock()
	secrets := append([]string(nil), e.secrets...)
	e.mu.Unlock()
	for _, env := range e.storedEvents() {
		raw, _ := env.Marshal()
		s := string(raw)
		for _, sec := range secrets {
			if strings.Contains(s, sec) {
				e.t.Errorf("event %s (%s) contains a secret %.8q…", env.ID, env.Type, sec)
			}
		}
		for _, marker := range []string{"argon2", "otpauth", "$argon"} {
			if strings.Contains(strings.ToLower(s), marker) {
				e.t.Errorf("event %s (%s) contains %q: %s", env.ID, env.Type, marker, s)
			}
		}
	}
}

// checkFor polls fn until it succeeds.
func checkFor(t testing.TB, fn func() error) {
	t.Helper()
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, fn)
}

type authConfig = auth.Config

var (
	jsonMarshal   = json.Marshal
	jsonUnmarshal = json.Unmarshal
)

// tWriter sends the service's warnings and errors to the test log.
type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
