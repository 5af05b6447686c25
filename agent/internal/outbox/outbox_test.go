package outbox_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/agent/internal/dockertest"
	"github.com/infrapilot/infrapilot/agent/internal/hubtest"
	"github.com/infrapilot/infrapilot/agent/internal/outbox"
	"github.com/infrapilot/infrapilot/events"
	"github.com/nats-io/nats.go/jetstream"
)

const org, agent = "org1", "agent1"

var logs = events.AgentLogs(org, agent)

// agentOutbox opens an outbox on dir, dialling the hub, and runs its
// forwarder until the returned stop is called (or the test ends).
func agentOutbox(t *testing.T, h *hubtest.Hub, dir string) (*outbox.Outbox, func()) {
	t.Helper()
	o, err := outbox.Open(outbox.Config{StateDir: dir, Name: "agent-" + agent,
		InboxPrefix: events.AgentInbox(org, agent), MaxBackoff: 200 * time.Millisecond,
		Leaf: outbox.LeafConfig{HubURL: h.LeafURL()}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := o.Run(ctx); err != nil {
			t.Error(err)
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
			o.Close()
		})
	}
	t.Cleanup(stop)
	return o, stop
}

// publisher publishes messages "<container> <n>" for two containers,
// alternating, with ids derived from the content (as the collectors do).
type publisher struct {
	o    *outbox.Outbox
	next int
}

func (p *publisher) publish(t *testing.T, n int) {
	t.Helper()
	for range n {
		c := fmt.Sprintf("c%d", p.next%2)
		body := fmt.Sprintf("%s %d", c, p.next)
		err := p.o.Publish(context.Background(), outbox.Message{Subject: logs, ID: "id-" + body, Data: []byte(body)})
		if err != nil {
			t.Fatal(err)
		}
		p.next++
	}
}

// waitHub waits until the hub's LOGS stream holds exactly want messages
// and checks that they are 0…want-1 in order (so, per container, in
// order) with no duplicate.
func waitHub(t *testing.T, h *hubtest.Hub, want int) {
	t.Helper()
	var got []jetstream.RawStreamMsg
	dockertest.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		var err error
		got, err = h.Messages(events.StreamLogs, logs)
		if err != nil {
			return err
		}
		if len(got) < want {
			return fmt.Errorf("hub has %d of %d messages", len(got), want)
		}
		return nil
	})
	if len(got) != want {
		t.Fatalf("hub has %d messages, want %d", len(got), want)
	}
	for i, m := range got {
		if want := fmt.Sprintf("c%d %d", i%2, i); string(m.Data) != want {
			t.Fatalf("hub message %d is %q, want %q", i, m.Data, want)
		}
		if m.Header.Get("Nats-Msg-Id") != "id-"+string(m.Data) {
			t.Fatalf("message %d has id %q", i, m.Header.Get("Nats-Msg-Id"))
		}
	}
}

func waitLink(t *testing.T, o *outbox.Outbox, up bool) {
	t.Helper()
	dockertest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if o.LinkUp() != up {
			return fmt.Errorf("link up = %v", !up)
		}
		return nil
	})
}

func TestForwardsInOrderExactlyOnce(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	o, _ := agentOutbox(t, h, t.TempDir())
	p := &publisher{o: o}
	p.publish(t, 500)
	waitHub(t, h, 500)
	s := o.Stats(context.Background())
	if s.Forwarded != 500 || s.Duplicates != 0 || s.Pending != 0 || !s.LinkUp {
		t.Fatalf("stats %+v", s)
	}
	// A producer retrying a publish whose answer it missed stores nothing.
	if err := o.Publish(context.Background(), outbox.Message{Subject: logs, ID: "id-c1 499", Data: []byte("c1 499")}); err != nil {
		t.Fatal(err)
	}
	p.publish(t, 1)
	waitHub(t, h, 501)
}

