package audit_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/audit"
	"github.com/infrapilot/infrapilot/services/audit/internal/activity"
	"github.com/infrapilot/infrapilot/services/audit/internal/chain"
	"github.com/infrapilot/infrapilot/services/audit/internal/chainstream"
	"github.com/infrapilot/infrapilot/services/audit/internal/exports"
	"github.com/infrapilot/infrapilot/services/audit/internal/forward"
	"github.com/infrapilot/infrapilot/services/audit/internal/forwarding"
	"github.com/infrapilot/infrapilot/services/audit/internal/projection"
	"github.com/infrapilot/infrapilot/services/audit/internal/siemcreds"
	"github.com/infrapilot/infrapilot/services/internal/platform/app"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/infrapilot/infrapilot/services/internal/platform/natsx"
	"github.com/infrapilot/infrapilot/services/internal/platform/pgtest"
	"github.com/infrapilot/infrapilot/services/internal/platform/reqctx"
	"github.com/infrapilot/infrapilot/services/internal/platform/router"
	"github.com/infrapilot/infrapilot/services/internal/platform/servicetest"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// payload is a test event payload whose wire type the test chooses.
type payload struct {
	T    string `json:"-"`
	N    int    `json:"n"`
	Note string `json:"note,omitempty"`
}

func (p payload) EventType() string { return p.T }
func (payload) EventVersion() int   { return 1 }

// env is one test's NATS server, Postgres database and clients.
type env struct {
	t     *testing.T
	srv   *natstest.Server
	nc    *nats.Conn
	js    jetstream.JetStream
	pgURL string
	db    *pgxpool.Pool // the audit schema, as the service sees it
	admin *pgxpool.Pool // superuser on the same database, public schema
	// hostURL and hostOpts, when set, are where and how hosts connect
	// instead of srv (a hub in operator mode needs credentials).
	hostURL  string
	hostOpts []nats.Option
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := natstest.Run(t)
	nc, js := srv.JetStream()
	pgURL := pgtest.URL(t)
	e := &env{t: t, srv: srv, nc: nc, js: js, pgURL: pgURL}
	return e
}

// testConfig is the service configuration tests run with: short ack wait
// so redeliveries after a crash come quickly.
func testConfig() audit.Config {
	return audit.Config{
		Chain:      chain.Config{AckWait: 3 * time.Second, CheckpointEvery: 50, CheckpointInterval: 2 * time.Second, DrainTimeout: 5 * time.Second},
		Projection: projectionConfig(),
		Exports:    exports.Config{AckWait: 3 * time.Second},
		// Test receivers listen on loopback, over plain http too.
		Forwarding: forwarding.Config{Resync: 500 * time.Millisecond,
			Forward: forward.Config{AllowPrivateNetworks: true, AllowInsecure: true, MaxWait: 100 * time.Millisecond,
				MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second}},
		Activity: activity.Config{CatchUpWait: 5 * time.Second},
	}
}

// host is one running audit service.
type host struct {
	nc   *nats.Conn
	stop func() error
}

// startHost runs the audit module in an app.Host on a connection of its
// own, so a test can cut it off. It returns once the host is ready.
func (e *env) startHost(cfg audit.Config, name string) *host {
	e.t.Helper()
	url := e.hostURL
	if url == "" {
		url = e.srv.URL()
	}
	nc, err := natsx.Connect(natsx.ConnConfig{URL: url, Name: name, Options: e.hostOpts}, slog.New(slog.DiscardHandler))
	if err != nil {
		e.t.Fatal(err)
	}
	js, err := natsx.JetStream(nc)
	if err != nil {
		e.t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("AUDIT_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("host", name)
	}
	h, err := app.New(app.Config{Instance: name, Version: "test", PostgresURL: e.pgURL, Topology: events.DefaultTopology(),
		Router:       router.Config{AckWait: 5 * time.Second, Backoff: router.Backoff{Initial: 50 * time.Millisecond, Max: time.Second}},
		DrainTimeout: 10 * time.Second},
		nc, js, log, prometheus.NewRegistry(), []app.Module{audit.Module(cfg)})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	select {
	case <-h.Ready():
	case err := <-done:
		cancel()
		e.t.Fatalf("host %s failed to start: %v", name, err)
	case <-time.After(60 * time.Second):
		cancel()
		e.t.Fatalf("host %s not ready", name)
	}
	// Ready means subscribed; make sure the server has the subscriptions
	// before the test sends requests from its own connection.
	if err := nc.Flush(); err != nil {
		e.t.Fatal(err)
	}
	var once sync.Once
	var stopErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(60 * time.Second):
				stopErr = errors.New("host did not stop")
			}
			nc.Close()
			h.Close()
		})
		return stopErr
	}
	e.t.Cleanup(func() { _ = stop() })
	e.waitConsumers()
	return &host{nc: nc, stop: stop}
}

