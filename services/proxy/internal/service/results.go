package service

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/app"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
	"github.com/infrapilot/infrapilot/services/internal/platform/reqctx"
	"github.com/infrapilot/infrapilot/services/internal/platform/router"
	"github.com/infrapilot/infrapilot/services/proxy/internal/domain"
	"github.com/infrapilot/infrapilot/services/proxy/internal/nginxconf"
)

// ResultsHandler is the durable consumer of the agents' nginx events on
// AGENT_EVENTS. Renaming it re-reads the stream (harmless: results are
// credited idempotently).
const ResultsHandler = "proxy_agent_nginx"

// registerResults consumes the nginx.applied and nginx.drift events agents
// publish through their outboxes (Docker events share the subject and are
// skipped). The org and agent are the subject's: an agent can only
// publish under its own.
func (s *Service) registerResults(d app.Deps) error {
	return d.Router.AddHandler(ResultsHandler, events.StreamAgentEvents, []string{events.AgentEvents("*", "*")},
		func(ctx context.Context, msg *message.Message) error {
			dl, _ := router.DeliveryFrom(ctx)
			org, agent, ok := agentOf(dl.Subject, "events")
			if !ok {
				return nil
			}
			var ev events.AgentNginxEvent
			if err := json.Unmarshal(msg.Payload, &ev); err != nil {
				return nil // not an nginx event of this version: not ours
			}
			ctx = asAgent(ctx, org, agent)
			switch {
			case ev.Kind == events.AgentEventKindNginxApplied && ev.Result != nil:
				return s.handleResult(ctx, org, agent, *ev.Result)
			case ev.Kind == events.AgentEventKindNginxDrift && ev.Drift != nil:
				return s.handleDrift(ctx, org, agent, *ev.Drift)
			}
			return nil
		})
}

// agentOf reads org and agent from "agent.<org>.<agent>.<kind>".
func agentOf(subject, kind string) (org, agent string, ok bool) {
	t := strings.Split(subject, ".")
	if len(t) != 4 || t[0] != "agent" || t[3] != kind || !events.ValidToken(t[1]) || !events.ValidToken(t[2]) {
		return "", "", false
	}
	return t[1], t[2], true
}

// asAgent makes the agent the actor of the events its report causes.
func asAgent(ctx context.Context, org, agent string) context.Context {
	info := reqctx.From(ctx)
	info.OrgID, info.Role, info.Actor = org, "", events.Actor{Kind: events.ActorAgent, ID: agent}
	return reqctx.With(ctx, info)
}

// handleResult records an apply result, from the agent's reply to a push
// or from its nginx.applied event (so usually twice: every step is
// idempotent). The agent's facts, applied revision and whole-set error go
// on its aggregate; each host named is credited applied or failed only if
// the result's revision carries the host's current rendering (its mark in
// the stored state: Since <= revision, same host version). A whole-set
// error fails the hosts this revision was bringing in.
func (s *Service) handleResult(ctx context.Context, org, agent string, res events.NginxApplyResult) error {
	doc, _, err := s.currentDoc(ctx, org, agent)
	if err != nil {
		return err
	}
	if doc == nil {
		doc = &desiredDoc{}
	}
	var info *events.NginxAgentInfo
	if res.Nginx != (events.NginxAgentInfo{}) && nginxconf.CheckLayout(nginxconf.LayoutFor(&res.Nginx)) == nil {
		info = &res.Nginx
	}
	var appliedBefore uint64
	var layout bool
	err = eventstore.RetryConflicts(func() error {
		a, err := s.loadAgent(ctx, org, agent)
		if err != nil {
			return err
		}
		appliedBefore = a.AppliedRevision
		lastErr, applied := a.LastError, uint64(0)
		switch {
		case res.Stale:
		case res.Error != "":
			lastErr = res.Error
		case res.Applied:
			lastErr, applied = "", res.Revision
		}
		ev := a.Report(info, applied, lastErr)
		if ev == nil {
			return nil
		}
		layout = info != nil && (a.Nginx == nil || *a.Nginx != *info)
		v, err := s.appendTo(ctx, org, events.ProxyAggAgent, agent, a.Ver, *ev)
		if err == nil && layout {
			s.await(ctx, org, events.ProxyAggAgent, agent, v)
		}
		return err
	})
	if err != nil {
		return err
	}
	if layout {
		// New facts may be a new layout (root, ports), which changes
		// every file: render (a no-op when the layout is the same).
		_ = s.renderAndPush(ctx, org, agent)
	}
	if res.Stale {
		return nil
	}
	// The read model tells which hosts already show this outcome, so that
	// a result for many hosts loads only the aggregates it changes. (If
	// the row lags a newer event, its render version differs from the
	// mark and the aggregate is loaded.)
	rows, err := s.db.AgentHosts(ctx, org, agent)
	if err != nil {
		return err
	}
	shown := make(map[string]*domain.Host, len(rows))
	for _, h := range rows {
		shown[h.ID] = h
	}
	credit := func(id, status, msg string) error {
		if h := shown[id]; h != nil && h.RenderVersion == doc.Hosts[id].Version && h.Status == status &&
			(status == events.NginxHostApplied && h.StatusMessage == "" || status == events.NginxHostFailed && h.StatusMessage == msg) {
			return nil
		}
		return s.creditHost(ctx, org, agent, id, res.Revision, doc, status, msg)
	}
	named := map[string]bool{}
	for _, hr := range res.Hosts {
		named[hr.HostID] = true
		if err := credit(hr.HostID, hr.Status, hr.Error); err != nil {
			return err
		}
	}
	if res.Error == "" {
		return nil
	}
	for id, m := range doc.Hosts {
		if named[id] || m.Since <= appliedBefore || m.Since > res.Revision {
			continue
		}
		if err := credit(id, events.NginxHostFailed, res.Error); err != nil {
			return err
		}
	}
	return nil
}

