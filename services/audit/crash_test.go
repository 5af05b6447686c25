package audit_test

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
	"github.com/infrapilot/infrapilot/services/audit"
	"github.com/infrapilot/infrapilot/services/internal/platform/app"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/infrapilot/infrapilot/services/internal/platform/natsx"
	"github.com/infrapilot/infrapilot/services/internal/platform/router"
	"github.com/prometheus/client_golang/prometheus"
)

// Environment of the helper process TestKill9MidLoad starts.
const (
	helperNATS = "AUDIT_TEST_HELPER_NATS"
	helperPG   = "AUDIT_TEST_HELPER_PG"
)

// TestHelperProcess is not a test: it is the audit service process that
// TestKill9MidLoad starts and kills. It runs a host until it is killed.
func TestHelperProcess(t *testing.T) {
	natsURL, pgURL := os.Getenv(helperNATS), os.Getenv(helperPG)
	if natsURL == "" {
		t.Skip("the audit service process of TestKill9MidLoad; runs only when started by it")
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
	h, err := app.New(app.Config{Instance: "helper", Version: "test", PostgresURL: pgURL, Topology: events.DefaultTopology(),
		Router: router.Config{AckWait: 5 * time.Second}},
		nc, js, log, prometheus.NewRegistry(), []app.Module{audit.Module(testConfig())})
	if err != nil {
		t.Fatal(err)
	}
	// Runs until SIGKILL: no orderly stop is ever asked for.
	_ = h.Run(context.Background())
}

// child is a running helper process.
type child struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
}

func (e *env) startChild(name string) *child {
	e.t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperNATS+"="+e.srv.URL(), helperPG+"="+e.pgURL)
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
			e.t.Logf("%s output:\n%s", name, out.String())
		}
	})
	return c
}

// kill sends SIGKILL and waits for the process to be gone.
func (c *child) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

// TestKill9MidLoad kills the audit service process with SIGKILL in the
// middle of a load — appends in flight, source events unacknowledged — and
// starts a new one: every chain is one line with every event exactly once,
// and verifies.
func TestKill9MidLoad(t *testing.T) {
	e := newEnv(t)
	first := e.startChild("first")
	// The writer runs once the signing key's announcement is chained.
	e.waitChained(events.PlatformOrg, 1, 90*time.Second)

	var killedAt uint64
	want, _ := e.loadWhile(t, "kill", 5, 2000, func(chained func() uint64) {
		natstest.CheckFor(t, 60*time.Second, 2*time.Millisecond, func() error {
			if c := chained(); c < 500 {
				return fmt.Errorf("%d chained", c)
			}
			return nil
		})
		first.kill()
		killedAt = chained()
		e.startChild("second")
	})
	t.Logf("killed after %d entries", killedAt)
	for org, ids := range want {
		e.waitChained(org, len(ids), 120*time.Second)
	}
	for org, ids := range want {
		e.checkLinear(org, ids)
		e.waitProjected(org, len(ids), 60*time.Second)
		if v := e.verify(org, events.AuditVerifyRequest{}); !v.OK {
			t.Fatalf("verify %s: %+v", org, v)
		}
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
