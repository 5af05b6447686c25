package service

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
	"github.com/infrapilot/infrapilot/services/tenancy/internal/domain"
	"github.com/infrapilot/infrapilot/services/tenancy/internal/postgres"
	"github.com/nats-io/nats.go"
)

// presenceQueue is the queue group of the presence subscriptions: each
// heartbeat is handled by one tenancy replica.
const presenceQueue = "tenancy_presence"

// presence keeps agents' last_seen, facts and latest metrics from their
// heartbeats and metrics (core NATS, batched into one Postgres round trip
// per flush), and turns them online when heard from and offline after
// the presence timeout. Only the transitions are events; they are
// appended with optimistic concurrency, so replicas racing on one
// transition store it once.
type presence struct {
	s *Service

	mu    sync.Mutex
	beats map[string]postgres.Beat
}

func (s *Service) runPresence(ctx context.Context) error {
	p := &presence{s: s, beats: map[string]postgres.Beat{}}
	hb, err := s.nc.QueueSubscribe(events.AgentHeartbeat("*", "*"), presenceQueue, p.heartbeat)
	if err != nil {
		return err
	}
	defer hb.Unsubscribe()
	ms, err := s.nc.QueueSubscribe(events.AgentMetrics("*", "*"), presenceQueue, p.metrics)
	if err != nil {
		return err
	}
	defer ms.Unsubscribe()

	flush := time.NewTicker(s.cfg.PresenceFlush)
	defer flush.Stop()
	sweep := time.NewTicker(max(s.cfg.PresenceTimeout/4, 50*time.Millisecond))
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			p.flush(context.WithoutCancel(ctx))
			return nil
		case <-flush.C:
			p.flush(ctx)
		case <-sweep.C:
			p.sweep(ctx)
		}
	}
}

// agentOf reads org and agent from "agent.<org>.<agent>.<kind>".
func agentOf(subject string) (org, agent string, ok bool) {
	t := strings.Split(subject, ".")
	if len(t) != 4 || t[0] != "agent" || !events.ValidToken(t[1]) || !events.ValidToken(t[2]) {
		return "", "", false
	}
	return t[1], t[2], true
}

func (p *presence) heartbeat(m *nats.Msg) {
	org, agent, ok := agentOf(m.Subject)
	if !ok {
		return
	}
	var h events.AgentHeartbeatMessage
	if err := json.Unmarshal(m.Data, &h); err != nil {
		p.s.log.Debug("ignoring a malformed heartbeat", "org_id", org, "agent_id", agent, "err", err)
		return
	}
	// The hub's clock decides presence: an agent's clock may be wrong.
	now := p.s.now().UTC()
	p.mu.Lock()
	b := p.beats[agent]
	b.OrgID, b.AgentID, b.Seen, b.Heartbeat = org, agent, now, &h
	p.beats[agent] = b
	p.mu.Unlock()
}

func (p *presence) metrics(m *nats.Msg) {
	org, agent, ok := agentOf(m.Subject)
	if !ok {
		return
	}
	var mm events.AgentMetricsMessage
	if err := json.Unmarshal(m.Data, &mm); err != nil {
		return
	}
	host, err := json.Marshal(mm.Host)
	if err != nil {
		return
	}
	now := p.s.now().UTC()
	at := mm.Time.UTC()
	if at.IsZero() || at.After(now) {
		at = now
	}
	p.mu.Lock()
	b := p.beats[agent]
	b.OrgID, b.AgentID, b.Seen, b.Metrics, b.MetricsAt = org, agent, now, host, at
	p.beats[agent] = b
	p.mu.Unlock()
}

func (p *presence) flush(ctx context.Context) {
	p.mu.Lock()
	if len(p.beats) == 0 {
		p.mu.Unlock()
		return
	}
	beats := make([]postgres.Beat, 0, len(p.beats))
	var heard []string
	for id, b := range p.beats {
		beats = append(beats, b)
		if b.Heartbeat != nil {
			heard = append(heard, id)
		}
	}
	p.beats = map[string]postgres.Beat{}
	p.mu.Unlock()

	if err := p.s.db.SavePresence(ctx, beats); err != nil {
		p.s.log.Error("saving agent presence", "agents", len(beats), "err", err)
		return
	}
	if len(heard) == 0 {
		return
	}
	offline, err := p.s.db.Offline(ctx, heard)
	if err != nil {
		p.s.log.Error("reading agent presence", "err", err)
		return
	}
	for _, b := range beats {
		org, ok := offline[b.AgentID]
		if !ok || org != b.OrgID || b.Heartbeat == nil {
			continue
		}
		p.transition(ctx, org, b.AgentID, func(a *domain.Agent) events.Payload {
			if ev := a.Heard(b.Seen, b.Heartbeat.Version, b.Heartbeat.Hostname); ev != nil {
				return *ev
			}
			return nil
		})
	}
}

func (p *presence) sweep(ctx context.Context) {
	stale, err := p.s.db.StaleOnline(ctx, p.s.now().Add(-p.s.cfg.PresenceTimeout))
	if err != nil {
		p.s.log.Error("reading agent presence", "err", err)
		return
	}
	for _, r := range stale {
		p.transition(ctx, r.OrgID, r.AgentID, func(a *domain.Agent) events.Payload {
			if ev := a.Missed(r.LastSeen); ev != nil {
				return *ev
			}
			return nil
		})
	}
}

// transition appends the event decide returns on the agent's current
// version. Losing a race to another replica is not an error: it decided
// on newer state.
func (p *presence) transition(ctx context.Context, org, id string, decide func(*domain.Agent) events.Payload) {
	a, err := p.s.loadAgent(ctx, org, id)
	if err != nil {
		p.s.log.Error("loading agent", "org_id", org, "agent_id", id, "err", err)
		return
	}
	ev := decide(a)
	if ev == nil {
		return
	}
	if _, err := p.s.appendTo(ctx, org, events.TenancyAggAgent, id, a.Ver, ev); err != nil && !errors.Is(err, eventstore.ErrConflict) {
		p.s.log.Error("recording agent presence", "org_id", org, "agent_id", id, "event", ev.EventType(), "err", err)
	}
}
