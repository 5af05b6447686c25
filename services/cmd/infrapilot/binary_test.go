package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/infrapilot/infrapilot/services/internal/platform/pgtest"
	"github.com/nats-io/nats.go/jetstream"
)

// TestBinaryDevStopsOnSignal builds the real binary, runs `infrapilot dev`
// as a separate process the way README says, and stops it with SIGINT
// (Ctrl-C): it must exit 0 and leave no child process behind.
func TestBinaryDevStopsOnSignal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "infrapilot")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	dir := dataDir(t)
	httpPort := freePort(t)
	var out syncBuffer
	cmd := exec.Command(bin, "dev", "--data-dir", dir, "--http", fmt.Sprintf("127.0.0.1:%d", httpPort),
		"--nats-port", "0", "--leaf-port", "-1", "--pg-port", "0")
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(os.Environ(), "INFRAPILOT_LOG_LEVEL=warn")
	began := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
	natstest.CheckFor(t, 60*time.Second, 100*time.Millisecond, func() error {
		select {
		case err := <-exited:
			t.Fatalf("exited early: %v\n%s", err, out.String())
		default:
		}
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", httpPort))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})
	t.Logf("binary: /readyz 200 after %s", time.Since(began).Round(time.Millisecond))
	if len(processesUsing(dir)) < 2 {
		t.Fatalf("expected infrapilot and its postgres to run:\n%s", strings.Join(processesUsing(dir), "\n"))
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGINT: %v\n%s", err, out.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("did not stop within 60s of SIGINT\n%s", out.String())
	}
	natstest.CheckFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		if left := processesUsing(dir); len(left) > 0 {
			return fmt.Errorf("left running:\n%s", strings.Join(left, "\n"))
		}
		return nil
	})
}

// TestRunGatewayAgainstExternalNATS runs `infrapilot run gateway <every
// service>` against a NATS server and a Postgres it did not start.
func TestRunGatewayAgainstExternalNATS(t *testing.T) {
	srv := natstest.Run(t)
	pgURL := pgtest.URL(t)
	args := append([]string{"run", "--nats-url", srv.URL(), "--pg-url", pgURL, "--http", "", "gateway"}, names(modules())...)
	httpPort := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan int, 1)
	go func() {
		args[6] = fmt.Sprintf("127.0.0.1:%d", httpPort)
		done <- Main(ctx, args, &out, &out, func(string) string { return "" })
	}()
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", httpPort))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})
	// The process created the streams on the external server. (Only look:
	// updating streams here while the services create their consumers
	// trips a data race inside nats-server 2.15.2.)
	js, err := jetstream.New(srv.Connect())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(context.Background(), "TENANCY"); err != nil {
		t.Fatalf("streams not ensured: %v", err)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("did not stop")
	}
}
