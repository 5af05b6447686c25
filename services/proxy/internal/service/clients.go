package service

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/reqctx"
	"github.com/infrapilot/infrapilot/services/internal/platform/svcclient"
	"github.com/nats-io/nats.go"
)

// request sends req to subject on behalf of the work in ctx and decodes the
// reply into resp (nil: ignore it) or returns the responder's
// *events.Error (svcclient.Call). Services and agents answer the same way
// (micro-style error replies). who names the responder in messages ("the
// agent", "the tenancy service").
func request(ctx context.Context, nc *nats.Conn, subject, who string, req, resp any) error {
	return svcclient.Call(ctx, nc, subject, svcclient.Named(who), req, resp)
}

// offline reports whether err says the agent was not connected (nobody
// served its subject), which is normal.
func offline(err error) bool { return errors.Is(err, nats.ErrNoResponders) }

// callAgent sends one command to an agent, bounded by timeout.
func (s *Service) callAgent(ctx context.Context, org, agent, op string, timeout time.Duration, req, resp any) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return request(ctx, s.nc, events.AgentCommand(org, agent, op), "the agent", req, resp)
}

// errAgentNotFound answers an agent the org does not have.
var errAgentNotFound = events.NotFound("agent not found")

// knownAgent checks with the tenancy service that agent is a live agent
// of org; not_found otherwise (an agent of another org included). Answers
// are cached for a few seconds: agents ask for their desired state and
// every operation names one.
func (s *Service) knownAgent(ctx context.Context, org, agent string) error {
	if !events.ValidToken(org) || !events.ValidToken(agent) {
		return errAgentNotFound
	}
	if ok, hit := s.agents.get(org, agent); hit {
		if !ok {
			return errAgentNotFound
		}
		return nil
	}
	// The lookup is the service's own: it asks as a viewer of org
	// (agents:read), carrying the request's ids for tracing.
	info := reqctx.From(ctx)
	info.OrgID, info.Role, info.Actor = org, string(events.RoleViewer), events.SystemActor(Name)
	cctx, cancel := context.WithTimeout(reqctx.With(ctx, info), s.cfg.CallTimeout)
	defer cancel()
	err := request(cctx, s.nc, events.ServiceEndpoint("tenancy", events.OpTenancyGetAgent), "the tenancy service",
		events.IDRequest{ID: agent}, nil)
	switch events.ErrorCode(err) {
	case "":
		s.agents.put(org, agent, true)
		return nil
	case events.CodeNotFound:
		s.agents.put(org, agent, false)
		return errAgentNotFound
	default:
		return err
	}
}

// agentCache remembers the tenancy service's answers about agents.
type agentCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]agentAnswer
}

type agentAnswer struct {
	ok bool
	at time.Time
}

// maxCachedAgents bounds the cache; past it, it starts over.
const maxCachedAgents = 100_000

func newAgentCache(ttl time.Duration) *agentCache {
	return &agentCache{ttl: ttl, m: map[string]agentAnswer{}}
}

func (c *agentCache) get(org, agent string) (ok, hit bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, found := c.m[org+"/"+agent]
	if !found || time.Since(a.at) > c.ttl {
		return false, false
	}
	return a.ok, true
}

func (c *agentCache) put(org, agent string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCachedAgents {
		c.m = map[string]agentAnswer{}
	}
	c.m[org+"/"+agent] = agentAnswer{ok: ok, at: time.Now()}
}
