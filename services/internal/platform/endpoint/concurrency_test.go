package endpoint_test

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/endpoint"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/prometheus/client_golang/prometheus"
)

// TestOneOperationServesRequestsConcurrently: requests to the same
// operation run at the same time, up to Concurrency. The handler only
// returns once two requests are inside it at once, so a server that serves
// an operation one request at a time never answers (the requests time
// out). NATS spreads the requests over the instances at random, so the
// test asks for two at once, not for all of them.
func TestOneOperationServesRequestsConcurrently(t *testing.T) {
	const n, limit = 16, 4
	srv := natstest.Run(t)
	nc := srv.Connect()
	s, err := endpoint.New(endpoint.Config{Service: "demo", Version: "1.0.0", Concurrency: limit}, nc, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	var inside, peak atomic.Int32
	release := make(chan struct{})
	var once sync.Once
	endpoint.Handle(s, "wait", func(ctx context.Context, _ struct{}) (struct{}, error) {
		now := inside.Add(1)
		defer inside.Add(-1)
		for {
			p := peak.Load()
			if now <= p || peak.CompareAndSwap(p, now) {
				break
			}
		}
		if now == 2 {
			once.Do(func() { close(release) })
		}
		select {
		case <-release:
			return struct{}{}, nil
		case <-ctx.Done():
			return struct{}{}, ctx.Err()
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg, err := nc.Request(events.ServiceEndpoint("demo", "wait"), nil, 10*time.Second)
			if err == nil && msg.Header.Get("Nats-Service-Error-Code") != "" {
				err = &events.Error{Code: events.CodeInternal, Message: msg.Header.Get("Nats-Service-Error")}
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a request failed: %v (peak concurrency %d)", err, peak.Load())
		}
	}
	if p := peak.Load(); p < 2 || p > limit {
		t.Fatalf("peak concurrency %d, want 2…%d", p, limit)
	}
}
