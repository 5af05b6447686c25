package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/natsauth"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/infrapilot/infrapilot/services/internal/platform/natsx"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type devRun struct {
	natsURL string
	dataDir string
	cancel  context.CancelFunc
	done    chan int
	out     *syncBuffer
}

// connect opens a connection to the dev hub as a service would: the hub
// runs in operator mode, so it needs the service credentials the data
// dir's keys issue.
func (r *devRun) connect(t testing.TB) *nats.Conn {
	t.Helper()
	keys, err := natsauth.Load(filepath.Join(r.dataDir, natsKeysFile))
	if err != nil {
		t.Fatal(err)
	}
	creds, err := keys.ServiceCreds("test")
	if err != nil {
		t.Fatal(err)
	}
	opt, err := natsauth.ConnectOption(creds)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(r.natsURL, opt)
	if err != nil {
		t.Fatal(err)
	}
	return nc
}

func freePort(t testing.TB) int {
	t.Helper()
	p, err := natsx.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startDev runs the real Main with `dev` in this process and waits for
// /readyz to answer 200.
func startDev(t testing.TB, dataDir string, httpPort, natsPort, pgPort int) *devRun {
	t.Helper()
	return startDevArgs(t, dataDir, httpPort, natsPort, pgPort)
}

// startDevArgs is startDev with extra command-line flags.
func startDevArgs(t testing.TB, dataDir string, httpPort, natsPort, pgPort int, extra ...string) *devRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &devRun{natsURL: fmt.Sprintf("nats://127.0.0.1:%d", natsPort), dataDir: dataDir, cancel: cancel, done: make(chan int, 1), out: &syncBuffer{}}
	args := []string{"dev", "--data-dir", dataDir, "--http", fmt.Sprintf("127.0.0.1:%d", httpPort),
		"--nats-port", fmt.Sprint(natsPort), "--leaf-port", "-1", "--pg-port", fmt.Sprint(pgPort), "--log-level", "warn",
		// Postgres-only: the private ClickHouse is covered by devch's tests
		// and TestBinaryDevStopsOnSignal, which runs dev with its defaults.
		"--no-clickhouse"}
	args = append(args, extra...)
	began := time.Now()
	go func() { r.done <- Main(ctx, args, r.out, r.out, func(string) string { return "" }) }()
	t.Cleanup(func() { r.stop(t) })
	url := fmt.Sprintf("http://127.0.0.1:%d/readyz", httpPort)
	natstest.CheckFor(t, 60*time.Second, 100*time.Millisecond, func() error {
		select {
		case code := <-r.done:
			r.done <- code
			t.Fatalf("infrapilot dev exited early with %d:\n%s", code, r.out.String())
		default:
		}
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})
	t.Logf("/readyz answered 200 after %s", time.Since(began).Round(time.Millisecond))
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if !strings.Contains(r.out.String(), "InfraPilot is running") {
			return fmt.Errorf("no start banner in the output:\n%s", r.out.String())
		}
		return nil
	})
	return r
}

func (r *devRun) stop(t testing.TB) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case code := <-r.done:
		if code != 0 {
			t.Errorf("infrapilot dev exited with %d:\n%s", code, r.out.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("infrapilot dev did not stop within 60s:\n%s", r.out.String())
	}
}

// processesUsing lists the pids whose command line mentions dir.
func processesUsing(dir string) []string {
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		if !e.IsDir() || strings.Trim(e.Name(), "0123456789") != "" {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if bytes.Contains(cmd, []byte(dir)) {
			out = append(out, e.Name()+": "+strings.ReplaceAll(string(cmd), "\x00", " "))
		}
	}
	return out
}

func dataDir(t testing.TB) string {
	dir := t.TempDir()
	// The private Postgres runs as the postgres user when the tests run as
	// root: it must be able to reach the data dir.
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "state")
}

