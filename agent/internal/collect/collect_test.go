package collect_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/agent/internal/collect"
	"github.com/infrapilot/infrapilot/agent/internal/docker"
	"github.com/infrapilot/infrapilot/agent/internal/dockertest"
	"github.com/infrapilot/infrapilot/agent/internal/hubtest"
	"github.com/infrapilot/infrapilot/agent/internal/outbox"
	"github.com/infrapilot/infrapilot/agent/internal/state"
	"github.com/infrapilot/infrapilot/events"
)

const org, agent = "org1", "agent1"

// env is one agent's collector plumbing against a hub.
type env struct {
	t     *testing.T
	hub   *hubtest.Hub
	dir   state.Dir
	dc    *docker.Client
	ob    *outbox.Outbox
	stops []func()
}

func newEnv(t *testing.T) *env {
	t.Helper()
	d, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dc, err := docker.New(dockertest.Host(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dc.Close() })
	e := &env{t: t, hub: hubtest.Start(t), dir: d, dc: dc}
	e.openOutbox()
	t.Cleanup(e.stopAll)
	return e
}

// openOutbox opens the agent's outbox and runs its forwarder.
func (e *env) openOutbox() {
	e.t.Helper()
	ob, err := outbox.Open(outbox.Config{StateDir: e.dir.Path(), Name: "agent-" + agent, MaxBackoff: 200 * time.Millisecond,
		Leaf: outbox.LeafConfig{HubURL: e.hub.LeafURL()}})
	if err != nil {
		e.t.Fatal(err)
	}
	e.ob = ob
	e.goRun(ob.Run)
	e.stops = append(e.stops, func() { ob.Close() })
}

// goRun runs fn until the returned stop (or the end of the test).
func (e *env) goRun(fn func(context.Context) error) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := fn(ctx); err != nil {
			e.t.Error(err)
		}
	}()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	e.stops = append(e.stops, stop)
	return stop
}

// restartOutbox stops every collector and the outbox, then opens the
// outbox again on the same state directory: an agent restart.
func (e *env) restartOutbox() {
	e.stopAll()
	e.openOutbox()
}

func (e *env) stopAll() {
	for i := len(e.stops) - 1; i >= 0; i-- {
		e.stops[i]()
	}
	e.stops = nil
}

// batches returns the hub's log batches of one container, in order.
func (e *env) batches(container string) []events.AgentLogBatch {
	e.t.Helper()
	msgs, err := e.hub.Messages(events.StreamLogs, events.AgentLogs(org, agent))
	if err != nil {
		e.t.Fatal(err)
	}
	var out []events.AgentLogBatch
	for _, m := range msgs {
		var b events.AgentLogBatch
		if err := json.Unmarshal(m.Data, &b); err != nil {
			e.t.Fatal(err)
		}
		if b.Container == container {
			out = append(out, b)
		}
	}
	return out
}

func countLines(bs []events.AgentLogBatch) int {
	n := 0
	for _, b := range bs {
		n += len(b.Lines)
	}
	return n
}

func (e *env) startLogs() func() {
	l, err := collect.NewLogs(collect.LogsConfig{Subject: events.AgentLogs(org, agent), MaxLines: 100,
		FlushInterval: 100 * time.Millisecond, ResyncInterval: time.Second}, e.dc, e.ob, e.dir)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.goRun(l.Run)
}

// The log of a container writing 2×1500 numbered lines (stdout and
// stderr, many per second: podman stamps whole seconds) reaches the hub
// with every line exactly once and in order, across two agent restarts:
// a clean one, and one where the last batch's commit was lost after it
// had been stored (the batch is re-formed identically and de-duplicated).
func TestLogsEveryLineOnceAcrossRestarts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	raw := dockertest.Client(t)
	const n = 1500
	id := dockertest.Run(t, raw, dockertest.Spec{Name: dockertest.Name(t, "log"), Cmd: []string{"sh", "-c",
		fmt.Sprintf("i=0; while [ $i -lt %d ]; do echo out $i; echo err $i >&2; i=$((i+1)); usleep 1500; done; sleep 600", n)}})

	e.startLogs()
	waitLines(t, e, id, 300)
	e.restartOutbox() // restart 1: clean

	// Restart 2: make the state say that the last batch stored was only
	// intended, as if the agent died between storing and committing it.
	e.startLogs()
	waitLines(t, e, id, countLines(e.batches(id))+300)
	e.restartOutbox()
	// The last batch the follower stored may still be in the outbox, on
	// its way to the hub: wait until the hub has the batch ending at the
	// committed position, so "the last batch" below is really the last.
	var marks struct {
		Containers map[string]struct {
			Committed events.LogPosition `json:"committed"`
		} `json:"containers"`
	}
	if err := e.dir.ReadJSON(state.LogsFile, &marks); err != nil {
		t.Fatal(err)
	}
	committed := marks.Containers[id].Committed
	var last events.AgentLogBatch
	dockertest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		bs := e.batches(id)
		last = bs[len(bs)-1]
		if !last.To.Time.Equal(committed.Time) || last.To.Stdout != committed.Stdout || last.To.Stderr != committed.Stderr {
			return fmt.Errorf("hub's last batch ends at %+v, committed is %+v", last.To, committed)
		}
		return nil
	})
	var doc map[string]any
	if err := e.dir.ReadJSON(state.LogsFile, &doc); err != nil {
		t.Fatal(err)
	}
	doc["containers"].(map[string]any)[id] = map[string]any{"committed": last.From, "pending": last.To}
	if err := e.dir.WriteJSON(state.LogsFile, doc); err != nil {
		t.Fatal(err)
	}
	e.startLogs()
	waitLines(t, e, id, 2*n)
	checkLog(t, e.batches(id), n)
	// The batch re-formed after restart 2 reached the hub again, which
	// recognised it.
	if s := e.ob.Stats(context.Background()); s.Duplicates != 1 {
		t.Fatalf("outbox after restart 2: %+v", s)
	}
}