// waitConsumers waits until the service's durable consumers exist. A
// second host's stream updates (events.Ensure) racing with the first host's
// consumer creation trip a data race inside nats-server's file store
// (v2.15.2, fileStore.UpdateConfig vs ConsumerStore), so hosts in one test
// start one after the other.
func (e *env) waitConsumers() {
	e.t.Helper()
	names := map[string]string{"audit_projection": events.StreamAudit, "audit_config_projection": events.StreamAudit,
		"audit_exports_projection": events.StreamAudit, "audit_reports_projection": events.StreamAudit,
		exports.WorkerDurable: events.StreamAudit, activity.MembershipsDurable: events.DomainStream("tenancy"),
		activity.LinkerDurable: events.DomainStream("auth"), siemcreds.ProjectionDurable: events.StreamAudit}
	for _, src := range chain.DefaultSources() {
		names[src.Durable] = src.Stream
	}
	natstest.CheckFor(e.t, 30*time.Second, 20*time.Millisecond, func() error {
		for name, stream := range names {
			if _, err := e.js.Consumer(context.Background(), stream, name); err != nil {
				return fmt.Errorf("consumer %s: %w", name, err)
			}
		}
		return nil
	})
}

// dbPool opens a pool on the audit schema of the test database.
func (e *env) dbPool() *pgxpool.Pool {
	e.t.Helper()
	if e.db == nil {
		e.db = pgtest.New(e.t, "audit")
	}
	return e.db
}

