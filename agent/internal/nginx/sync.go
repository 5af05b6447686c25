package nginx

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/infrapilot/infrapilot/agent/internal/outbox"
	"github.com/infrapilot/infrapilot/events"
	"github.com/nats-io/nats.go"
)

// Publisher stores a message for the hub; *outbox.Outbox is one. Results
// and drift reports go through it, like the Docker events, so that they
// reach the proxy service after a link cut.
type Publisher interface {
	Publish(ctx context.Context, m outbox.Message) error
}

// SyncConfig configures a Syncer.
type SyncConfig struct {
	OrgID, AgentID string
	// LinkUp reports whether the link to the hub is up (the outbox's
	// LinkUp); the desired state is requested whenever it comes up.
	LinkUp func() bool
	// ResyncInterval is how often the desired state is requested anyway
	// (default 5 min), in case an apply command was lost.
	ResyncInterval time.Duration
	// DriftInterval is how often CheckDrift runs (default 30 s).
	DriftInterval time.Duration
	// RequestTimeout bounds a desired-state request (default 10 s).
	RequestTimeout time.Duration
	// LinkPoll is how often LinkUp is polled (default 500 ms).
	LinkPoll time.Duration
	Log      *slog.Logger
	Now      func() time.Time
}

// Syncer keeps a Controller converged: it asks the proxy service for the
// desired state (events.AgentDesiredRequest) when it starts, whenever the
// link to the hub comes back and every ResyncInterval — an agent has no
// access to the hub's KV, and an apply command sent while it was offline
// is lost — checks for drift every DriftInterval, and publishes every
// outcome as an events.AgentNginxEvent on events.AgentEvents.
type Syncer struct {
	cfg SyncConfig
	c   *Controller
	nc  *nats.Conn
	out Publisher
	// mu orders applies, drift checks and their events: events reach
	// the hub in the order the outcomes happened.
	mu sync.Mutex
}

// NewSyncer prepares a Syncer; nc is a connection to the agent's leaf
// server with the agent's inbox prefix.
func NewSyncer(cfg SyncConfig, c *Controller, nc *nats.Conn, out Publisher) (*Syncer, error) {
	if !events.ValidToken(cfg.OrgID) || !events.ValidToken(cfg.AgentID) {
		return nil, fmt.Errorf("nginx: invalid org %q or agent %q", cfg.OrgID, cfg.AgentID)
	}
	if cfg.LinkUp == nil {
		cfg.LinkUp = func() bool { return true }
	}
	if cfg.ResyncInterval <= 0 {
		cfg.ResyncInterval = 5 * time.Minute
	}
	if cfg.DriftInterval <= 0 {
		cfg.DriftInterval = 30 * time.Second
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.LinkPoll <= 0 {
		cfg.LinkPoll = 500 * time.Millisecond
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Syncer{cfg: cfg, c: c, nc: nc, out: out}, nil
}

// Controller is the controller the Syncer drives.
func (s *Syncer) Controller() *Controller { return s.c }

// Apply applies d and publishes the result (a stale revision changes
// nothing and is not published).
func (s *Syncer) Apply(ctx context.Context, d events.NginxDesired) events.NginxApplyResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := s.c.Apply(ctx, d)
	if !res.Stale {
		s.publish(events.AgentNginxEvent{V: 1, Kind: events.AgentEventKindNginxApplied, Time: res.AppliedAt, Result: &res})
	}
	return res
}

// Sync requests the desired state and applies it.
func (s *Syncer) Sync(ctx context.Context) error {
	info, err := json.Marshal(s.c.Info(ctx))
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	m, err := s.nc.RequestWithContext(rctx, events.AgentDesiredRequest(s.cfg.OrgID, s.cfg.AgentID), info)
	if err != nil {
		return fmt.Errorf("nginx: desired state request: %w", err)
	}
	if code := m.Header.Get(events.HeaderServiceErrorCode); code != "" {
		if events.Code(code) == events.CodeNotFound {
			return nil // nothing desired yet
		}
		return fmt.Errorf("nginx: desired state request: %s: %s", code, m.Header.Get(events.HeaderServiceError))
	}
	var d events.NginxDesired
	if err := json.Unmarshal(m.Data, &d); err != nil {
		return fmt.Errorf("nginx: desired state: %w", err)
	}
	if d.Revision == 0 && len(d.Files) == 0 && d.Mode != events.ProxyModeExternal {
		return nil // nothing desired yet
	}
	s.Apply(ctx, d)
	return nil
}

// CheckDrift checks for drift now and publishes what it found.
func (s *Syncer) CheckDrift(ctx context.Context) (events.NginxDrift, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.c.CheckDrift(ctx)
	if ok {
		s.publish(events.AgentNginxEvent{V: 1, Kind: events.AgentEventKindNginxDrift, Time: s.cfg.Now().UTC(), Drift: &d})
	}
	return d, ok
}

// Run syncs and checks for drift until ctx ends. A failed request is
// retried with backoff (1 s up to ResyncInterval) while the link is up.
func (s *Syncer) Run(ctx context.Context) error {
	poll := time.NewTicker(s.cfg.LinkPoll)
	defer poll.Stop()
	resync := time.NewTicker(s.cfg.ResyncInterval)
	defer resync.Stop()
	drift := time.NewTicker(s.cfg.DriftInterval)
	defer drift.Stop()
	s.CheckDrift(ctx)
	linkUp, need := false, true
	backoff, retryAt := time.Second, time.Time{}
	for {
		if up := s.cfg.LinkUp(); up != linkUp {
			linkUp = up
			if up {
				need, retryAt = true, time.Time{}
			}
		}
		if need && linkUp && !time.Now().Before(retryAt) {
			if err := s.Sync(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				s.cfg.Log.Warn("nginx: sync failed; retrying", "err", err, "in", backoff)
				retryAt = time.Now().Add(backoff)
				backoff = min(2*backoff, s.cfg.ResyncInterval)
			} else {
				need, backoff = false, time.Second
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-poll.C:
		case <-resync.C:
			need = true
		case <-drift.C:
			s.CheckDrift(ctx)
		}
	}
}

// publish stores ev in the outbox, retrying for a while when the outbox
// refuses (full); its id is a hash of its content, so the same outcome
// published twice is stored once.
func (s *Syncer) publish(ev events.AgentNginxEvent) {
	data, err := json.Marshal(ev)
	if err != nil {
		s.cfg.Log.Error("nginx: event", "err", err)
		return
	}
	subject := events.AgentEvents(s.cfg.OrgID, s.cfg.AgentID)
	h := sha256.Sum256(append([]byte(subject+"\n"), data...))
	m := outbox.Message{Subject: subject, ID: "nginx-" + hex.EncodeToString(h[:16]), Data: data}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	backoff := 100 * time.Millisecond
	for {
		err := s.out.Publish(ctx, m)
		if err == nil {
			return
		}
		if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			s.cfg.Log.Error("nginx: event lost: the outbox refused it", "kind", ev.Kind, "err", err)
			return
		}
		s.cfg.Log.Warn("nginx: outbox refused an event; retrying", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