func TestDevStartsStopsCleanlyAndKeepsStateAcrossRestarts(t *testing.T) {
	dir := dataDir(t)
	httpPort, natsPort, pgPort := freePort(t), freePort(t), freePort(t)

	run := startDev(t, dir, httpPort, natsPort, pgPort)
	ctx := context.Background()

	// Leave state in both stores: an event in JetStream and a row in Postgres.
	nc := run.connect(t)
	js, _ := jetstream.New(nc)
	env, _ := events.New(events.OrgCreated{Name: "Acme", Slug: "acme", Plan: "free"}, events.Aggregate{Type: "org", ID: "o1"},
		events.Meta{OrgID: "o1", Actor: events.SystemActor("test")})
	data, _ := env.Marshal()
	if _, err := js.Publish(ctx, events.DomainEvent("tenancy", "o1", "org", "o1"), data, jetstream.WithMsgID(env.ID)); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	pgURL := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/infrapilot?sslmode=disable", pgPort)
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE probe (v text); INSERT INTO probe VALUES ('kept')`); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	run.stop(t)
	if left := processesUsing(dir); len(left) > 0 {
		t.Fatalf("processes left running after stop:\n%s", strings.Join(left, "\n"))
	}

	// Second start on the same data dir (new ports: nothing depends on them).
	pgPort2 := freePort(t)
	run = startDev(t, dir, httpPort, natsPort, pgPort2)
	nc = run.connect(t)
	defer nc.Close()
	js, _ = jetstream.New(nc)
	stream, err := js.Stream(ctx, events.DomainStream("tenancy"))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := stream.GetLastMsgForSubject(ctx, events.DomainEvent("tenancy", "o1", "org", "o1"))
	if err != nil {
		t.Fatalf("event lost across restart: %v", err)
	}
	if back, err := events.Unmarshal(msg.Data); err != nil || back.ID != env.ID {
		t.Fatalf("event changed across restart: %v %+v", err, back)
	}
	conn, err = pgx.Connect(ctx, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/infrapilot?sslmode=disable", pgPort2))
	if err != nil {
		t.Fatal(err)
	}
	var v string
	if err := conn.QueryRow(ctx, `SELECT v FROM probe`).Scan(&v); err != nil || v != "kept" {
		t.Fatalf("row lost across restart: %v %q", err, v)
	}
	conn.Close(ctx)
	run.stop(t)
	if left := processesUsing(dir); len(left) > 0 {
		t.Fatalf("processes left running after the second stop:\n%s", strings.Join(left, "\n"))
	}
}

func TestCommandLine(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--help"}, 0, "infrapilot dev"},
		{[]string{"version"}, 0, "infrapilot dev"},
		{[]string{"dev", "--help"}, 0, "INFRAPILOT_DATA_DIR"},
		{[]string{"run", "--help"}, 0, "INFRAPILOT_NATS_URL"},
		{[]string{"migrate", "--help"}, 0, "INFRAPILOT_PG_URL"},
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"run"}, 2, "name at least one service"},
		{[]string{"run", "nosuch"}, 1, "unknown service"},
		{[]string{"migrate"}, 2, "--pg-url"},
		{[]string{"dev", "--log-level", "loud"}, 1, "log level"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var out syncBuffer
			code := Main(context.Background(), c.args, &out, &out, func(string) string { return "" })
			if code != c.code || !strings.Contains(out.String(), c.want) {
				t.Fatalf("exit %d (want %d), output lacks %q:\n%s", code, c.code, c.want, out.String())
			}
		})
	}
}

func TestEnvironmentSetsFlags(t *testing.T) {
	var out syncBuffer
	env := map[string]string{"INFRAPILOT_LOG_LEVEL": "loud"}
	code := Main(context.Background(), []string{"dev"}, &out, &out, func(k string) string { return env[k] })
	if code != 1 || !strings.Contains(out.String(), "log level") {
		t.Fatalf("INFRAPILOT_LOG_LEVEL was not read: exit %d\n%s", code, out.String())
	}
}
