package app_test

import (
	"context"
	"io/fs"
	"log/slog"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/app"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/prometheus/client_golang/prometheus"
)

type idle struct{}

func (idle) Run(ctx context.Context) error { <-ctx.Done(); return nil }

func TestEmbeddedModule(t *testing.T) {
	t.Parallel()
	built := 0
	newFn := func(app.Deps) (app.Service, error) { built++; return idle{}, nil }

	m := app.EmbeddedModule("notes", migrations, "testdata/migrations", newFn)
	if m.Name != "notes" {
		t.Fatalf("name %q", m.Name)
	}
	if names, err := fs.Glob(m.Migrations, "*.sql"); err != nil || len(names) != 1 || names[0] != "0001_notes.sql" {
		t.Fatalf("migrations %v, %v", names, err)
	}
	if _, err := m.New(app.Deps{}); err != nil || built != 1 {
		t.Fatalf("New: %v, built %d", err, built)
	}

	// A malformed directory is New's error, not a panic.
	bad := app.EmbeddedModule("notes", migrations, "../escape", newFn)
	if _, err := bad.New(app.Deps{}); err == nil || built != 1 {
		t.Fatalf("New with a malformed directory: %v, built %d", err, built)
	}
}

// TestModuleClock: a module's Now replaces the host's clock in its Deps.
func TestModuleClock(t *testing.T) {
	t.Parallel()
	nc, js := natstest.Run(t).JetStream()
	fixed := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	got := make(chan time.Time, 1)
	m := app.Module{Name: "clocktest", Now: func() time.Time { return fixed }, New: func(d app.Deps) (app.Service, error) {
		got <- d.Now()
		return idle{}, nil
	}}
	host, err := app.New(app.Config{Instance: "t", Version: "test", Topology: events.DefaultTopology()}, nc, js,
		slog.New(slog.DiscardHandler), prometheus.NewRegistry(), []app.Module{m})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- host.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("host: %v", err)
		}
		host.Close()
	}()
	select {
	case now := <-got:
		if !now.Equal(fixed) {
			t.Fatalf("the service's clock says %s, want %s", now, fixed)
		}
	case err := <-done:
		t.Fatalf("host: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("module not built")
	}
}
