package service

import (
	"context"
	"sync"

	"github.com/infrapilot/infrapilot/events"
)

// pusher delivers stored desired states to agents with OpAgentNginxApply,
// off the path of the operation that changed them. Pushes to one agent
// are coalesced: while one is in flight, further requests only mark the
// agent, and one more push of the then current state follows. An agent
// that is offline simply misses the push; it asks for its state when it
// comes back (AgentDesiredRequest).
type pusher struct {
	s *Service

	mu     sync.Mutex
	base   context.Context // nil until run
	busy   map[string]bool
	again  map[string]bool
	agents map[string][2]string
	wg     sync.WaitGroup
}

func newPusher(s *Service) *pusher {
	return &pusher{s: s, busy: map[string]bool{}, again: map[string]bool{}, agents: map[string][2]string{}}
}

// push asks for the agent's current desired state to be delivered.
func (p *pusher) push(org, agent string) {
	k := org + "/" + agent
	p.mu.Lock()
	defer p.mu.Unlock()
	p.agents[k] = [2]string{org, agent}
	if p.busy[k] || p.base == nil {
		p.again[k] = true
		return
	}
	p.start(k)
}

// start runs the agent's push loop; p.mu is held.
func (p *pusher) start(k string) {
	p.busy[k] = true
	p.wg.Add(1)
	go p.loop(p.base, k)
}

// run starts the pushes requested before it and lets new ones start until
// ctx ends, then waits for those in flight.
func (p *pusher) run(ctx context.Context) {
	p.mu.Lock()
	p.base = ctx
	for k := range p.again {
		delete(p.again, k)
		p.start(k)
	}
	p.mu.Unlock()
	<-ctx.Done()
	p.mu.Lock()
	p.base = nil // no new pushes start once Wait has begun
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *pusher) loop(ctx context.Context, k string) {
	defer p.wg.Done()
	for {
		p.mu.Lock()
		id := p.agents[k]
		p.mu.Unlock()
		if ctx.Err() == nil {
			p.once(ctx, id[0], id[1])
		}
		p.mu.Lock()
		if p.again[k] && ctx.Err() == nil {
			delete(p.again, k)
			p.mu.Unlock()
			continue
		}
		delete(p.again, k)
		delete(p.busy, k)
		delete(p.agents, k)
		p.mu.Unlock()
		return
	}
}

// once pushes the stored state and handles the agent's reply like the
// nginx.applied event it also publishes.
func (p *pusher) once(ctx context.Context, org, agent string) {
	s := p.s
	doc, _, err := s.currentDoc(ctx, org, agent)
	if err != nil || doc == nil {
		if err != nil && ctx.Err() == nil {
			s.log.Warn("pushing desired state: reading it failed", "org_id", org, "agent_id", agent, "err", err)
		}
		return
	}
	var res events.NginxApplyResult
	err = s.callAgent(ctx, org, agent, events.OpAgentNginxApply, s.cfg.ApplyTimeout, doc.Desired(), &res)
	switch {
	case offline(err):
		s.log.Debug("agent offline: it will ask for its desired state when back", "org_id", org, "agent_id", agent)
		return
	case ctx.Err() != nil:
		return // shutting down: the agent asks for its state when it needs it
	case err != nil:
		s.log.Warn("pushing desired state to the agent failed", "org_id", org, "agent_id", agent,
			"revision", doc.Revision, "err", err)
		return
	}
	if err := s.handleResult(asAgent(ctx, org, agent), org, agent, res); err != nil && ctx.Err() == nil {
		s.log.Warn("recording the agent's apply result", "org_id", org, "agent_id", agent, "err", err)
	}
}
