package natsx_test

import (
	"context"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/infrapilot/infrapilot/services/internal/platform/natsx"
	"github.com/nats-io/nats.go/jetstream"
)

// Ensure must be idempotent, converge a drifted stream back to the code's
// definition, and keep existing messages.
func TestEnsureIsIdempotentAndConverges(t *testing.T) {
	srv := natstest.Run(t)
	nc := srv.Connect()
	js, err := natsx.JetStream(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topo := events.DefaultTopology()
	if err := events.Ensure(ctx, js, topo); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, events.DomainEvent("auth", "o", "user", "u"), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	// Someone changes a stream by hand; the next start puts it back.
	s, err := js.Stream(ctx, "AUTH")
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.Description = "edited by hand"
	cfg.MaxMsgs = 10
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := events.Ensure(ctx, js, topo); err != nil {
			t.Fatalf("ensure #%d: %v", i+2, err)
		}
	}
	for _, want := range events.Streams(topo) {
		s, err := js.Stream(ctx, want.Name)
		if err != nil {
			t.Fatalf("stream %s missing: %v", want.Name, err)
		}
		got := s.CachedInfo().Config
		if got.Description != want.Description || got.MaxMsgs != -1 || got.DenyDelete != want.DenyDelete || got.DenyPurge != want.DenyPurge {
			t.Errorf("stream %s did not converge: %+v", want.Name, got)
		}
		if want.Name == "AUTH" && s.CachedInfo().State.Msgs != 1 {
			t.Errorf("AUTH lost its message: %d", s.CachedInfo().State.Msgs)
		}
	}
	kv, err := js.KeyValue(ctx, events.BucketAgentDesired)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, events.AgentDesiredKey("o", "a"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	// The audit chain cannot be purged or have messages deleted.
	audit, err := js.Stream(ctx, events.StreamAudit)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, events.AuditChain("o"), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if err := audit.Purge(ctx); err == nil {
		t.Fatal("AUDIT was purged")
	}
	if err := audit.DeleteMsg(ctx, 1); err == nil {
		t.Fatal("an AUDIT message was deleted")
	}
	var _ jetstream.JetStream = js
}

func TestHubRestartKeepsStoreAndPorts(t *testing.T) {
	srv := natstest.Run(t)
	_, js := srv.JetStream()
	ctx := context.Background()
	if _, err := js.Publish(ctx, events.AgentMetrics("o", "a"), []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	url := srv.URL()
	srv.Restart()
	if srv.URL() != url {
		t.Fatalf("restart moved the server from %s to %s", url, srv.URL())
	}
	_, js = srv.JetStream()
	s, err := js.Stream(ctx, events.StreamMetrics)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Msgs; n != 1 {
		t.Fatalf("metrics after restart: %d messages", n)
	}
}

func TestHubLeafPort(t *testing.T) {
	hub, err := natsx.StartHub(natsx.HubConfig{StoreDir: t.TempDir(), LeafPort: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Shutdown()
	if hub.LeafPort() <= 0 {
		t.Fatalf("no leaf port: %d", hub.LeafPort())
	}
	if _, err := natsx.StartHub(natsx.HubConfig{}); err == nil {
		t.Fatal("a hub without a store dir must be refused")
	}
}
