package audit

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/infrapilot/infrapilot/services/audit/internal/clickhouse"
	"github.com/infrapilot/infrapilot/services/audit/internal/retention"
	"github.com/infrapilot/infrapilot/services/internal/platform/endpoint"
	"github.com/nats-io/nats.go/jetstream"
)

// ClickHouse check values of the health endpoint and the configuration.
const (
	clickhouseOff = "off (not configured)"
	clickhouseOn  = "on"
)

// analytics runs the ClickHouse projection when a URL is configured. The
// server may be down when the service starts: Run connects with backoff,
// and the health check says "error: …" until it is up, so a misconfigured
// ClickHouse shows on /readyz without stopping the audit log itself.
type analytics struct {
	url   string
	js    jetstream.JetStream
	log   *slog.Logger
	store atomic.Pointer[clickhouse.Store]
}

func newAnalytics(url string, js jetstream.JetStream, log *slog.Logger) *analytics {
	return &analytics{url: url, js: js, log: log.With("component", "audit_clickhouse")}
}

// enabled reports whether a ClickHouse URL is configured.
func (a *analytics) enabled() bool { return a.url != "" }

// state is the configuration's word on the projection.
func (a *analytics) state() string {
	if !a.enabled() {
		return clickhouseOff
	}
	return clickhouseOn
}

// check is the health check: informational when off, a ping when on.
func (a *analytics) check(ctx context.Context) error {
	if !a.enabled() {
		return endpoint.Info(clickhouseOff)
	}
	st := a.store.Load()
	if st == nil {
		return errors.New("not connected yet")
	}
	return st.Ping(ctx)
}

// pruner is the projection for the retention job, nil when it is off or
// not connected.
func (a *analytics) pruner() retention.Pruner {
	if st := a.store.Load(); st != nil {
		return st
	}
	return nil
}

// Run connects, creates the schema, and projects until ctx ends.
func (a *analytics) Run(ctx context.Context) error {
	if !a.enabled() {
		<-ctx.Done()
		return nil
	}
	delay := 500 * time.Millisecond
	for {
		st, err := a.open(ctx)
		if err == nil {
			a.store.Store(st)
			defer st.Close()
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		a.log.Warn("audit: ClickHouse unavailable; retrying", "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
	// The projection must never stop the audit log: a consumer that
	// cannot be set up is retried, not returned.
	delay = 500 * time.Millisecond
	for {
		err := a.store.Load().Consume(ctx, a.js, clickhouse.ConsumerConfig{Log: a.log})
		if ctx.Err() != nil {
			return nil
		}
		a.log.Error("audit: ClickHouse projection stopped; restarting", "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
}

func (a *analytics) open(ctx context.Context) (*clickhouse.Store, error) {
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := clickhouse.Open(octx, clickhouse.Config{URL: a.url})
	if err != nil {
		return nil, err
	}
	if err := st.Schema(octx); err != nil {
		_ = st.Close()
		return nil, err
	}
	return st, nil
}