// event builds an envelope of type typ in org with the given actor.
func event(t testing.TB, org, typ string, actor events.Actor, agg events.Aggregate, n int) events.Envelope {
	t.Helper()
	env, err := events.New(payload{T: typ, N: n, Note: fmt.Sprintf("event %d", n)}, agg, events.Meta{OrgID: org, Actor: actor})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// publish stores env on its service's stream, as the event store does.
func (e *env) publish(env events.Envelope) {
	e.t.Helper()
	svc := env.Type[:indexByte(env.Type, '.')]
	data, err := env.Marshal()
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.js.Publish(ctx, events.DomainEvent(svc, env.OrgID, env.Aggregate.Type, env.Aggregate.ID), data,
		jetstream.WithMsgID(env.ID)); err != nil {
		e.t.Fatal(err)
	}
}

// publishAsync stores many envelopes with pipelined publishes.
func (e *env) publishAsync(envs []events.Envelope) {
	e.t.Helper()
	js, err := jetstream.New(e.nc, jetstream.WithPublishAsyncMaxPending(2048))
	if err != nil {
		e.t.Fatal(err)
	}
	for _, env := range envs {
		svc := env.Type[:indexByte(env.Type, '.')]
		data, _ := env.Marshal()
		if _, err := js.PublishAsync(events.DomainEvent(svc, env.OrgID, env.Aggregate.Type, env.Aggregate.ID), data,
			jetstream.WithMsgID(env.ID)); err != nil {
			e.t.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(60 * time.Second):
		e.t.Fatal("source publishes not acknowledged")
	}
}

func projectionConfig() projection.Config {
	return projection.Config{MaxWait: 100 * time.Millisecond, AckWait: 3 * time.Second}
}

func indexByte(s string, c byte) int { return max(strings.IndexByte(s, c), 0) }

// streamChain reads org's whole chain from the AUDIT stream.
func (e *env) streamChain(org string) []chainstream.Entry {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out []chainstream.Entry
	for en, err := range chainstream.New(e.js).Entries(ctx, org, 0) {
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, en)
	}
	return out
}

// checkLinear fails unless org's chain on the stream is entries 1..n, each
// linking to the one before and hashing right, with exactly the event ids
// in want (when want is not nil).
func (e *env) checkLinear(org string, want map[string]bool) []chainstream.Entry {
	e.t.Helper()
	entries := e.streamChain(org)
	if err := linear(entries, want); err != nil {
		e.t.Fatalf("chain of %s: %v", org, err)
	}
	return entries
}

func linear(entries []chainstream.Entry, want map[string]bool) error {
	prev := events.GenesisHash
	seen := map[string]bool{}
	for i, en := range entries {
		if en.Index != uint64(i+1) {
			return fmt.Errorf("entry %d has index %d", i+1, en.Index)
		}
		if en.PrevHash != prev {
			return fmt.Errorf("entry %d does not link to entry %d", en.Index, en.Index-1)
		}
		h, err := en.ComputeHash()
		if err != nil || h != en.Hash {
			return fmt.Errorf("entry %d: hash does not recompute (%v)", en.Index, err)
		}
		if seen[en.EventID] {
			return fmt.Errorf("event %s chained twice (again at %d)", en.EventID, en.Index)
		}
		seen[en.EventID] = true
		prev = en.Hash
	}
	if want != nil {
		for id := range want {
			if !seen[id] {
				return fmt.Errorf("event %s is not chained (%d of %d are)", id, len(seen), len(want))
			}
		}
		if len(seen) != len(want) {
			return fmt.Errorf("%d events chained, want %d", len(seen), len(want))
		}
	}
	return nil
}

// waitChained waits until org's chain on the stream holds n entries.
func (e *env) waitChained(org string, n int, timeout time.Duration) {
	e.t.Helper()
	rd := chainstream.New(e.js)
	natstest.CheckFor(e.t, timeout, 50*time.Millisecond, func() error {
		tail, ok, err := rd.Tail(context.Background(), org)
		if err != nil {
			return err
		}
		if !ok || tail.Index < uint64(n) {
			got := uint64(0)
			if ok {
				got = tail.Index
			}
			return fmt.Errorf("chain of %s has %d entries, want %d", org, got, n)
		}
		return nil
	})
}

// waitProjected waits until the projection holds n entries of org.
func (e *env) waitProjected(org string, n int, timeout time.Duration) {
	e.t.Helper()
	db := e.dbPool()
	natstest.CheckFor(e.t, timeout, 50*time.Millisecond, func() error {
		var got int
		if err := db.QueryRow(context.Background(), `SELECT count(*) FROM entries WHERE org_id = $1`, org).Scan(&got); err != nil {
			return err
		}
		if got < n {
			return fmt.Errorf("%d of %d entries of %s projected", got, n, org)
		}
		return nil
	})
}

// call sends an audit operation as the gateway would, with org and role
// headers, and decodes the reply into out; it returns the service's error.
func (e *env) call(org, role, op string, req, out any) *events.Error {
	e.t.Helper()
	from := reqctx.Info{OrgID: org, Role: role, RequestID: "req-1",
		Actor: events.Actor{Kind: events.ActorUser, ID: "admin-1", IP: "198.51.100.7", UserAgent: "test-agent/1"}}
	return servicetest.Call(e.t, e.nc, events.ServiceEndpoint("audit", op), from, req, out)
}

// verify calls the verify operation.
func (e *env) verify(org string, req events.AuditVerifyRequest) events.AuditVerifyReply {
	e.t.Helper()
	var out events.AuditVerifyReply
	if err := e.call(org, "owner", events.OpAuditVerify, req, &out); err != nil {
		e.t.Fatalf("verify: %v", err)
	}
	return out
}
