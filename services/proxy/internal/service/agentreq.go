package service

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
	"github.com/infrapilot/infrapilot/services/proxy/internal/nginxconf"
	"github.com/nats-io/nats.go"
)

// desiredQueue is the queue group of the desired-state subscription: each
// agent's request is answered by one replica.
const desiredQueue = "proxy_desired"

// maxDesiredInFlight bounds the desired-state requests handled at once
// (agents reconnecting together after a hub restart).
const maxDesiredInFlight = 32

// desiredTimeout bounds answering one desired-state request.
const desiredTimeout = 20 * time.Second

// serveDesired answers agents asking for their desired nginx state on
// AgentDesiredRequest. It returns the function that stops it.
func (s *Service) serveDesired(ctx context.Context) (func(), error) {
	sem := make(chan struct{}, maxDesiredInFlight)
	var (
		mu     sync.Mutex
		closed bool
		wg     sync.WaitGroup
	)
	sub, err := s.nc.QueueSubscribe(events.AgentDesiredRequest("*", "*"), desiredQueue, func(m *nats.Msg) {
		mu.Lock()
		if closed {
			mu.Unlock()
			return
		}
		wg.Add(1)
		mu.Unlock()
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			s.answerDesired(ctx, m)
		}()
	})
	if err != nil {
		return nil, err
	}
	return func() {
		_ = sub.Unsubscribe()
		mu.Lock()
		closed = true
		mu.Unlock()
		wg.Wait()
	}, nil
}

// answerDesired handles one request: the org and agent are the subject's
// (the hub only lets an agent publish under its own), the agent must be
// one of that org's (the tenancy service says), what it reports about its
// nginx is recorded, and the reply is its stored desired state, rendered
// first when there is none yet or the reported layout changed it.
func (s *Service) answerDesired(ctx context.Context, m *nats.Msg) {
	ctx, cancel := context.WithTimeout(ctx, desiredTimeout)
	defer cancel()
	org, agent, ok := agentOf(m.Subject, "desired")
	if !ok {
		return
	}
	d, err := s.desiredFor(asAgent(ctx, org, agent), org, agent, m.Data)
	if err != nil {
		e := events.AsError(err)
		if e.Code == events.CodeInternal {
			s.log.Error("answering an agent's desired-state request", "org_id", org, "agent_id", agent, "err", err)
		}
		reply := nats.NewMsg(m.Reply)
		reply.Header.Set(events.HeaderServiceErrorCode, string(e.Code))
		reply.Header.Set(events.HeaderServiceError, e.Message)
		reply.Data, _ = json.Marshal(e)
		_ = m.RespondMsg(reply)
		return
	}
	b, err := json.Marshal(d)
	if err != nil {
		return
	}
	_ = m.Respond(b)
}

func (s *Service) desiredFor(ctx context.Context, org, agent string, body []byte) (events.NginxDesired, error) {
	if err := s.knownAgent(ctx, org, agent); err != nil {
		return events.NginxDesired{}, err
	}
	var info events.NginxAgentInfo
	if len(body) > 0 {
		if err := json.Unmarshal(body, &info); err != nil {
			return events.NginxDesired{}, events.Invalid("malformed nginx report: %v", err)
		}
	}
	if err := nginxconf.CheckLayout(nginxconf.LayoutFor(&info)); err != nil {
		// Recorded, it would make every render of this agent fail.
		return events.NginxDesired{}, err
	}
	err := eventstore.RetryConflicts(func() error {
		a, err := s.loadAgent(ctx, org, agent)
		if err != nil {
			return err
		}
		ev := a.Report(&info, 0, a.LastError)
		if ev == nil {
			return nil
		}
		v, err := s.appendTo(ctx, org, events.ProxyAggAgent, agent, a.Ver, *ev)
		if err == nil {
			s.await(ctx, org, events.ProxyAggAgent, agent, v)
		}
		return err
	})
	if err != nil {
		return events.NginxDesired{}, err
	}
	// Rendering is a no-op when nothing changed; it stores the first
	// state of a new agent and re-renders for a new layout. The reply
	// carries it, so there is no push.
	doc, _, err := s.render(ctx, org, agent)
	if err != nil {
		return events.NginxDesired{}, err
	}
	return doc.Desired(), nil
}
