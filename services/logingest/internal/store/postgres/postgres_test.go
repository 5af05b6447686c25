package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/services/internal/platform/pg"
	"github.com/infrapilot/infrapilot/services/internal/platform/pgtest"
	"github.com/infrapilot/infrapilot/services/logingest/internal/store"
	"github.com/infrapilot/infrapilot/services/logingest/internal/store/postgres"
	"github.com/infrapilot/infrapilot/services/logingest/internal/store/storetest"
	"github.com/infrapilot/infrapilot/services/logingest/migrations"
)

// New returns a Postgres store on a fresh database with the service's
// migrations applied.
func newStore(t *testing.T) store.Store {
	pool := pgtest.New(t, "logingest")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := pg.Migrate(ctx, pool, "logingest", migrations.FS); err != nil {
		t.Fatal(err)
	}
	return postgres.New(pool)
}

func TestContract(t *testing.T) { storetest.Run(t, newStore) }