// The network goes away (the leaf's TCP link is cut and reconnects are
// refused) while the agent keeps producing; when it comes back, every
// message reaches the hub once, in order.
func TestLinkCut(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	o, _ := agentOutbox(t, h, t.TempDir())
	waitLink(t, o, true)
	p := &publisher{o: o}
	p.publish(t, 100)
	waitHub(t, h, 100)

	h.Proxy().Cut()
	waitLink(t, o, false)
	p.publish(t, 300)
	if s := o.Stats(context.Background()); s.Pending == 0 || s.LinkUp {
		t.Fatalf("while cut: %+v", s)
	}
	h.Proxy().Restore()
	p.publish(t, 100)
	waitHub(t, h, 500)
}

// The hub stops in the middle of a stream of messages and comes back: a
// message whose PubAck was lost is re-sent and de-duplicated by the hub.
func TestHubRestart(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	o, _ := agentOutbox(t, h, t.TempDir())
	p := &publisher{o: o}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 20 {
			p.publish(t, 50)
			// Pacing, not waiting for an effect: the producer keeps
			// publishing while the link is cut and restored.
			time.Sleep(10 * time.Millisecond)
		}
	}()
	dockertest.CheckFor(t, 30*time.Second, 5*time.Millisecond, func() error {
		if s := o.Stats(context.Background()); s.Forwarded < 200 {
			return fmt.Errorf("forwarded %d", s.Forwarded)
		}
		return nil
	})
	h.Shutdown()
	waitLink(t, o, false)
	h.Restart()
	wg.Wait()
	waitHub(t, h, 1000)
}

// The agent stops with messages not yet forwarded (the link was down) and
// starts again on the same state directory: they are all delivered once.
func TestAgentRestart(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	dir := t.TempDir()
	o, stop := agentOutbox(t, h, dir)
	p := &publisher{o: o}
	p.publish(t, 100)
	waitHub(t, h, 100)
	h.Proxy().Cut()
	waitLink(t, o, false)
	p.publish(t, 200)
	stop()

	// The next message's PubAck was "lost": the hub has it, the agent
	// does not know, and the restarted agent sends it again.
	nc, js := h.JetStream()
	defer nc.Close()
	body := "c0 100"
	if _, err := js.Publish(context.Background(), logs, []byte(body), jetstream.WithMsgID("id-"+body)); err != nil {
		t.Fatal(err)
	}
	h.Proxy().Restore()
	o, _ = agentOutbox(t, h, dir)
	p.o = o
	p.publish(t, 100)
	waitHub(t, h, 400)
	if s := o.Stats(context.Background()); s.Duplicates != 1 || s.Forwarded != 299 {
		t.Fatalf("after restart: %+v", s)
	}
}

// A message the hub refuses outright (here: larger than its stream
// allows) is moved aside after DeadAfter refusals; the rest flows.
func TestRefusedMessageGoesDead(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	nc, js := h.JetStream()
	defer nc.Close()
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: "SMALL", Subjects: []string{"small.>"}, MaxMsgSize: 64, // headers included
	}); err != nil {
		t.Fatal(err)
	}
	o, err := outbox.Open(outbox.Config{StateDir: t.TempDir(), DeadAfter: 2, MaxBackoff: 50 * time.Millisecond,
		Leaf: outbox.LeafConfig{HubURL: h.LeafURL()}})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go o.Run(ctx)
	if err := o.Publish(ctx, outbox.Message{Subject: "small.x", ID: "big", Data: []byte(strings.Repeat("x", 200))}); err != nil {
		t.Fatal(err)
	}
	if err := o.Publish(ctx, outbox.Message{Subject: "small.x", ID: "ok", Data: []byte("ok")}); err != nil {
		t.Fatal(err)
	}
	dockertest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		msgs, err := h.Messages("SMALL", "")
		if err != nil || len(msgs) != 1 || string(msgs[0].Data) != "ok" {
			return fmt.Errorf("hub has %d messages, %v; outbox %+v", len(msgs), err, o.Stats(ctx))
		}
		return nil
	})
	if s := o.Stats(ctx); s.Dead != 1 || s.Forwarded != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestOpenValidates(t *testing.T) {
	t.Parallel()
	if _, err := outbox.Open(outbox.Config{}); err == nil {
		t.Fatal("no state dir accepted")
	}
	if _, err := outbox.Open(outbox.Config{StateDir: t.TempDir(), Leaf: outbox.LeafConfig{HubURL: "::nope"}}); err == nil {
		t.Fatal("bad hub URL accepted")
	}
}
