package logingest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/app"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/infrapilot/infrapilot/services/internal/platform/natsx"
	"github.com/infrapilot/infrapilot/services/internal/platform/pgtest"
	"github.com/infrapilot/infrapilot/services/internal/platform/router"
	"github.com/infrapilot/infrapilot/services/logingest/internal/ingest"
	"github.com/infrapilot/infrapilot/services/logingest/internal/store/clickhouse/chtest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// stores are the two store configurations every end-to-end test runs on.
var stores = []string{"postgres", "clickhouse"}

// env is a NATS server, a database and (when started) a host running the
// service.
type env struct {
	t     testing.TB
	srv   *natstest.Server
	nc    *nats.Conn
	js    jetstream.JetStream
	pgURL string
	chURL string
	svc   *Service
}

func newEnv(t testing.TB, kind string) *env {
	t.Helper()
	e := &env{t: t, srv: natstest.Run(t), pgURL: pgtest.URL(t)}
	e.nc, e.js = e.srv.JetStream()
	if kind == "clickhouse" {
		e.chURL = chtest.URL(t)
	}
	return e
}

// config is the service configuration of the env's store, with short
// intervals for tests.
func (e *env) config() Config {
	return Config{ClickHouseURL: e.chURL,
		Logs:    ingestConfig(200 * time.Millisecond),
		Metrics: ingestConfig(200 * time.Millisecond)}
}

// start runs the service in a host of its own until the test ends.
func (e *env) start(cfg Config) *Service {
	e.t.Helper()
	nc := e.srv.Connect()
	js, err := natsx.JetStream(nc)
	if err != nil {
		e.t.Fatal(err)
	}
	var svc *Service
	mod := Module(cfg)
	newSvc := mod.New
	mod.New = func(d app.Deps) (app.Service, error) {
		s, err := newSvc(d)
		if err == nil {
			svc = s.(*Service)
		}
		return s, err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	h, err := app.New(app.Config{Instance: "t", Version: "test", PostgresURL: e.pgURL, Topology: events.DefaultTopology(),
		Router: router.Config{AckWait: 5 * time.Second}}, nc, js, log, prometheus.NewRegistry(), []app.Module{mod})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("host: %v", err)
		}
		nc.Close()
		h.Close()
	})
	select {
	case <-h.Ready():
	case err := <-done:
		e.t.Fatalf("host: %v", err)
	case <-time.After(60 * time.Second):
		e.t.Fatal("host not ready")
	}
	// The endpoints' subscriptions reach the server before any request.
	if err := nc.Flush(); err != nil {
		e.t.Fatal(err)
	}
	e.svc = svc
	return svc
}

// publish sends v as an agent would: JSON on the agent's subject with a
// Nats-Msg-Id, acknowledged by the stream.
func (e *env) publish(subject string, v any, msgID string) {
	e.t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.js.Publish(ctx, subject, data, jetstream.WithMsgID(msgID)); err != nil {
		e.t.Fatal(err)
	}
}

// call sends an operation request as the gateway would, acting in org
// with role.
func call[Req, Resp any](e *env, org, role, op string, req Req) (Resp, error) {
	var resp Resp
	data, _ := json.Marshal(req)
	msg := nats.NewMsg(events.ServiceEndpoint(Name, op))
	msg.Data = data
	msg.Header.Set(events.HeaderOrgID, org)
	msg.Header.Set(events.HeaderRole, role)
	msg.Header.Set(events.HeaderActorKind, string(events.ActorUser))
	msg.Header.Set(events.HeaderActorID, "u1")
	reply, err := e.nc.RequestMsg(msg, 10*time.Second)
	if err != nil {
		return resp, err
	}
	if code := reply.Header.Get(events.HeaderServiceErrorCode); code != "" {
		var ee events.Error
		_ = json.Unmarshal(reply.Data, &ee)
		ee.Code = events.Code(code)
		return resp, &ee
	}
	err = json.Unmarshal(reply.Data, &resp)
	return resp, err
}

// logs queries org's lines as a viewer.
func (e *env) logs(org string, req events.LogsQueryRequest) events.LogsPage {
	e.t.Helper()
	if req.From == "" {
		req.From = time.Now().Add(-7 * 24 * time.Hour).Format(time.RFC3339)
	}
	if req.Limit == 0 {
		req.Limit = 1000
	}
	p, err := call[events.LogsQueryRequest, events.LogsPage](e, org, "viewer", events.OpLogsQuery, req)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// allLogs pages through every line of org matching req.
func (e *env) allLogs(org string, req events.LogsQueryRequest) []events.LogEntry {
	e.t.Helper()
	var out []events.LogEntry
	for range 1000 {
		p := e.logs(org, req)
		out = append(out, p.Items...)
		if p.NextCursor == "" {
			return out
		}
		req.Cursor = p.NextCursor
	}
	e.t.Fatal("too many pages")
	return nil
}

// waitLines waits until org has n lines (of the whole last week).
func (e *env) waitLines(org string, n int, timeout time.Duration) {
	e.t.Helper()
	natstest.CheckFor(e.t, timeout, 20*time.Millisecond, func() error {
		if got := len(e.allLogs(org, events.LogsQueryRequest{})); got != n {
			return fmt.Errorf("org %s has %d lines, want %d", org, got, n)
		}
		return nil
	})
}

// chain builds consecutive batches of one container: n lines each, all
// at whole seconds from start with three lines per second (as podman
// writes them), alternating stdout and stderr. It returns the batches
// and their lines' texts.
func chain(container string, start time.Time, batches, n int, text func(i int) string) []events.AgentLogBatch {
	var out []events.AgentLogBatch
	pos := events.LogPosition{}
	i := 0
	for range batches {
		b := events.AgentLogBatch{V: 1, Container: container, Name: "name-" + container, Stack: "stack", From: pos}
		for range n {
			at := start.Add(time.Duration(i/3) * time.Second)
			stream := events.StreamStdout
			if i%2 == 1 {
				stream = events.StreamStderr
			}
			if !at.Equal(pos.Time) {
				pos = events.LogPosition{Time: at}
			}
			if stream == events.StreamStdout {
				pos.Stdout++
			} else {
				pos.Stderr++
			}
			b.Lines = append(b.Lines, events.LogLine{Time: at, Stream: stream, Text: text(i)})
			i++
		}
		b.To = pos
		out = append(out, b)
	}
	return out
}

// msgID is how an agent names a batch: container and both positions.
func msgID(org, agent string, b events.AgentLogBatch) string {
	return fmt.Sprintf("%s.%s.%s.%d.%d.%d.%d.%d.%d", org, agent, b.Container, b.From.Time.UnixNano(), b.From.Stdout, b.From.Stderr,
		b.To.Time.UnixNano(), b.To.Stdout, b.To.Stderr)
}

func ingestConfig(flush time.Duration) ingest.Config {
	return ingest.Config{FlushInterval: flush, AckWait: 3 * time.Second, MinBackoff: 20 * time.Millisecond}
}

func mustJSON(v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return data
}
