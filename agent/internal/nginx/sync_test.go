package nginx_test

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/infrapilot/infrapilot/agent/internal/dockertest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/agent/internal/hubtest"
	"github.com/infrapilot/infrapilot/agent/internal/nginx"
	"github.com/infrapilot/infrapilot/agent/internal/outbox"
	"github.com/infrapilot/infrapilot/events"
	"github.com/nats-io/nats.go"
)

const org, agent = "org1", "agent1"

// fakeProxyService answers an agent's desired-state requests on the hub,
// as the proxy service does from its KV bucket.
type fakeProxyService struct {
	mu      sync.Mutex
	desired events.NginxDesired
	infos   []events.NginxAgentInfo
}

func (s *fakeProxyService) set(d events.NginxDesired) {
	s.mu.Lock()
	s.desired = d
	s.mu.Unlock()
}

func (s *fakeProxyService) serve(t *testing.T, nc *nats.Conn) {
	_, err := nc.Subscribe(events.AgentDesiredRequest(org, agent), func(m *nats.Msg) {
		var info events.NginxAgentInfo
		if err := json.Unmarshal(m.Data, &info); err != nil {
			t.Errorf("desired request body %q: %v", m.Data, err)
		}
		s.mu.Lock()
		s.infos = append(s.infos, info)
		b, _ := json.Marshal(s.desired)
		s.mu.Unlock()
		_ = m.Respond(b)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// hubEvents returns the nginx events the hub stored for the agent.
func hubEvents(h *hubtest.Hub) ([]events.AgentNginxEvent, error) {
	msgs, err := h.Messages(events.StreamAgentEvents, events.AgentEvents(org, agent))
	if err != nil {
		return nil, err
	}
	var out []events.AgentNginxEvent
	for _, m := range msgs {
		var ev events.AgentNginxEvent
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, nil
}

func waitEvent(t *testing.T, h *hubtest.Hub, what string, match func(events.AgentNginxEvent) bool) events.AgentNginxEvent {
	t.Helper()
	var found events.AgentNginxEvent
	dockertest.CheckFor(t, 20*time.Second, 25*time.Millisecond, func() error {
		evs, err := hubEvents(h)
		if err != nil {
			return err
		}
		for _, ev := range evs {
			if match(ev) {
				found = ev
				return nil
			}
		}
		return fmt.Errorf("no %s event among %d", what, len(evs))
	})
	return found
}

// The agent asks for its desired state when it starts and again when
// its link to the hub comes back; results and drift found while the
// link was down reach the hub through the outbox.
func TestSyncAcrossLinkCut(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	one, two := upstream(t, "one"), upstream(t, "two")
	pa := freePort(t)

	h := hubtest.Start(t)
	svc := &fakeProxyService{}
	svc.set(r.desired(1, host{"host-a", hostConf(pa, local(one)), nil}))
	svc.serve(t, h.Connect())

	ob, err := outbox.Open(outbox.Config{StateDir: t.TempDir(), Name: "agent-" + agent,
		InboxPrefix: events.AgentInbox(org, agent), Leaf: outbox.LeafConfig{HubURL: h.LeafURL()}})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := ob.Connect("nginx")
	if err != nil {
		t.Fatal(err)
	}
	s, err := nginx.NewSyncer(nginx.SyncConfig{OrgID: org, AgentID: agent, LinkUp: ob.LinkUp,
		DriftInterval: 200 * time.Millisecond, LinkPoll: 50 * time.Millisecond}, r.c, nc, ob)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = ob.Run(ctx) }()
	go func() { defer wg.Done(); _ = s.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait(); nc.Close(); ob.Close() })

	ev := waitEvent(t, h, "applied 1", func(ev events.AgentNginxEvent) bool {
		return ev.Kind == events.AgentEventKindNginxApplied && ev.Result != nil && ev.Result.Revision == 1 && ev.Result.Applied
	})
	if ev.Result.Nginx.Root != r.dir || !ev.Result.Nginx.Enabled {
		t.Fatalf("event: %+v", ev.Result)
	}
	serves(t, pa, "one")
	svc.mu.Lock()
	info := svc.infos[0]
	svc.mu.Unlock()
	if !info.Enabled || info.Kind != events.NginxKindLocal || info.Root != r.dir || info.Version == "" || info.HTTPPort != 80 || info.HTTPSPort != 443 {
		t.Fatalf("agent info: %+v", info)
	}

	h.Proxy().Cut()
	dockertest.CheckFor(t, 10*time.Second, 25*time.Millisecond, func() error {
		if ob.LinkUp() {
			return fmt.Errorf("link still up")
		}
		return nil
	})
	svc.set(r.desired(2, host{"host-a", hostConf(pa, local(two)), nil}))
	if err := os.WriteFile(filepath.Join(r.dir, "current", "hosts", "host-a.conf"), []byte("# edited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dockertest.CheckFor(t, 10*time.Second, 25*time.Millisecond, func() error {
		if b, _ := os.ReadFile(filepath.Join(r.dir, "current", "hosts", "host-a.conf")); string(b) == "# edited\n" {
			return fmt.Errorf("not restored yet")
		}
		return nil
	})
	h.Proxy().Restore()

	waitEvent(t, h, "drift", func(ev events.AgentNginxEvent) bool {
		return ev.Kind == events.AgentEventKindNginxDrift && ev.Drift != nil && ev.Drift.Restored && len(ev.Drift.HostIDs) == 1 && ev.Drift.HostIDs[0] == "host-a"
	})
	waitEvent(t, h, "applied 2", func(ev events.AgentNginxEvent) bool {
		return ev.Kind == events.AgentEventKindNginxApplied && ev.Result != nil && ev.Result.Revision == 2 && ev.Result.Applied
	})
	serves(t, pa, "two")

	// An apply through the Syncer (the command path) is published too;
	// the same outcome twice is stored once.
	before, _ := hubEvents(h)
	res := s.Apply(context.Background(), r.desired(2, host{"host-a", hostConf(pa, local(two)), nil}))
	if !res.Applied || res.Revision != 2 {
		t.Fatalf("re-apply: %+v", res)
	}
	if stale := s.Apply(context.Background(), r.desired(1)); !stale.Stale {
		t.Fatalf("stale: %+v", stale)
	}
	res = s.Apply(context.Background(), r.desired(3, host{"host-a", hostConf(pa, local(one)), nil}))
	waitEvent(t, h, "applied 3", func(ev events.AgentNginxEvent) bool {
		return ev.Result != nil && ev.Result.Revision == 3
	})
	after, _ := hubEvents(h)
	if len(after) != len(before)+1 {
		t.Fatalf("%d events before, %d after one new apply (a repeated or stale one must add none)", len(before), len(after))
	}
}