func waitLines(t *testing.T, e *env, id string, want int) {
	t.Helper()
	dockertest.CheckFor(t, 60*time.Second, 100*time.Millisecond, func() error {
		if got := countLines(e.batches(id)); got < want {
			return fmt.Errorf("hub has %d lines of %d", got, want)
		}
		return nil
	})
}

// checkLog checks that batches chain without gap or overlap and hold
// "out i" and "err i" for i < n, each once, each stream in order.
func checkLog(t *testing.T, bs []events.AgentLogBatch, n int) {
	t.Helper()
	next := map[string]int{events.StreamStdout: 0, events.StreamStderr: 0}
	prefix := map[string]string{events.StreamStdout: "out", events.StreamStderr: "err"}
	for i, b := range bs {
		if i > 0 && !b.From.Time.Equal(bs[i-1].To.Time) || i > 0 && (b.From.Stdout != bs[i-1].To.Stdout || b.From.Stderr != bs[i-1].To.Stderr) {
			t.Fatalf("batch %d starts at %+v, the one before ended at %+v", i, b.From, bs[i-1].To)
		}
		for _, l := range b.Lines {
			want := fmt.Sprintf("%s %d", prefix[l.Stream], next[l.Stream])
			if l.Text != want {
				t.Fatalf("batch %d: line %q, want %q", i, l.Text, want)
			}
			next[l.Stream]++
		}
	}
	if next[events.StreamStdout] != n || next[events.StreamStderr] != n {
		t.Fatalf("got %v lines", next)
	}
}

func TestEventsCollector(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	raw := dockertest.Client(t)
	ev, err := collect.NewEvents(collect.EventsConfig{Subject: events.AgentEvents(org, agent)}, e.dc, e.ob, e.dir)
	if err != nil {
		t.Fatal(err)
	}
	e.goRun(ev.Run)
	id := dockertest.Run(t, raw, dockertest.Spec{Name: dockertest.Name(t, "ev"), Cmd: []string{"sleep", "600"}})
	zero := 0
	if _, err := e.dc.Restart(context.Background(), id, &zero); err != nil {
		t.Fatal(err)
	}
	if _, err := e.dc.Stop(context.Background(), id, &zero); err != nil {
		t.Fatal(err)
	}
	want := []string{"start", "restart", "die", "start", "die"}
	got := waitEvents(t, e, id, len(want))
	// An agent restart replays the engine's events since the cursor: the
	// copies are de-duplicated.
	e.restartOutbox()
	ev, err = collect.NewEvents(collect.EventsConfig{Subject: events.AgentEvents(org, agent)}, e.dc, e.ob, e.dir)
	if err != nil {
		t.Fatal(err)
	}
	e.goRun(ev.Run)
	if _, err := e.dc.Start(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	got = waitEvents(t, e, id, len(want)+1)
	seen := map[string]bool{}
	var actions []string
	for _, x := range got {
		key := x.Action + x.Time.String()
		if seen[key] {
			t.Fatalf("event %s at %s stored twice", x.Action, x.Time)
		}
		seen[key] = true
		actions = append(actions, x.Action)
	}
	for _, a := range append(want, "start") {
		if !containsStr(actions, a) {
			t.Fatalf("no %s event in %v", a, actions)
		}
	}
}

func containsStr(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func waitEvents(t *testing.T, e *env, id string, n int) []events.AgentDockerEvent {
	t.Helper()
	var out []events.AgentDockerEvent
	dockertest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		msgs, err := e.hub.Messages(events.StreamAgentEvents, events.AgentEvents(org, agent))
		if err != nil {
			return err
		}
		out = nil
		for _, m := range msgs {
			var ev events.AgentDockerEvent
			if err := json.Unmarshal(m.Data, &ev); err != nil {
				return err
			}
			if ev.Container == id {
				out = append(out, ev)
			}
		}
		if len(out) < n {
			return fmt.Errorf("%d events of %d", len(out), n)
		}
		return nil
	})
	return out
}

func TestMetricsCollector(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	raw := dockertest.Client(t)
	name := dockertest.Name(t, "busy")
	dockertest.Run(t, raw, dockertest.Spec{Name: name, Cmd: []string{"sh", "-c", "while true; do :; done"}})
	m, err := collect.NewMetrics(collect.MetricsConfig{Subject: events.AgentMetrics(org, agent), Interval: 300 * time.Millisecond}, e.dc, e.ob)
	if err != nil {
		t.Fatal(err)
	}
	e.goRun(m.Run)
	dockertest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		msgs, err := e.hub.Messages(events.StreamMetrics, events.AgentMetrics(org, agent))
		if err != nil {
			return err
		}
		if len(msgs) < 3 {
			return fmt.Errorf("%d samples", len(msgs))
		}
		var s events.AgentMetricsMessage
		if err := json.Unmarshal(msgs[len(msgs)-1].Data, &s); err != nil {
			return err
		}
		h := s.Host
		if s.V != 1 || h.CPUs == 0 || h.MemTotal == 0 || h.MemUsed == 0 || h.UptimeSeconds == 0 || h.CPUPercent <= 0 {
			return fmt.Errorf("host %+v", h)
		}
		for _, c := range s.Containers {
			if c.Name == name {
				if c.MemUsage == 0 || c.CPUPercent < 20 {
					return fmt.Errorf("container %+v", c)
				}
				return nil
			}
		}
		return fmt.Errorf("no stats of %s in %+v", name, s.Containers)
	})
}
