package readmodel_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/infrapilot/infrapilot/services/internal/platform/readmodel"
	"github.com/infrapilot/infrapilot/services/internal/platform/router"
)

// service is a service whose domain stream events.Ensure creates.
const service = "tenancy"

type thingChanged struct {
	N int `json:"n"`
}

func (thingChanged) EventType() string { return "tenancy.readmodeltest.changed" }
func (thingChanged) EventVersion() int { return 1 }

// memModel is a read model in memory: the version of each aggregate, and
// the aggregates Project was asked for.
type memModel struct {
	mu        sync.Mutex
	versions  map[string]uint64
	projected []string
	failOnce  map[string]bool
}

func (m *memModel) version(id string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.versions[id]
}

// TestProjection runs a projection on a real router and event store: an
// aggregate the read model already holds at a newer version is never
// projected again, a new one is written from its whole history and wakes
// the waiter, and a failed write is retried.
func TestProjection(t *testing.T) {
	srv := natstest.Run(t)
	nc, js := srv.JetStream()
	es := eventstore.New(js, service)
	r, err := router.New(router.Config{Service: service, Backoff: router.Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond}},
		router.Deps{Conn: nc, JS: js, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	m := &memModel{versions: map[string]uint64{"old": 1 << 40}, failOnce: map[string]bool{"flaky": true}}
	p := readmodel.Projection{
		Handler: "readmodeltest_projection",
		Service: service,
		Version: func(_ context.Context, env events.Envelope) (uint64, error) {
			return m.version(env.Aggregate.ID), nil
		},
		Project: func(ctx context.Context, env events.Envelope) (bool, error) {
			// A real projection loads the whole aggregate: its version is
			// that of its last event.
			_, v, err := es.Load(ctx, eventstore.Ref{OrgID: env.OrgID, Type: env.Aggregate.Type, ID: env.Aggregate.ID})
			if err != nil {
				return false, err
			}
			m.mu.Lock()
			defer m.mu.Unlock()
			m.projected = append(m.projected, env.Aggregate.ID)
			if m.failOnce[env.Aggregate.ID] {
				delete(m.failOnce, env.Aggregate.ID)
				return false, errors.New("database unavailable")
			}
			if v <= m.versions[env.Aggregate.ID] {
				return false, nil
			}
			m.versions[env.Aggregate.ID] = v
			return true, nil
		},
	}
	w := readmodel.NewWaiter(30*time.Second, nil)
	if err := p.Register(r, w); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("router: %v", err)
		}
	})

	appendN := func(id string, n int) uint64 {
		t.Helper()
		ref := eventstore.Ref{OrgID: "org1", Type: "thing", ID: id}
		var ps []events.Payload
		for i := range n {
			ps = append(ps, thingChanged{N: i})
		}
		v, err := es.AppendPayloads(context.Background(), ref, 0, events.Meta{OrgID: "org1", Actor: events.SystemActor(service)}, ps...)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	appendN("old", 2)
	for _, id := range []string{"new", "flaky"} {
		v := appendN(id, 3)
		current := func(context.Context) (uint64, error) { return m.version(id), nil }
		w.Await(context.Background(), "thing", id, v, current)
		if got := m.version(id); got != v {
			t.Fatalf("%s: read model at version %d, want %d", id, got, v)
		}
	}
	// Every event handled, "old"'s included.
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		c, err := js.Consumer(context.Background(), events.DomainStream(service), p.Handler)
		if err != nil {
			return err
		}
		info, err := c.Info(context.Background())
		if err != nil {
			return err
		}
		if info.NumPending > 0 || info.NumAckPending > 0 {
			return fmt.Errorf("%d pending, %d unacknowledged", info.NumPending, info.NumAckPending)
		}
		return nil
	})
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range m.projected {
		if id == "old" {
			t.Fatalf("an aggregate the read model held at a newer version was projected: %v", m.projected)
		}
	}
	if n := count(m.projected, "flaky"); n < 2 {
		t.Fatalf("the failed write was not retried: %v", m.projected)
	}
}

func count(ids []string, id string) int {
	n := 0
	for _, x := range ids {
		if x == id {
			n++
		}
	}
	return n
}
