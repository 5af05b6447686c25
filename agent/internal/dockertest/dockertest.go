// Package dockertest runs containers on a real Docker-API engine for the
// agent's tests: podman's compatible service started by
// deploy/test/podman.sh (or a Docker engine), named by the environment
// variable INFRAPILOT_TEST_DOCKER_HOST. A test that needs the engine
// fails, never skips, when the variable is unset: CI must provide it.
package dockertest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
)

// EnvHost is the environment variable naming the engine.
const EnvHost = "INFRAPILOT_TEST_DOCKER_HOST"

// Image is the image tests run: a busybox built locally by
// deploy/test/podman.sh (no registry is reachable from CI).
const Image = "localhost/busybox:latest"

// Host returns the engine's address or fails the test.
func Host(t testing.TB) string {
	t.Helper()
	h := os.Getenv(EnvHost)
	if h == "" {
		t.Fatalf("%s is unset: start an engine with `export %s=$(deploy/test/podman.sh start)`", EnvHost, EnvHost)
	}
	return h
}

// Client returns a raw engine client closed at the end of the test.
func Client(t testing.TB) *client.Client {
	t.Helper()
	c, err := client.NewClientWithOpts(client.WithHost(Host(t)), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Spec describes a test container.
type Spec struct {
	Name   string
	Cmd    []string
	Labels map[string]string
	TTY    bool
	// Health, when set, is a health check command.
	Health []string
	// NoStart creates the container without starting it.
	NoStart bool
}

// Run creates and starts a container; it is removed at the end of the
// test, with the conmon processes podman leaves behind.
func Run(t testing.TB, c *client.Client, s Spec) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := &container.Config{Image: Image, Cmd: s.Cmd, Labels: s.Labels, Tty: s.TTY}
	if len(s.Health) > 0 {
		cfg.Healthcheck = &container.HealthConfig{Test: s.Health, Interval: time.Second, Retries: 1}
	}
	created, err := c.ContainerCreate(ctx, cfg, nil, nil, nil, s.Name)
	if err != nil {
		t.Fatalf("create %s: %v", s.Name, err)
	}
	t.Cleanup(func() { Remove(t, c, created.ID) })
	if !s.NoStart {
		if err := c.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
			t.Fatalf("start %s: %v", s.Name, err)
		}
	}
	return created.ID
}

// Remove force-removes a container and kills, by PID, the conmon
// processes podman keeps for it (one per container, one per exec, for
// up to five minutes).
func Remove(t testing.TB, c *client.Client, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.ContainerRemove(ctx, id, container.RemoveOptions{Force: true}); err != nil && !client.IsErrNotFound(err) {
		t.Logf("remove %s: %v", id, err)
	}
	KillConmon(id)
}

// KillConmon kills the conmon processes whose command line names the
// container id. It only sees processes of this machine, which is where
// deploy/test/podman.sh runs the engine.
func KillConmon(id string) int {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	n := 0
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte("conmon")) || !bytes.Contains(b, []byte(id)) {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if filepath.Base(args[0]) != "conmon" {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			n++
		}
	}
	return n
}

// Name returns a container name unique to the test.
func Name(t testing.TB, suffix string) string {
	base := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return '-'
	}, t.Name())
	if len(base) > 40 {
		base = base[:40]
	}
	return fmt.Sprintf("ip-%s-%s-%d", strings.Trim(base, "-"), suffix, time.Now().UnixNano()%1e6)
}

// CheckFor polls fn every interval until it returns nil, or fails the
// test with fn's last error after timeout. Tests wait with it, never with
// time.Sleep.
func CheckFor(t testing.TB, timeout, interval time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %s: %v", timeout, err)
		}
		time.Sleep(interval)
	}
}
