package audit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/audit/internal/chain"
	"github.com/infrapilot/infrapilot/services/audit/internal/chainstream"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestRedeliveryIsNotChainedTwice covers the three ways an event reaches
// the writer again: a redelivery of an event nobody chained (it is chained
// once), a redelivery of an event a previous writer chained but did not
// acknowledge (skipped), and a reset consumer delivering everything anew
// (skipped by the stream's duplicate window).
func TestRedeliveryIsNotChainedTwice(t *testing.T) {
	e := newEnv(t)
	org := "org-r"
	actor := events.Actor{Kind: events.ActorUser, ID: "u1", IP: "203.0.113.5"}
	agg := events.Aggregate{Type: "org", ID: org}
	cons := e.chainConsumer("tenancy")

	// 1. e1 is delivered to "a writer" (the test) that dies without
	// acking: after the ack wait it is redelivered to the service.
	e1 := event(t, org, "tenancy.org.updated", actor, agg, 1)
	e.publish(e1)
	stolen := fetchOne(t, cons)
	if stolen.Headers().Get(nats.MsgIdHdr) != e1.ID {
		t.Fatalf("fetched %s", stolen.Headers().Get(nats.MsgIdHdr))
	}
	// 2. e2 is delivered to a writer that chains it and dies before
	// acking: its entry is on the stream, the event comes back.
	e2 := event(t, org, "tenancy.org.updated", actor, agg, 2)
	e.publish(e2)
	stolen2 := fetchOne(t, cons)
	if stolen2.Headers().Get(nats.MsgIdHdr) != e2.ID {
		t.Fatalf("fetched %s", stolen2.Headers().Get(nats.MsgIdHdr))
	}
	e.appendEntry(e2) // index 1, as that writer would have

	h := e.startHost(testConfig(), "a1")
	e.waitChained(org, 2, 30*time.Second)
	entries := e.checkLinear(org, map[string]bool{e1.ID: true, e2.ID: true})
	if entries[0].EventID != e2.ID || entries[1].EventID != e1.ID {
		t.Fatalf("chain order %s %s", entries[0].EventID, entries[1].EventID)
	}
	e.waitAcked(cons, 30*time.Second)

	// 3. A reset consumer delivers both again, as first deliveries.
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	if err := e.js.DeleteConsumer(context.Background(), events.DomainStream("tenancy"), "audit_chain_tenancy"); err != nil {
		t.Fatal(err)
	}
	e3 := event(t, org, "tenancy.org.updated", actor, agg, 3)
	e.publish(e3)
	e.startHost(testConfig(), "a2")
	e.waitChained(org, 3, 30*time.Second)
	e.waitAcked(e.chainConsumer("tenancy"), 30*time.Second)
	e.checkLinear(org, map[string]bool{e1.ID: true, e2.ID: true, e3.ID: true})
	e.waitProjected(org, 3, 20*time.Second)
	if v := e.verify(org, events.AuditVerifyRequest{}); !v.OK || v.Checked != 3 {
		t.Fatalf("verify %+v", v)
	}
}

// TestTwoWritersUnderLoadKeepOneLinePerOrg runs two audit services on the
// same durable consumers while 2,000 events over 5 orgs arrive: each org's
// chain is one line, 1..n, with every event exactly once.
func TestTwoWritersUnderLoadKeepOneLinePerOrg(t *testing.T) {
	e := newEnv(t)
	e.startHost(testConfig(), "a1")
	e.startHost(testConfig(), "a2")
	want, n := e.load(t, "two", 5, 2000)
	for org, ids := range want {
		e.waitChained(org, len(ids), 120*time.Second)
	}
	for org, ids := range want {
		e.checkLinear(org, ids)
		e.waitProjected(org, len(ids), 60*time.Second)
		if v := e.verify(org, events.AuditVerifyRequest{}); !v.OK || v.Checked != uint64(len(ids)) {
			t.Fatalf("verify %s: %+v", org, v)
		}
	}
	t.Logf("%d events over %d orgs chained by two writers", n, len(want))
}

