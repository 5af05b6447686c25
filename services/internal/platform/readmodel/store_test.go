package readmodel_test

import (
	"context"
	"errors"
	"testing"

	"github.com/infrapilot/infrapilot/services/internal/platform/pgtest"
	"github.com/infrapilot/infrapilot/services/internal/platform/readmodel"
	"github.com/jackc/pgx/v5"
)

const readerRole = "readmodeltest_reader"

// schema is a read model the way services migrate theirs: a table of
// tenant rows, a NOLOGIN reader role, and policies on app.org_id and
// app.user_id.
const schema = `
CREATE TABLE things (id text PRIMARY KEY, org_id text NOT NULL, owner text NOT NULL, version bigint NOT NULL);
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'readmodeltest_reader') THEN
        BEGIN
            CREATE ROLE readmodeltest_reader NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
    IF NOT pg_has_role(current_user, 'readmodeltest_reader', 'MEMBER') THEN
        EXECUTE format('GRANT readmodeltest_reader TO %I', current_user);
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO readmodeltest_reader', current_schema());
END
$$;
GRANT SELECT ON things TO readmodeltest_reader;
ALTER TABLE things ENABLE ROW LEVEL SECURITY;
CREATE POLICY things_tenant ON things FOR SELECT TO readmodeltest_reader
    USING (org_id = current_setting('app.org_id', true) OR owner = current_setting('app.user_id', true));
`

func newStore(t *testing.T) *readmodel.Store {
	t.Helper()
	pool := pgtest.New(t, "readmodeltest")
	if _, err := pool.Exec(context.Background(), schema); err != nil {
		t.Fatal(err)
	}
	return readmodel.NewStore(pool, "readmodeltest", readerRole)
}

// save is a projection write: whole rows, guarded by version.
func save(ctx context.Context, s *readmodel.Store, id, org, owner string, version int64) (bool, error) {
	return s.Write(ctx, func(tx pgx.Tx) (bool, error) {
		tag, err := tx.Exec(ctx, `INSERT INTO things (id, org_id, owner, version) VALUES ($1, $2, $3, $4)
			ON CONFLICT (id) DO UPDATE SET owner = EXCLUDED.owner, version = EXCLUDED.version
			WHERE things.version < EXCLUDED.version`, id, org, owner, version)
		return err == nil && tag.RowsAffected() > 0, err
	})
}

func TestStore(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for _, w := range []struct {
		id, org, owner string
		version        int64
		wrote          bool
	}{
		{"t1", "o1", "u1", 3, true},
		{"t1", "o1", "u9", 3, false}, // redelivered
		{"t1", "o1", "u9", 2, false}, // older, late
		{"t2", "o2", "u1", 1, true},
		{"t3", "o2", "u2", 1, true},
	} {
		wrote, err := save(ctx, s, w.id, w.org, w.owner, w.version)
		if err != nil || wrote != w.wrote {
			t.Fatalf("save %s v%d: wrote %v, %v; want %v", w.id, w.version, wrote, err, w.wrote)
		}
	}
	// A write whose fn fails commits nothing.
	boom := errors.New("boom")
	if _, err := s.Write(ctx, func(tx pgx.Tx) (bool, error) {
		if _, err := tx.Exec(ctx, `UPDATE things SET version = 99`); err != nil {
			return false, err
		}
		return true, boom
	}); !errors.Is(err, boom) {
		t.Fatalf("failed write: %v", err)
	}

	for _, tc := range []struct {
		id   string
		want uint64
	}{{"t1", 3}, {"t2", 1}, {"none", 0}} {
		if v, err := s.Version(ctx, `SELECT version FROM things WHERE id = $1`, tc.id); err != nil || v != tc.want {
			t.Errorf("Version(%s) = %d, %v; want %d", tc.id, v, err, tc.want)
		}
	}

	// Reads see only their scope, even without a WHERE clause.
	for _, tc := range []struct {
		name  string
		scope readmodel.Scope
		want  []string
	}{
		{"org", readmodel.Scope{OrgID: "o2"}, []string{"t2", "t3"}},
		{"user", readmodel.Scope{UserID: "u1"}, []string{"t1", "t2"}},
		{"nothing", readmodel.Scope{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			err := s.Read(ctx, tc.scope, func(tx pgx.Tx) error {
				rows, err := tx.Query(ctx, `SELECT id FROM things ORDER BY id`)
				if err != nil {
					return err
				}
				got, err = pgx.CollectRows(rows, pgx.RowTo[string])
				return err
			})
			if err != nil || len(got) != len(tc.want) {
				t.Fatalf("read %+v: %v, %v; want %v", tc.scope, got, err, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("read %+v: %v, want %v", tc.scope, got, tc.want)
				}
			}
		})
	}
	// Reads are read-only.
	err := s.Read(ctx, readmodel.Scope{OrgID: "o1"}, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE things SET version = 99`)
		return err
	})
	if err == nil {
		t.Fatal("a read wrote")
	}
}
