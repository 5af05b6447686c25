package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/pg"
	"github.com/infrapilot/infrapilot/services/internal/platform/pgtest"
	"github.com/infrapilot/infrapilot/services/tenancy"
	"github.com/infrapilot/infrapilot/services/tenancy/internal/domain"
	"github.com/infrapilot/infrapilot/services/tenancy/internal/postgres"
)

// TestProjectionWritesAreIdempotentAndOrderInsensitive: the projection
// writes whole aggregates guarded by their version, so a redelivered or
// late (older) state never overwrites a newer one.
func TestProjectionWritesAreIdempotentAndOrderInsensitive(t *testing.T) {
	pool := pgtest.New(t, "tenancy")
	ctx := context.Background()
	if _, err := pg.Migrate(ctx, pool, "tenancy", tenancy.Module(tenancy.Config{}).Migrations); err != nil {
		t.Fatal(err)
	}
	s := postgres.New(pool)
	now := time.Now().UTC().Truncate(time.Microsecond)
	org := func(version uint64, members ...string) *domain.Org {
		o := &domain.Org{ID: "o1", Name: "O", Slug: "o-1", Plan: "free", CreatedAt: now, UpdatedAt: now,
			Members: map[string]domain.Member{}, Version: version}
		for _, m := range members {
			o.Members[m] = domain.Member{UserID: m, Role: events.RoleAdmin, JoinedAt: now}
		}
		return o
	}
	mustWrite := func(o *domain.Org, want bool) {
		t.Helper()
		wrote, err := s.SaveOrg(ctx, o)
		if err != nil || wrote != want {
			t.Fatalf("SaveOrg v%d: wrote %v err %v, want %v", o.Version, wrote, err, want)
		}
	}
	mustWrite(org(10, "a", "b"), true)
	mustWrite(org(10, "a", "b"), false) // redelivery
	mustWrite(org(5, "a"), false)       // an older state arriving late
	if _, ok, _ := s.Membership(ctx, "o1", "b"); !ok {
		t.Fatal("a late older state removed a member")
	}
	mustWrite(org(12, "a"), true)
	if _, ok, _ := s.Membership(ctx, "o1", "b"); ok {
		t.Fatal("the newer state was not written")
	}
	deleted := org(13, "a")
	deleted.Deleted = true
	mustWrite(deleted, true)
	if _, ok, _ := s.Membership(ctx, "o1", "a"); ok {
		t.Fatal("a deleted org keeps members")
	}
	if v, err := s.Version(ctx, events.TenancyAggOrg, "o1"); err != nil || v != 13 {
		t.Fatalf("version %d %v", v, err)
	}
}