// creditHost records one host's outcome in revision rev, when rev carries
// the host's current rendering. A host of another agent is ignored.
func (s *Service) creditHost(ctx context.Context, org, agent, id string, rev uint64, doc *desiredDoc, status, msg string) error {
	m, ok := doc.Hosts[id]
	if !ok || rev < m.Since || !events.ValidToken(id) {
		return nil
	}
	return eventstore.RetryConflicts(func() error {
		h, err := s.loadHost(ctx, org, id)
		if err != nil {
			return err
		}
		if !h.Of(agent) || h.RenderVersion != m.Version {
			return nil
		}
		var ev events.Payload
		switch status {
		case events.NginxHostApplied:
			if e := h.Applied(rev); e != nil {
				ev = *e
			}
		case events.NginxHostFailed:
			if msg == "" {
				msg = "nginx refused the configuration"
			}
			if e := h.Failed(rev, msg); e != nil {
				ev = *e
			}
		}
		if ev == nil {
			return nil
		}
		_, err = s.appendTo(ctx, org, events.ProxyAggHost, id, h.Ver, ev)
		return err
	})
}

// handleDrift records a drift report on each host it names that belongs
// to the agent.
func (s *Service) handleDrift(ctx context.Context, org, agent string, d events.NginxDrift) error {
	for _, id := range d.HostIDs {
		if !events.ValidToken(id) {
			continue
		}
		files := hostFiles(d.Files, id)
		err := eventstore.RetryConflicts(func() error {
			h, err := s.loadHost(ctx, org, id)
			if err != nil || !h.Of(agent) {
				return err
			}
			_, err = s.appendTo(ctx, org, events.ProxyAggHost, id, h.Ver,
				events.ProxyHostDrift{AgentID: agent, Files: files, Restored: d.Restored, Error: d.Error})
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// hostFiles picks the files of a drift report that belong to one host
// (all of them when none is recognisably its own).
func hostFiles(files []string, hostID string) []string {
	var out []string
	for _, f := range files {
		if strings.Contains(f, hostID) {
			out = append(out, f)
		}
	}
	if out == nil {
		out = append([]string{}, files...)
	}
	return out
}

// hostView turns a host into the API's view; networks are the agent's.
func hostView(h *domain.Host, networks []string) events.ProxyHost {
	if networks == nil {
		networks = []string{}
	}
	spec := h.Spec
	if spec.Domains == nil {
		spec.Domains = []string{}
	}
	if spec.RateLimits == nil {
		spec.RateLimits = []events.RateLimit{}
	}
	return events.ProxyHost{ID: h.ID, OrgID: h.OrgID, AgentID: h.AgentID, ProxyHostSpec: spec, Status: h.ViewStatus(),
		StatusMessage: h.StatusMessage, Revision: h.AppliedRevision, Cert: h.CertView(), Networks: networks,
		CreatedAt: h.CreatedAt.UTC(), UpdatedAt: h.UpdatedAt.UTC()}
}
