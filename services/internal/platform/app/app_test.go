package app_test

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/app"
	"github.com/infrapilot/infrapilot/services/internal/platform/endpoint"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/infrapilot/infrapilot/services/internal/platform/natsx"
	"github.com/infrapilot/infrapilot/services/internal/platform/pgtest"
	"github.com/infrapilot/infrapilot/services/internal/platform/reqctx"
	"github.com/infrapilot/infrapilot/services/internal/platform/router"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

//go:embed testdata/migrations/*.sql
var migrations embed.FS

// noteAdded is the payload of the test service. It is a test-only type
// registered in a private registry; the service below is a minimal but real
// module: it appends events through the event store and projects them into
// its own Postgres schema through a durable consumer.
type noteAdded struct {
	Text string `json:"text"`
}

func (noteAdded) EventType() string { return "proxy.note.added" }
func (noteAdded) EventVersion() int { return 1 }

type notes struct {
	deps    app.Deps
	stopped chan struct{}
}

func (n *notes) Run(ctx context.Context) error {
	<-ctx.Done()
	close(n.stopped)
	return nil
}

type addReq struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

func newNotes(record *sync.Map) func(app.Deps) (app.Service, error) {
	return func(d app.Deps) (app.Service, error) {
		n := &notes{deps: d, stopped: make(chan struct{})}
		endpoint.Handle(d.Endpoints, "add", func(ctx context.Context, req addReq) (map[string]uint64, error) {
			env, err := events.New(noteAdded{Text: req.Text}, events.Aggregate{Type: "note", ID: req.ID}, reqctx.Meta(ctx))
			if err != nil {
				return nil, err
			}
			v, err := d.Events.Append(ctx, eventstore.Ref{OrgID: env.OrgID, Type: "note", ID: req.ID}, 0, env)
			if err != nil {
				return nil, err
			}
			return map[string]uint64{"version": v}, nil
		})
		err := d.Router.AddEventHandler("notes_projection", events.DomainStream("proxy"), []string{events.DomainEvents("proxy")},
			func(ctx context.Context, env events.Envelope) error {
				var p noteAdded
				if err := json.Unmarshal(env.Data, &p); err != nil {
					return router.Permanent(err)
				}
				record.Store(env.ID, true)
				_, err := d.DB.Exec(ctx, `INSERT INTO notes (event_id, org_id, text) VALUES ($1, $2, $3) ON CONFLICT (event_id) DO NOTHING`,
					env.ID, env.OrgID, p.Text)
				return err
			})
		return n, err
	}
}

func TestHostRunsAModuleEndToEndAndStopsInOrder(t *testing.T) {
	srv := natstest.Run(t)
	nc := srv.Connect()
	js, err := natsx.JetStream(nc)
	if err != nil {
		t.Fatal(err)
	}
	pgURL := pgtest.URL(t)
	sub, err := fs.Sub(migrations, "testdata/migrations")
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewJSONHandler(&lockedWriter{w: &logs, mu: &mu}, nil))
	var record sync.Map
	host, err := app.New(app.Config{Instance: "t1", Version: "test", PostgresURL: pgURL, Topology: events.DefaultTopology()},
		nc, js, log, prometheus.NewRegistry(), []app.Module{{Name: "proxy", Migrations: sub, New: newNotes(&record)}})
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
	case <-time.After(30 * time.Second):
		t.Fatal("host not ready")
	}

	// Health answers with the Postgres check of the service's schema.
	var hr events.HealthReply
	request(t, nc, events.ServiceEndpoint("proxy", events.HealthOperation), nil, &hr)
	if hr.Status != events.HealthOK || hr.Checks["postgres"] != events.HealthOK {
		t.Fatalf("health %+v", hr)
	}

	// A request appends an event; the projection consumer writes the row.
	h := nats.Header{}
	reqctx.Info{OrgID: "org1", Actor: events.Actor{Kind: events.ActorUser, ID: "u1"}}.Headers(h)
	var out map[string]uint64
	request(t, nc, events.ServiceEndpoint("proxy", "add"), h, &out, addReq{ID: "n1", Text: "hello"})
	if out["version"] == 0 {
		t.Fatalf("append returned no version: %v", out)
	}
	pool, err := pgxpool.New(context.Background(), pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		var text string
		if err := pool.QueryRow(context.Background(), `SELECT text FROM proxy.notes WHERE org_id = 'org1'`).Scan(&text); err != nil {
			return err
		}
		if text != "hello" {
			return errors.New("wrong text " + text)
		}
		return nil
	})

	// A second append to the same new aggregate conflicts, through the
	// endpoint's one error mapping.
	reply := requestRaw(t, nc, events.ServiceEndpoint("proxy", "add"), h, addReq{ID: "n1", Text: "again"})
	if got := reply.Header.Get(events.HeaderServiceErrorCode); got != string(events.CodeConflict) {
		t.Fatalf("want conflict, got %q %s", got, reply.Data)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("host stopped with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("host did not stop")
	}
	host.Close()
	// After stop, nobody answers the service's subjects.
	if _, err := nc.Request(events.ServiceEndpoint("proxy", events.HealthOperation), nil, 300*time.Millisecond); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("endpoints still answer after stop: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !bytes.Contains(logs.Bytes(), []byte(`"msg":"services stopped"`)) {
		t.Fatalf("no orderly stop in the log:\n%s", logs.String())
	}
}

func TestNewRejectsBadModules(t *testing.T) {
	ok := func(app.Deps) (app.Service, error) { return nil, nil }
	cases := map[string][]app.Module{
		"bad name":         {{Name: "a.b", New: ok}},
		"no constructor":   {{Name: "x"}},
		"twice":            {{Name: "x", New: ok}, {Name: "x", New: ok}},
		"migrations no pg": {{Name: "x", New: ok, Migrations: migrations}},
	}
	for name, mods := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := app.New(app.Config{}, nil, nil, slog.New(slog.DiscardHandler), nil, mods); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func request(t *testing.T, nc *nats.Conn, subject string, h nats.Header, out any, in ...any) {
	t.Helper()
	reply := requestRaw(t, nc, subject, h, in...)
	if code := reply.Header.Get(events.HeaderServiceErrorCode); code != "" {
		t.Fatalf("%s: %s %s", subject, code, reply.Data)
	}
	if err := json.Unmarshal(reply.Data, out); err != nil {
		t.Fatalf("%s: %v (%s)", subject, err, reply.Data)
	}
}

func requestRaw(t *testing.T, nc *nats.Conn, subject string, h nats.Header, in ...any) *nats.Msg {
	t.Helper()
	msg := nats.NewMsg(subject)
	if h != nil {
		msg.Header = h
	}
	if len(in) > 0 {
		b, err := json.Marshal(in[0])
		if err != nil {
			t.Fatal(err)
		}
		msg.Data = b
	}
	reply, err := nc.RequestMsg(msg, 5*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", subject, err)
	}
	return reply
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
