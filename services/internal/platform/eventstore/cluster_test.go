package eventstore_test

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/infrapilot/infrapilot/services/internal/platform/natsx"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// startCluster runs a three-node JetStream cluster, the production shape,
// and returns a JetStream context on it with every stream created at three
// replicas. Replicated streams take a different code path in the server
// (ids are checked before the expected sequence, conflicts may be 10164),
// which a single embedded server never exercises.
func startCluster(t *testing.T) jetstream.JetStream {
	t.Helper()
	const nodes = 3
	ports := make([]int, nodes)
	routes := make([]string, nodes)
	for i := range ports {
		p, err := natsx.FreePort("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		ports[i], routes[i] = p, fmt.Sprintf("nats://127.0.0.1:%d", p)
	}
	var urls []string
	for i := range nodes {
		srv, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       server.RANDOM_PORT,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoLog:      true,
			NoSigs:     true,
			Cluster:    server.ClusterOpts{Name: "eventstore-test", Host: "127.0.0.1", Port: ports[i]},
			Routes:     server.RoutesFromStr(strings.Join(routes, ",")),
		})
		if err != nil {
			t.Fatal(err)
		}
		srv.Start()
		t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
		if !srv.ReadyForConnections(10 * time.Second) {
			t.Fatalf("cluster node %d not ready", i+1)
		}
		urls = append(urls, srv.ClientURL())
	}
	nc, err := natsx.Connect(natsx.ConnConfig{URL: strings.Join(urls, ","), Name: t.Name()}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := natsx.JetStream(nc)
	if err != nil {
		t.Fatal(err)
	}
	topo := events.DefaultTopology()
	topo.Replicas = nodes
	// Until the nodes have elected a meta leader, stream creation fails.
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		return events.Ensure(attemptCtx(t), js, topo)
	})
	return js
}

// On a replicated stream the server checks the message id before the
// expected sequence, the opposite of a single server; Append gives the same
// answers on both: one winner among concurrent writers, ErrConflict for the
// others, and a retried append stored once.
func TestAppendOnReplicatedStream(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	t.Parallel()
	js := startCluster(t)
	store := eventstore.New(js, service)
	ctx := testCtx(t)

	// The server's own order, for the package comment.
	subject := events.DomainEvent(service, "org-1", "org", "raw")
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		// The stream leader may still be settling after creation.
		_, err := js.Publish(attemptCtx(t), subject, []byte(`{}`), jetstream.WithMsgID("a"), jetstream.WithExpectLastSequencePerSubject(0))
		return err
	})
	if _, err := js.Publish(ctx, subject, []byte(`{}`), jetstream.WithMsgID("b"), jetstream.WithExpectLastSequencePerSubject(1)); err != nil {
		t.Fatal(err)
	}
	ack, err := js.Publish(ctx, subject, []byte(`{}`), jetstream.WithMsgID("a"), jetstream.WithExpectLastSequencePerSubject(0))
	if err != nil || !ack.Duplicate || ack.Sequence != 1 {
		t.Fatalf("replicated stream, stored id with stale expected sequence: ack %+v, err %v; want duplicate of sequence 1", ack, err)
	}

	ref := eventstore.Ref{OrgID: "org-1", Type: "org", ID: "replicated"}
	first := newEvents(t, ref, 0, 2)
	v1 := mustAppend(t, store, ref, 0, first...)

	const writers = 16
	batches := make([][]events.Envelope, writers)
	for i := range batches {
		batches[i] = newEvents(t, ref, 100*(i+1), 2)
	}
	errs := make([]error, writers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			<-start
			_, errs[i] = store.Append(ctx, ref, v1, batches[i]...)
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("writers %d and %d both appended at version %d", winner, i, v1)
		case err == nil:
			winner = i
		case !errors.Is(err, eventstore.ErrConflict):
			t.Fatalf("writer %d: %v, want ErrConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer appended")
	}

	// The first append retried after the version moved on.
	if v := mustAppend(t, store, ref, 0, first...); v != v1 {
		t.Errorf("retried append returned %d, want %d", v, v1)
	}
	_, err = store.Append(ctx, ref, v1, newEvent(t, ref, 9))
	wantConflict(t, err)

	evs, _ := mustLoad(t, store, ref)
	checkEvents(t, evs, append(first, batches[winner]...), nil)
}
