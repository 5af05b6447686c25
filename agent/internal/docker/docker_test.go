package docker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/infrapilot/infrapilot/agent/internal/docker"
	"github.com/infrapilot/infrapilot/agent/internal/dockertest"
	"github.com/infrapilot/infrapilot/events"
)

// counter logs "line 0", "line 1", … every 50 ms.
var counter = []string{"sh", "-c", "i=0; while true; do echo line $i; i=$((i+1)); usleep 50000; done"}

func newClient(t *testing.T) (*docker.Client, docker.Engine) {
	t.Helper()
	c, err := docker.New(dockertest.Host(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	e, err := c.Engine(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	return c, e
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func code(err error) events.Code { return events.ErrorCode(err) }

func TestContainerLifecycle(t *testing.T) {
	t.Parallel()
	c, eng := newClient(t)
	raw := dockertest.Client(t)
	name := dockertest.Name(t, "web")
	id := dockertest.Run(t, raw, dockertest.Spec{Name: name, Cmd: counter,
		Labels: map[string]string{docker.LabelComposeProject: "shop", docker.LabelComposeService: "web"}})
	t.Logf("engine: %s (API %s)", eng, eng.APIVersion)

	list, err := c.Containers(ctx(t), false)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(list, func(x events.Container) bool { return x.ID == id })
	if i < 0 {
		t.Fatalf("container %s not listed: %+v", id, list)
	}
	got := list[i]
	if got.Name != name || got.State != "running" || got.Stack != "shop" || got.Service != "web" || got.Image == "" {
		t.Fatalf("summary = %+v", got)
	}

	// By name, by id prefix, and the full detail.
	for _, ref := range []string{name, id[:12], id} {
		d, err := c.Container(ctx(t), ref)
		if err != nil {
			t.Fatalf("inspect %s: %v", ref, err)
		}
		if d.ID != id || d.Name != name || d.State != "running" || d.StartedAt.IsZero() || d.Cmd[0] != "sh" {
			t.Fatalf("detail = %+v", d)
		}
		if !slices.Contains(d.EnvKeys, "PATH") {
			t.Fatalf("env keys %v lack PATH", d.EnvKeys)
		}
	}

	zero := 0
	if s, err := c.Stop(ctx(t), id, &zero); err != nil || s.State != "exited" {
		t.Fatalf("stop: %+v %v", s, err)
	}
	if s, err := c.Stop(ctx(t), id, &zero); err != nil || s.State != "exited" {
		t.Fatalf("stopping a stopped container: %+v %v", s, err)
	}
	if s, err := c.Start(ctx(t), id); err != nil || s.State != "running" {
		t.Fatalf("start: %+v %v", s, err)
	}
	if s, err := c.Start(ctx(t), id); err != nil || s.State != "running" {
		t.Fatalf("starting a running container: %+v %v", s, err)
	}
	before, _ := c.Container(ctx(t), id)
	if s, err := c.Restart(ctx(t), id, &zero); err != nil || s.State != "running" {
		t.Fatalf("restart: %+v %v", s, err)
	}
	after, _ := c.Container(ctx(t), id)
	if !after.StartedAt.After(before.StartedAt) {
		t.Fatalf("restart did not restart: started %s then %s", before.StartedAt, after.StartedAt)
	}

	// The last lines of the log, in order. The counter restarted twice,
	// so only the order within the tail is checked.
	dockertest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		lines, err := c.Tail(ctx(t), id, 5, time.Time{})
		if err != nil {
			return err
		}
		if len(lines) != 5 {
			return fmt.Errorf("tail gave %d lines", len(lines))
		}
		var prev int = -1
		for _, l := range lines {
			var n int
			if _, err := fmt.Sscanf(l.Text, "line %d", &n); err != nil || l.Stream != events.StreamStdout || l.Time.IsZero() {
				return fmt.Errorf("line %+v", l)
			}
			if prev >= 0 && n != prev+1 && n != 0 {
				return fmt.Errorf("lines out of order: %d after %d", n, prev)
			}
			prev = n
		}
		return nil
	})
}

func TestErrors(t *testing.T) {
	t.Parallel()
	c, eng := newClient(t)
	raw := dockertest.Client(t)

	if _, err := c.Container(ctx(t), "no-such-container"); code(err) != events.CodeNotFound {
		t.Fatalf("unknown container: %v", err)
	}
	for _, ref := range []string{"", "../images/json", "a?b", "x/y", ".hidden"} {
		if _, err := c.Start(ctx(t), ref); code(err) != events.CodeInvalid {
			t.Fatalf("ref %q: %v", ref, err)
		}
	}

	// A duplicate container name: Docker answers 409, podman 500 with
	// "…is already in use". Both are a conflict.
	name := dockertest.Name(t, "dup")
	dockertest.Run(t, raw, dockertest.Spec{Name: name, Cmd: []string{"true"}, NoStart: true})
	_, err := raw.ContainerCreate(ctx(t), &container.Config{Image: dockertest.Image}, nil, nil, nil, name)
	if err == nil {
		t.Fatal("duplicate name accepted")
	}
	if got := code(docker.MapError(err, "container")); got != events.CodeConflict {
		t.Fatalf("%s: duplicate name is %s (%v), want conflict", eng.Name, got, err)
	}
}

func TestHealthCheck(t *testing.T) {
	t.Parallel()
	c, eng := newClient(t)
	raw := dockertest.Client(t)
	id := dockertest.Run(t, raw, dockertest.Spec{Name: dockertest.Name(t, "hc"), Cmd: []string{"sleep", "600"},
		Health: []string{"CMD", "true"}})
	if eng.Podman() {
		// Podman runs health checks from systemd timers; without systemd
		// they never run and the container stays "starting". The agent
		// reports what the engine says and relies on health for nothing.
		d, err := c.Container(ctx(t), id)
		if err != nil || d.Health != "starting" {
			t.Fatalf("podman health = %q, %v", d.Health, err)
		}
		return
	}
	dockertest.CheckFor(t, 20*time.Second, 200*time.Millisecond, func() error {
		d, err := c.Container(ctx(t), id)
		if err != nil || d.Health != "healthy" {
			return fmt.Errorf("health %q, %v", d.Health, err)
		}
		return nil
	})
}

func TestNetworks(t *testing.T) {
	t.Parallel()
	c, eng := newClient(t)
	raw := dockertest.Client(t)
	id := dockertest.Run(t, raw, dockertest.Spec{Name: dockertest.Name(t, "net"), Cmd: []string{"sleep", "600"}})

	nets, err := c.Networks(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, n := range nets {
		names[n.Name] = true
	}
	// The default network is "bridge" in both engines' lists; podman
	// calls it "podman" in a container's settings, which the agent maps
	// back so that a container's networks are always listed networks.
	if !names["bridge"] {
		t.Fatalf("%s: no bridge network in %v", eng.Name, names)
	}
	cn, err := c.ContainerNetworks(ctx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if len(cn) != 1 || cn[0].Name != "bridge" || cn[0].IPAddress == "" || cn[0].NetworkID == "" {
		t.Fatalf("container networks = %+v", cn)
	}

	netName := dockertest.Name(t, "n")
	if _, err := raw.NetworkCreate(ctx(t), netName, network.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.NetworkRemove(context.Background(), netName) })
	if err := c.Connect(ctx(t), netName, id, []string{"app"}); err != nil {
		t.Fatal(err)
	}
	// Attaching twice: Docker 403, podman 500 — a conflict for both.
	if err := c.Connect(ctx(t), netName, id, nil); code(err) != events.CodeConflict {
		t.Fatalf("%s: second connect: %v", eng.Name, err)
	}
	cn, err = c.ContainerNetworks(ctx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	var attached []string
	for _, n := range cn {
		attached = append(attached, n.Name)
	}
	if !slices.Equal(attached, []string{"bridge", netName}) {
		t.Fatalf("attached to %v", attached)
	}
	list, err := c.Containers(ctx(t), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range list {
		if x.ID == id && !slices.Equal(x.Networks, []string{"bridge", netName}) {
			t.Fatalf("summary networks %v", x.Networks)
		}
	}
	if err := c.Disconnect(ctx(t), netName, id); err != nil {
		t.Fatal(err)
	}
	if cn, _ = c.ContainerNetworks(ctx(t), id); len(cn) != 1 {
		t.Fatalf("after disconnect: %+v", cn)
	}
}

func TestStacks(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	raw := dockertest.Client(t)
	stack := dockertest.Name(t, "stack")
	for _, svc := range []string{"web", "db"} {
		dockertest.Run(t, raw, dockertest.Spec{Name: dockertest.Name(t, svc), Cmd: []string{"sleep", "600"},
			Labels: map[string]string{docker.LabelComposeProject: stack, docker.LabelComposeService: svc}})
	}
	dockertest.Run(t, raw, dockertest.Spec{Name: dockertest.Name(t, "worker"), Cmd: []string{"true"}, NoStart: true,
		Labels: map[string]string{docker.LabelComposeProject: stack, docker.LabelComposeService: "worker"}})
	stacks, err := c.Stacks(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(stacks, func(s events.Stack) bool { return s.Name == stack })
	if i < 0 {
		t.Fatalf("stack %s missing in %+v", stack, stacks)
	}
	s := stacks[i]
	if s.Total != 3 || s.Running != 2 || !slices.Equal(s.Services, []string{"db", "web", "worker"}) {
		t.Fatalf("stack = %+v", s)
	}
}

func TestExecWithTTY(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	raw := dockertest.Client(t)
	id := dockertest.Run(t, raw, dockertest.Spec{Name: dockertest.Name(t, "exec"), Cmd: []string{"sleep", "600"}})

	ex, err := c.Exec(ctx(t), id, docker.ExecOptions{Cmd: []string{"sh"}, TTY: true, Rows: 24, Cols: 80})
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Close()
	if err := ex.Resize(ctx(t), 40, 100); err != nil {
		t.Fatal(err)
	}
	if err := ex.Resize(ctx(t), 0, 100); code(err) != events.CodeInvalid {
		t.Fatalf("zero rows: %v", err)
	}
	if _, err := io.WriteString(ex, "stty size; echo hello; exit 3\n"); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(ex)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "40 100\r\n") || !strings.Contains(string(out), "hello\r\n") {
		t.Fatalf("output %q", out)
	}
	if rc, err := ex.Wait(ctx(t)); err != nil || rc != 3 {
		t.Fatalf("exit %d, %v", rc, err)
	}
	if err := ex.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestExecWithoutTTY(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	raw := dockertest.Client(t)
	id := dockertest.Run(t, raw, dockertest.Spec{Name: dockertest.Name(t, "exec"), Cmd: []string{"sleep", "600"}})

	ex, err := c.Exec(ctx(t), id, docker.ExecOptions{Cmd: []string{"sh", "-c", "echo out; echo err >&2; read x; echo got $x"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ex.Resize(ctx(t), 10, 10); code(err) != events.CodeInvalid {
		t.Fatalf("resize without a terminal: %v", err)
	}
	io.WriteString(ex, "ping\n")
	out, err := io.ReadAll(ex)
	if err != nil {
		t.Fatal(err)
	}
	// stdout and stderr travel through separate pipes in the engine, so
	// only each stream's own order is guaranteed: "err" may come after
	// "got ping".
	o := string(out)
	if len(o) != len("out\nerr\ngot ping\n") || !strings.Contains(o, "err\n") ||
		strings.Replace(o, "err\n", "", 1) != "out\ngot ping\n" {
		t.Fatalf("output %q", out)
	}
	if err := ex.Close(); err != nil {
		t.Fatal(err)
	}
}

// Closing a session whose shell is still waiting for input ends it: the
// shell reads EOF.
func TestExecCleanClose(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	raw := dockertest.Client(t)
	id := dockertest.Run(t, raw, dockertest.Spec{Name: dockertest.Name(t, "exec"), Cmd: []string{"sleep", "600"}})
	for _, tty := range []bool{false, true} {
		ex, err := c.Exec(ctx(t), id, docker.ExecOptions{Cmd: []string{"sh"}, TTY: tty, Rows: 24, Cols: 80})
		if err != nil {
			t.Fatal(err)
		}
		if err := ex.Close(); err != nil {
			t.Fatalf("tty=%v: close: %v", tty, err)
		}
		if rc, err := ex.Wait(ctx(t)); err != nil {
			t.Fatalf("tty=%v: exit %d, %v", tty, rc, err)
		}
	}
}

func TestEvents(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	raw := dockertest.Client(t)
	ectx, cancel := context.WithCancel(ctx(t))
	evs, errs := c.Events(ectx, time.Time{})
	name := dockertest.Name(t, "ev")
	id := dockertest.Run(t, raw, dockertest.Spec{Name: name, Cmd: []string{"sh", "-c", "sleep 600"}})
	zero := 0
	if _, err := c.Restart(ctx(t), id, &zero); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stop(ctx(t), id, &zero); err != nil {
		t.Fatal(err)
	}
	var got []string
	var died *events.AgentDockerEvent
	timeout := time.After(20 * time.Second)
	for len(got) < 5 {
		select {
		case ev := <-evs:
			if ev.Container != id {
				continue
			}
			if ev.Name != name || ev.Time.IsZero() || ev.V != events.TelemetryVersion || ev.Kind != events.AgentEventKindDocker {
				t.Fatalf("event %+v", ev)
			}
			got = append(got, ev.Action)
			if ev.Action == events.DockerDie {
				died = &ev
			}
		case err := <-errs:
			t.Fatalf("events stream ended: %v (got %v)", err, got)
		case <-timeout:
			t.Fatalf("got only %v", got)
		}
	}
	// start; restart, then the die/start pair of the restart (the order
	// of "restart" within it differs between engines); die of the stop.
	if got[0] != "start" || got[4] != "die" || !slices.Contains(got[1:4], "restart") {
		t.Fatalf("actions %v", got)
	}
	if died == nil || died.ExitCode == nil {
		t.Fatalf("die without exit code: %+v", died)
	}
	cancel()
	for range evs {
	}
	if err := <-errs; err != nil {
		t.Fatalf("after cancel: %v", err)
	}
}

func TestStats(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	raw := dockertest.Client(t)
	id := dockertest.Run(t, raw, dockertest.Spec{Name: dockertest.Name(t, "busy"),
		Cmd: []string{"sh", "-c", "while true; do :; done"}})
	first, err := c.Stats(ctx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if first.ID != id || first.MemUsage == 0 || first.PIDs == 0 || first.CPUTotal == 0 {
		t.Fatalf("stats %+v", first)
	}
	dockertest.CheckFor(t, 10*time.Second, 200*time.Millisecond, func() error {
		cur, err := c.Stats(ctx(t), id)
		if err != nil {
			return err
		}
		// A busy loop uses most of one CPU.
		if p := docker.CPUPercent(first, cur); p < 20 || p > 210 {
			return fmt.Errorf("cpu %.1f%%", p)
		}
		return nil
	})
	if _, err := c.Stats(ctx(t), "no-such-container"); code(err) != events.CodeNotFound {
		t.Fatalf("unknown container: %v", err)
	}
}

func TestUnreachableEngine(t *testing.T) {
	t.Parallel()
	c, err := docker.New("unix:///nonexistent/docker.sock")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Containers(ctx(t), false)
	var e *events.Error
	if !errors.As(err, &e) || e.Code != events.CodeUnavailable {
		t.Fatalf("unreachable engine: %v", err)
	}
}
