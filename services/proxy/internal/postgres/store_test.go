package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/pg"
	"github.com/infrapilot/infrapilot/services/internal/platform/pgtest"
	"github.com/infrapilot/infrapilot/services/proxy"
	"github.com/infrapilot/infrapilot/services/proxy/internal/domain"
	"github.com/infrapilot/infrapilot/services/proxy/internal/postgres"
	"github.com/jackc/pgx/v5"
)

func store(t *testing.T) *postgres.Store {
	t.Helper()
	pool := pgtest.New(t, "proxy")
	if _, err := pg.Migrate(context.Background(), pool, "proxy", proxy.Module(proxy.Config{}).Migrations); err != nil {
		t.Fatal(err)
	}
	return postgres.New(pool)
}

func host(org, id string, version uint64, domains ...string) *domain.Host {
	now := time.Now().UTC().Truncate(time.Microsecond)
	return &domain.Host{ID: id, OrgID: org, AgentID: "a1", Status: events.ProxyStatusPending, RenderVersion: version,
		Spec: events.ProxyHostSpec{Domains: domains, Enabled: true, Upstream: events.Upstream{URL: "http://10.0.0.1"}},
		Cert: domain.Cert{Status: events.CertStatusNone}, CreatedAt: now, UpdatedAt: now, Ver: version}
}

// TestProjectionWritesAreIdempotentAndOrderInsensitive: whole aggregates
// guarded by their version, so a redelivered or late (older) state never
// overwrites a newer one.
func TestProjectionWritesAreIdempotentAndOrderInsensitive(t *testing.T) {
	s := store(t)
	ctx := context.Background()
	mustWrite := func(h *domain.Host, want bool) {
		t.Helper()
		wrote, err := s.SaveHost(ctx, h)
		if err != nil || wrote != want {
			t.Fatalf("SaveHost v%d: wrote %v err %v, want %v", h.Ver, wrote, err, want)
		}
	}
	mustWrite(host("o1", "h1", 10, "b.example.com"), true)
	mustWrite(host("o1", "h1", 10, "b.example.com"), false) // redelivery
	mustWrite(host("o1", "h1", 5, "a.example.com"), false)  // an older state arriving late
	if h, _, _ := s.GetHost(ctx, "o1", "h1"); h.Spec.Domains[0] != "b.example.com" {
		t.Fatalf("a late older state was written: %+v", h.Spec)
	}
	mustWrite(host("o1", "h1", 12, "c.example.com"), true)
	if v, err := s.Version(ctx, "o1", events.ProxyAggHost, "h1"); err != nil || v != 12 {
		t.Fatalf("version %d %v", v, err)
	}
	// The same host id under another org neither overwrites nor is seen.
	mustWrite(host("o2", "h1", 20, "evil.example.com"), false)
	if v, _ := s.Version(ctx, "o2", events.ProxyAggHost, "h1"); v != 0 {
		t.Fatalf("another org sees version %d", v)
	}
}

// TestReadsAreConfinedToTheOrg: tenant reads run under row-level
// security, so even a query without a WHERE clause sees one org.
func TestReadsAreConfinedToTheOrg(t *testing.T) {
	s := store(t)
	ctx := context.Background()
	for _, h := range []*domain.Host{host("o1", "h1", 1, "a.example.com"), host("o2", "h2", 2, "b.example.com")} {
		if _, err := s.SaveHost(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	a := &domain.Agent{ID: "a1", OrgID: "o2", Mode: events.ProxyModeManaged, UpdatedAt: time.Now(), Ver: 3}
	if _, err := s.SaveAgent(ctx, a); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"hosts", "agent_settings"} {
		var n int
		err := s.Read(ctx, "o1", func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE org_id <> 'o1'").Scan(&n)
		})
		if err != nil || n != 0 {
			t.Fatalf("%s: org o1 sees %d rows of other orgs (%v)", table, n, err)
		}
	}
	if _, ok, err := s.GetHost(ctx, "o1", "h2"); ok || err != nil {
		t.Fatalf("o1 reads o2's host: %v %v", ok, err)
	}
	if _, ok, _ := s.GetAgent(ctx, "o1", "a1"); ok {
		t.Fatal("o1 reads o2's agent settings")
	}
	if got, ok, _ := s.GetAgent(ctx, "o2", "a1"); !ok || got.Ver != 3 {
		t.Fatalf("o2's settings: %+v", got)
	}
	if _, _, found, _ := s.DomainOwner(ctx, "o1", "a1", "", []string{"b.example.com"}); found {
		t.Fatal("another org's domain is a conflict")
	}
	if id, d, found, _ := s.DomainOwner(ctx, "o2", "a1", "", []string{"x.example.com", "b.example.com"}); !found || id != "h2" || d != "b.example.com" {
		t.Fatalf("domain owner: %s %s %v", id, d, found)
	}
}