// TestConnectionLostMidLoad cuts one of two writers off the bus in the
// middle of a load (its connection closed abruptly, with appends and
// acknowledgements in flight): the other finishes, and every chain is
// still one line with every event once, and verifies.
func TestConnectionLostMidLoad(t *testing.T) {
	e := newEnv(t)
	victim := e.startHost(testConfig(), "victim")
	e.startHost(testConfig(), "survivor")
	want, _ := e.loadWhile(t, "cut", 5, 2000, func(chained func() uint64) {
		natstest.CheckFor(t, 60*time.Second, 5*time.Millisecond, func() error {
			if c := chained(); c < 400 {
				return fmt.Errorf("%d chained", c)
			}
			return nil
		})
		victim.nc.Close()
	})
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

// load publishes n events spread over orgs and returns, per org, the ids.
func (e *env) load(t *testing.T, prefix string, orgs, n int) (map[string]map[string]bool, int) {
	return e.loadWhile(t, prefix, orgs, n, nil)
}

// loadWhile publishes the load in the background and runs during (if not
// nil) meanwhile, with a function reporting how many entries are chained.
func (e *env) loadWhile(t *testing.T, prefix string, orgs, n int, during func(chained func() uint64)) (map[string]map[string]bool, int) {
	t.Helper()
	want := map[string]map[string]bool{}
	var envs []events.Envelope
	services := []string{"tenancy", "auth", "proxy", "alerts", "policy"}
	for i := range n {
		org := fmt.Sprintf("%s-%d", prefix, i%orgs)
		svc := services[i%len(services)]
		env := event(t, org, svc+".thing.changed", events.Actor{Kind: events.ActorUser, ID: fmt.Sprintf("u%d", i%7), IP: "192.0.2.7"},
			events.Aggregate{Type: "thing", ID: fmt.Sprintf("t%d", i%11)}, i)
		if want[org] == nil {
			want[org] = map[string]bool{}
		}
		want[org][env.ID] = true
		envs = append(envs, env)
	}
	if during == nil {
		e.publishAsync(envs)
		return want, n
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < len(envs); i += 100 {
			e.publishAsync(envs[i:min(i+100, len(envs))])
		}
	}()
	var count atomic.Uint64
	rd := chainstream.New(e.js)
	during(func() uint64 {
		var total uint64
		for org := range want {
			if tail, ok, err := rd.Tail(context.Background(), org); err == nil && ok {
				total += tail.Index
			}
		}
		count.Store(total)
		return total
	})
	<-done
	return want, n
}

// chainConsumer returns the writer's durable consumer on a service's
// stream, creating it as the writer would.
func (e *env) chainConsumer(svc string) jetstream.Consumer {
	e.t.Helper()
	cfg := events.Durable("audit_chain_"+svc, events.DomainEvents(svc))
	cfg.AckWait = 3 * time.Second
	cfg.MaxAckPending = 4096
	c, err := e.js.CreateOrUpdateConsumer(context.Background(), events.DomainStream(svc), cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func fetchOne(t *testing.T, c jetstream.Consumer) jetstream.Msg {
	t.Helper()
	b, err := c.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range b.Messages() {
		return m
	}
	t.Fatalf("nothing fetched: %v", b.Error())
	return nil
}

// waitAcked waits until a consumer has nothing pending or unacknowledged.
func (e *env) waitAcked(c jetstream.Consumer, timeout time.Duration) {
	e.t.Helper()
	natstest.CheckFor(e.t, timeout, 50*time.Millisecond, func() error {
		info, err := c.Info(context.Background())
		if err != nil {
			return err
		}
		if info.NumPending != 0 || info.NumAckPending != 0 {
			return fmt.Errorf("consumer %s: %d pending, %d unacknowledged", info.Name, info.NumPending, info.NumAckPending)
		}
		return nil
	})
}

// appendEntry appends env's entry to its org's chain as a writer would.
func (e *env) appendEntry(env events.Envelope) chainstream.Entry {
	e.t.Helper()
	ctx := context.Background()
	rd := chainstream.New(e.js)
	tail, ok, err := rd.Tail(ctx, env.OrgID)
	if err != nil {
		e.t.Fatal(err)
	}
	prevIdx, prevHash, prevSeq := uint64(0), events.GenesisHash, uint64(0)
	if ok {
		prevIdx, prevHash, prevSeq = tail.Index, tail.Hash, tail.Seq
	}
	en := chain.EntryFor(env)
	if err := chain.Seal(&en, prevIdx, prevHash); err != nil {
		e.t.Fatal(err)
	}
	data, _ := json.Marshal(en)
	ack, err := e.js.Publish(ctx, events.AuditChain(env.OrgID), data, jetstream.WithMsgID(chain.MsgID(env)),
		jetstream.WithExpectLastSequencePerSubject(prevSeq))
	if err != nil {
		e.t.Fatal(err)
	}
	return chainstream.Entry{AuditEntry: en, Seq: ack.Sequence}
}
