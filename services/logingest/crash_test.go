package logingest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/app"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/infrapilot/infrapilot/services/internal/platform/natsx"
	"github.com/infrapilot/infrapilot/services/internal/platform/pg"
	"github.com/infrapilot/infrapilot/services/internal/platform/router"
	"github.com/infrapilot/infrapilot/services/logingest/internal/store"
	"github.com/infrapilot/infrapilot/services/logingest/internal/store/clickhouse"
	"github.com/infrapilot/infrapilot/services/logingest/internal/store/postgres"
	"github.com/prometheus/client_golang/prometheus"
)

// Environment of the helper process the crash test starts.
const (
	helperNATS = "LOGINGEST_TEST_HELPER_NATS"
	helperPG   = "LOGINGEST_TEST_HELPER_PG"
	helperCH   = "LOGINGEST_TEST_HELPER_CH"
	helperMode = "LOGINGEST_TEST_HELPER_MODE"
)

// Helper modes.
const (
	// modeHold never flushes: every batch stays unstored and unacked
	// until the process is killed.
	modeHold = "hold"
	// modeKillAfterInsert SIGKILLs itself right after its first store
	// write succeeded, before acknowledging anything.
	modeKillAfterInsert = "kill-after-insert"
	modeNormal          = "normal"
)

// TestHelperProcess is not a test: it is the log-ingest process that
// TestKill9MidBatch starts and kills. It runs a host until it is killed.
func TestHelperProcess(t *testing.T) {
	natsURL := os.Getenv(helperNATS)
	if natsURL == "" {
		t.Skip("the log-ingest process of TestKill9MidBatch; runs only when started by it")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	nc, err := natsx.Connect(natsx.ConnConfig{URL: natsURL, Name: "helper"}, log)
	if err != nil {
		t.Fatal(err)
	}
	js, err := natsx.JetStream(nc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{ClickHouseURL: os.Getenv(helperCH), Logs: ingestConfig(100 * time.Millisecond)}
	switch os.Getenv(helperMode) {
	case modeHold:
		cfg.Logs.FlushInterval = time.Hour
		cfg.Logs.MaxRows = 1 << 30
	case modeKillAfterInsert:
		cfg.Logs.FlushInterval = time.Hour
		cfg.Logs.MaxRows = 300 // the first flush happens mid-load
		cfg.wrapStore = func(s store.Store) store.Store { return killAfterInsert{s} }
	}
	h, err := app.New(app.Config{Instance: "helper", Version: "test", PostgresURL: os.Getenv(helperPG), Topology: events.DefaultTopology(),
		Router: router.Config{AckWait: 3 * time.Second}}, nc, js, log, prometheus.NewRegistry(), []app.Module{Module(cfg)})
	if err != nil {
		t.Fatal(err)
	}
	// Runs until SIGKILL: no orderly stop is ever asked for.
	_ = h.Run(context.Background())
}

// killAfterInsert is a store that dies the moment its first line insert
// has succeeded: the lines are stored, their messages never acked.
type killAfterInsert struct{ store.Store }

func (k killAfterInsert) InsertLines(ctx context.Context, lines []store.Line) error {
	if err := k.Store.InsertLines(ctx, lines); err != nil {
		return err
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // never returns: the process is gone
}

type child struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
}

func (e *env) startChild(mode string) *child {
	e.t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperNATS+"="+e.srv.URL(), helperPG+"="+e.pgURL, helperCH+"="+e.chURL, helperMode+"="+mode)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	c := &child{cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(c.done)
	}()
	e.t.Cleanup(func() {
		c.kill()
		if e.t.Failed() {
			e.t.Logf("%s child output:\n%s", mode, out.String())
		}
	})
	return c
}

func (c *child) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

// ackPending is how many LOGS messages the log consumer holds unacked.
func (e *env) ackPending() (pending int, waiting uint64) {
	c, err := e.js.Consumer(context.Background(), events.StreamLogs, LogsConsumer)
	if err != nil {
		return 0, 0
	}
	info, err := c.Info(context.Background())
	if err != nil {
		return 0, 0
	}
	return info.NumAckPending, info.NumPending
}

// TestKill9MidBatch kills the log-ingest process with SIGKILL twice: once
// holding a fetched batch that is not stored yet, once right after a store
// write and before its acks. After a restart every line is stored exactly
// once.
func TestKill9MidBatch(t *testing.T) {
	for _, kind := range stores {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, kind)
			start := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
			batches := chain("c1", start, 100, 10, func(i int) string { return fmt.Sprintf("line %d", i) })
			publish := func(from, to int) {
				for _, b := range batches[from:to] {
					e.publish(events.AgentLogs("orgA", "a1"), b, msgID("orgA", "a1", b))
				}
			}

			// 1. Killed holding 40 fetched, unstored messages.
			first := e.startChild(modeHold)
			publish(0, 40)
			natstest.CheckFor(t, 30*time.Second, 10*time.Millisecond, func() error {
				if p, w := e.ackPending(); p != 40 || w != 0 {
					return fmt.Errorf("%d messages fetched, %d waiting", p, w)
				}
				return nil
			})
			first.kill()
			if n := len(e.stored("orgA")); n != 0 {
				t.Fatalf("%d lines stored by a consumer that never flushed", n)
			}

			// 2. Killed right after storing its first batch of 30+ messages,
			// before any ack.
			second := e.startChild(modeKillAfterInsert)
			publish(40, 70)
			select {
			case <-second.done:
			case <-time.After(60 * time.Second):
				t.Fatal("the second process never stored a batch")
			}
			stored := len(e.stored("orgA"))
			if stored == 0 {
				t.Fatal("the second process died without storing")
			}
			t.Logf("killed after storing %d lines, none acked", stored)

			// 3. A normal process takes over and redelivery fills the rest.
			e.startChild(modeNormal)
			publish(70, 100)
			natstest.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
				if n := len(e.stored("orgA")); n != 1000 {
					return fmt.Errorf("%d lines stored, want 1000", n)
				}
				return nil
			})
			seen := map[string]bool{}
			for _, l := range e.stored("orgA") {
				if seen[l.Raw] {
					t.Fatalf("line %q stored twice", l.Raw)
				}
				seen[l.Raw] = true
			}
			for i := range 1000 {
				if !seen[fmt.Sprintf("line %d", i)] {
					t.Fatalf("line %d lost", i)
				}
			}
		})
	}
}

// stored reads org's lines of the last day from the store itself, with
// no service running.
func (e *env) stored(org string) []store.Line {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var st store.Store
	if e.chURL != "" {
		chs, err := clickhouse.Open(ctx, e.chURL)
		if err != nil {
			e.t.Fatal(err)
		}
		st = chs
	} else {
		pool, err := pg.Open(ctx, e.pgURL, Name, slog.New(slog.DiscardHandler))
		if err != nil {
			e.t.Fatal(err)
		}
		defer pool.Close()
		st = postgres.New(pool)
	}
	defer st.Close()
	f := store.Filter{OrgID: org, From: time.Now().Add(-24 * time.Hour), To: time.Now().Add(time.Hour), Limit: 1000}
	var out []store.Line
	for {
		page, err := st.QueryLines(ctx, f)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, page...)
		if len(page) < f.Limit {
			return out
		}
		k := page[len(page)-1].Key()
		f.After = &k
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
