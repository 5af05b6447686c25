package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/agent/internal/app"
	"github.com/infrapilot/infrapilot/agent/internal/dockertest"
	"github.com/infrapilot/infrapilot/agent/internal/hubtest"
	"github.com/infrapilot/infrapilot/agent/internal/state"
	"github.com/infrapilot/infrapilot/events"
	"github.com/nats-io/nats.go"
)

const org, agentID = "org1", "agent1"

// startAgent runs the agent on dir until the returned stop.
func startAgent(t *testing.T, dir string) func() {
	t.Helper()
	a, err := app.New(app.Config{StateDir: dir, DockerHost: dockertest.Host(t), MetricsInterval: 500 * time.Millisecond,
		HeartbeatInterval: 200 * time.Millisecond, LogFlushInterval: 100 * time.Millisecond, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := a.Run(ctx); err != nil {
			t.Error(err)
		}
	}()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done; a.Close() }) }
	t.Cleanup(stop)
	return stop
}

// The whole agent, with a container logging 2×2000 numbered lines: the
// link is cut while it logs, the agent restarts with a backlog, the hub
// restarts too; when the link is back, every line is on the hub exactly
// once and in order, with metrics and events, and the agent answers
// commands and heartbeats.
func TestAgentZeroLossAcrossLinkCutAndRestarts(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	dir, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := dir.SaveIdentity(state.Identity{OrgID: org, AgentID: agentID, NATSURL: h.LeafURL()}); err != nil {
		t.Fatal(err)
	}
	nc := h.Connect()
	beats := make(chan *nats.Msg, 100)
	beatSub, err := nc.ChanSubscribe(events.AgentHeartbeat(org, agentID), beats)
	if err != nil {
		t.Fatal(err)
	}
	stop := startAgent(t, dir.Path())

	raw := dockertest.Client(t)
	const n = 2000
	id := dockertest.Run(t, raw, dockertest.Spec{Name: dockertest.Name(t, "log"), Cmd: []string{"sh", "-c",
		fmt.Sprintf("i=0; while [ $i -lt %d ]; do echo out $i; echo err $i >&2; i=$((i+1)); usleep 2000; done; sleep 600", n)}})

	select {
	case m := <-beats:
		var hb events.AgentHeartbeatMessage
		if err := json.Unmarshal(m.Data, &hb); err != nil || hb.AgentID != agentID || hb.Version != "test" {
			t.Fatalf("heartbeat %s: %v", m.Data, err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no heartbeat")
	}
	_ = beatSub.Unsubscribe()
	dockertest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		reply, err := nc.Request(events.AgentCommand(org, agentID, events.OpAgentPing), []byte("{}"), 5*time.Second)
		if err != nil {
			return err
		}
		var info events.AgentInfo
		if err := json.Unmarshal(reply.Data, &info); err != nil || info.AgentID != agentID || info.Engine == "" {
			return fmt.Errorf("ping %s %v", reply.Data, err)
		}
		return nil
	})

	waitLines(t, h, id, 200)
	h.Proxy().Cut()
	// Lines pile up in the outbox while the link is down.
	dockertest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		var st state.Status
		if err := dir.ReadJSON(state.StatusFile, &st); err != nil {
			return err
		}
		if st.LinkUp || st.Pending < 5 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	stop() // the agent restarts with a backlog…
	h.Restart()
	startAgent(t, dir.Path())
	h.Proxy().Restore()
	waitLines(t, h, id, 2*n)
	checkLog(t, batches(t, h, id), n)

	msgs, err := h.Messages(events.StreamMetrics, events.AgentMetrics(org, agentID))
	if err != nil || len(msgs) == 0 {
		t.Fatalf("metrics: %d, %v", len(msgs), err)
	}
	evs, err := h.Messages(events.StreamAgentEvents, events.AgentEvents(org, agentID))
	if err != nil {
		t.Fatal(err)
	}
	started := false
	for _, m := range evs {
		var ev events.AgentDockerEvent
		if json.Unmarshal(m.Data, &ev) == nil && ev.Container == id && ev.Action == events.DockerStart {
			started = true
		}
	}
	if !started {
		t.Fatalf("no start event of %s among %d events", id, len(evs))
	}
}

func batches(t testing.TB, h *hubtest.Hub, id string) []events.AgentLogBatch {
	t.Helper()
	msgs, err := h.Messages(events.StreamLogs, events.AgentLogs(org, agentID))
	if err != nil {
		t.Fatal(err)
	}
	var out []events.AgentLogBatch
	for _, m := range msgs {
		var b events.AgentLogBatch
		if err := json.Unmarshal(m.Data, &b); err != nil {
			t.Fatal(err)
		}
		if b.Container == id {
			out = append(out, b)
		}
	}
	return out
}

func waitLines(t testing.TB, h *hubtest.Hub, id string, want int) {
	t.Helper()
	dockertest.CheckFor(t, 90*time.Second, 200*time.Millisecond, func() error {
		got := 0
		for _, b := range batches(t, h, id) {
			got += len(b.Lines)
		}
		if got < want {
			return fmt.Errorf("hub has %d lines of %d", got, want)
		}
		return nil
	})
}

// checkLog checks that the batches chain without gap or overlap and hold
// "out i" and "err i" for i < n, each once, each stream in order.
func checkLog(t *testing.T, bs []events.AgentLogBatch, n int) {
	t.Helper()
	next := map[string]int{}
	prefix := map[string]string{events.StreamStdout: "out", events.StreamStderr: "err"}
	for i, b := range bs {
		if i > 0 {
			p := bs[i-1].To
			if !b.From.Time.Equal(p.Time) || b.From.Stdout != p.Stdout || b.From.Stderr != p.Stderr {
				t.Fatalf("batch %d starts at %+v, the one before ended at %+v", i, b.From, p)
			}
		}
		for _, l := range b.Lines {
			if want := fmt.Sprintf("%s %d", prefix[l.Stream], next[l.Stream]); l.Text != want {
				t.Fatalf("batch %d: line %q, want %q", i, l.Text, want)
			}
			next[l.Stream]++
		}
	}
	if next[events.StreamStdout] != n || next[events.StreamStderr] != n {
		t.Fatalf("got %v lines", next)
	}
}
