package service

import (
	"context"

	"github.com/google/uuid"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/app"
	"github.com/infrapilot/infrapilot/services/internal/platform/endpoint"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
	"github.com/infrapilot/infrapilot/services/internal/platform/readmodel"
	"github.com/infrapilot/infrapilot/services/proxy/internal/domain"
	"github.com/infrapilot/infrapilot/services/proxy/internal/nginxconf"
)

// register adds every operation of events/api_proxy.go. Each checks its
// permission first (proxy:read or proxy:write, in the handler), then that
// the agent is one of the org's.
func (s *Service) register(d app.Deps) {
	e := d.Endpoints
	endpoint.Handle(e, events.OpProxyHostsList, s.listHosts)
	endpoint.Handle(e, events.OpProxyHostCreate, s.createHost)
	endpoint.Handle(e, events.OpProxyHostGet, s.getHost)
	endpoint.Handle(e, events.OpProxyHostUpdate, s.updateHost)
	endpoint.Handle(e, events.OpProxyHostDelete, s.deleteHost)
	endpoint.Handle(e, events.OpProxyHostConfig, s.hostConfig)
	endpoint.Handle(e, events.OpProxyHostTest, s.testHost)
	endpoint.Handle(e, events.OpProxyHostSSL, s.requestCert)
	endpoint.Handle(e, events.OpProxySecurityHeadersSet, s.setSecurityHeaders)
	endpoint.Handle(e, events.OpProxyRateLimitCreate, s.createRateLimit)
	endpoint.Handle(e, events.OpProxyRateLimitUpdate, s.updateRateLimit)
	endpoint.Handle(e, events.OpProxyRateLimitDelete, s.deleteRateLimit)
	endpoint.Handle(e, events.OpProxySettingsGet, s.getSettings)
	endpoint.Handle(e, events.OpProxySettingsSet, s.setSettings)
	endpoint.Handle(e, events.OpProxyNetworkAttach, s.attachNetwork)
	endpoint.Handle(e, events.OpProxyNetworkDetach, s.detachNetwork)
	endpoint.Handle(e, events.OpProxyTLSHealth, s.tlsHealth)
}

// onAgent checks the caller's permission and that agent is the org's.
func (s *Service) onAgent(ctx context.Context, perm events.Permission, agent string) (caller, error) {
	c, err := inOrg(ctx, perm)
	if err != nil {
		return c, err
	}
	return c, s.knownAgent(ctx, c.OrgID, agent)
}

// hostOf returns a host of the agent from the read model: not_found for a
// host of another agent or org.
func (s *Service) hostOf(ctx context.Context, perm events.Permission, agent, id string) (caller, *domain.Host, error) {
	c, err := s.onAgent(ctx, perm, agent)
	if err != nil {
		return c, nil, err
	}
	if !events.ValidToken(id) {
		return c, nil, domain.ErrHostNotFound
	}
	h, ok, err := s.db.GetHost(ctx, c.OrgID, id)
	if err != nil {
		return c, nil, err
	}
	if !ok || h.AgentID != agent {
		return c, nil, domain.ErrHostNotFound
	}
	return c, h, nil
}

// view reads a host's view after a write (the read model has caught up).
func (s *Service) view(ctx context.Context, org, id string) (events.ProxyHost, error) {
	h, ok, err := s.db.GetHost(ctx, org, id)
	if err != nil {
		return events.ProxyHost{}, err
	}
	if !ok {
		return events.ProxyHost{}, domain.ErrHostNotFound
	}
	a, _, err := s.db.GetAgent(ctx, org, h.AgentID)
	if err != nil {
		return events.ProxyHost{}, err
	}
	return hostView(h, a.Networks), nil
}

func (s *Service) listHosts(ctx context.Context, req events.ProxyAgentRequest) (events.List[events.ProxyHost], error) {
	c, err := s.onAgent(ctx, events.PermProxyRead, req.AgentID)
	if err != nil {
		return events.List[events.ProxyHost]{}, err
	}
	page, err := readmodel.PageOf(req.Limit, req.Cursor)
	if err != nil {
		return events.List[events.ProxyHost]{}, err
	}
	hosts, next, err := s.db.ListHosts(ctx, c.OrgID, req.AgentID, page)
	if err != nil {
		return events.List[events.ProxyHost]{}, err
	}
	a, _, err := s.db.GetAgent(ctx, c.OrgID, req.AgentID)
	if err != nil {
		return events.List[events.ProxyHost]{}, err
	}
	out := events.List[events.ProxyHost]{Items: make([]events.ProxyHost, 0, len(hosts)), NextCursor: next}
	for _, h := range hosts {
		out.Items = append(out.Items, hostView(h, a.Networks))
	}
	return out, nil
}

func (s *Service) getHost(ctx context.Context, req events.ProxyHostRef) (events.ProxyHost, error) {
	c, h, err := s.hostOf(ctx, events.PermProxyRead, req.AgentID, req.HostID)
	if err != nil {
		return events.ProxyHost{}, err
	}
	a, _, err := s.db.GetAgent(ctx, c.OrgID, req.AgentID)
	if err != nil {
		return events.ProxyHost{}, err
	}
	return hostView(h, a.Networks), nil
}

// specOf builds the specification a write asks for on top of cur (nil on
// create: enabled, no security headers, no rate limits).
func specOf(req events.ProxyHostWrite, cur *events.ProxyHostSpec) events.ProxyHostSpec {
	spec := events.ProxyHostSpec{Domains: req.Domains, Upstream: req.Upstream, Websocket: req.Websocket, SSL: req.SSL, Enabled: true}
	if cur != nil {
		spec.Enabled, spec.SecurityHeaders, spec.RateLimits = cur.Enabled, cur.SecurityHeaders, cur.RateLimits
	}
	if req.Enabled != nil {
		spec.Enabled = *req.Enabled
	}
	if req.SecurityHeaders != nil {
		spec.SecurityHeaders = *req.SecurityHeaders
	}
	if req.RateLimits != nil {
		spec.RateLimits = req.RateLimits
	}
	return spec
}

// checkSpec normalises and validates a specification; the validator's
// field errors reach the caller as they are.
func checkSpec(spec events.ProxyHostSpec) (events.ProxyHostSpec, error) {
	spec = domain.Canonical(nginxconf.Normalize(spec))
	if err := nginxconf.Validate(spec); err != nil {
		return spec, err
	}
	return spec, nil
}

// checkDomains refuses domains another host of the agent serves.
func (s *Service) checkDomains(ctx context.Context, org, agent, self string, domains []string) error {
	other, dom, found, err := s.db.DomainOwner(ctx, org, agent, self, domains)
	if err != nil || !found {
		return err
	}
	return events.Errorf(events.CodeConflict, "%s is already served by proxy host %s of this agent", dom, other)
}

func (s *Service) createHost(ctx context.Context, req events.ProxyHostWrite) (events.ProxyHost, error) {
	c, err := s.onAgent(ctx, events.PermProxyWrite, req.AgentID)
	if err != nil {
		return events.ProxyHost{}, err
	}
	if req.HostID != "" {
		return events.ProxyHost{}, events.Invalid("a new host gets its id from the service").
			WithFields(events.FieldError{Field: "host_id", Message: "must be empty when creating a host"})
	}
	spec, err := checkSpec(specOf(req, nil))
	if err != nil {
		return events.ProxyHost{}, err
	}
	org, agent := c.OrgID, req.AgentID
	unlock := s.locks.lock("hosts/" + org + "/" + agent)
	defer unlock()
	n, err := s.db.AgentHostCount(ctx, org, agent)
	if err != nil {
		return events.ProxyHost{}, err
	}
	if n >= events.ProxyMaxHostsAgent {
		return events.ProxyHost{}, events.Errorf(events.CodeConflict, "an agent can have at most %d proxy hosts", events.ProxyMaxHostsAgent)
	}
	if err := s.checkDomains(ctx, org, agent, "", spec.Domains); err != nil {
		return events.ProxyHost{}, err
	}
	uid, err := uuid.NewV7()
	if err != nil {
		return events.ProxyHost{}, err
	}
	id := uid.String()
	v, err := s.appendTo(ctx, org, events.ProxyAggHost, id, 0, events.ProxyHostCreated{AgentID: agent, Spec: spec})
	if err != nil {
		return events.ProxyHost{}, err
	}
	s.await(ctx, org, events.ProxyAggHost, id, v)
	// The host is stored: a render that fails now is repaired by the
	// reconciler, and the host stays pending until then.
	_ = s.renderAndPush(ctx, org, agent)
	return s.view(ctx, org, id)
}

// changeHost applies change to a host of the agent (decided on the
// aggregate, retried on a concurrent change), then renders the agent. A
// change that leaves the specification as it is stores nothing.
func (s *Service) changeHost(ctx context.Context, agent, id string, change func(*domain.Host) (events.ProxyHostSpec, error)) (string, *domain.Host, error) {
	c, err := s.onAgent(ctx, events.PermProxyWrite, agent)
	if err != nil {
		return "", nil, err
	}
	if !events.ValidToken(id) {
		return "", nil, domain.ErrHostNotFound
	}
	org := c.OrgID
	unlock := s.locks.lock("hosts/" + org + "/" + agent)
	defer unlock()
	var v uint64
	var h *domain.Host
	err = eventstore.RetryConflicts(func() error {
		var err error
		if h, err = s.loadHost(ctx, org, id); err != nil {
			return err
		}
		if !h.Of(agent) {
			return domain.ErrHostNotFound
		}
		spec, err := change(h)
		if err != nil {
			return err
		}
		if spec, err = checkSpec(spec); err != nil {
			return err
		}
		if domain.SameSpec(spec, h.Spec) {
			v = 0
			return nil
		}
		if err := s.checkDomains(ctx, org, agent, id, spec.Domains); err != nil {
			return err
		}
		v, err = s.appendTo(ctx, org, events.ProxyAggHost, id, h.Ver, events.ProxyHostUpdated{AgentID: agent, Spec: spec})
		if err == nil {
			h.Spec = spec
		}
		return err
	})
	if err != nil {
		return org, nil, err
	}
	if v > 0 {
		s.await(ctx, org, events.ProxyAggHost, id, v)
		_ = s.renderAndPush(ctx, org, agent)
	}
	return org, h, nil
}

func (s *Service) updateHost(ctx context.Context, req events.ProxyHostWrite) (events.ProxyHost, error) {
	org, _, err := s.changeHost(ctx, req.AgentID, req.HostID, func(h *domain.Host) (events.ProxyHostSpec, error) {
		return specOf(req, &h.Spec), nil
	})
	if err != nil {
		return events.ProxyHost{}, err
	}
	return s.view(ctx, org, req.HostID)
}

func (s *Service) deleteHost(ctx context.Context, req events.ProxyHostRef) (events.Empty, error) {
	c, err := s.onAgent(ctx, events.PermProxyWrite, req.AgentID)
	if err != nil {
		return events.Empty{}, err
	}
	if !events.ValidToken(req.HostID) {
		return events.Empty{}, domain.ErrHostNotFound
	}
	org, agent := c.OrgID, req.AgentID
	var v uint64
	err = eventstore.RetryConflicts(func() error {
		h, err := s.loadHost(ctx, org, req.HostID)
		if err != nil {
			return err
		}
		if !h.Of(agent) {
			return domain.ErrHostNotFound
		}
		v, err = s.appendTo(ctx, org, events.ProxyAggHost, req.HostID, h.Ver, events.ProxyHostDeleted{AgentID: agent, Domains: h.Spec.Domains})
		return err
	})
	if err != nil {
		return events.Empty{}, err
	}
	s.await(ctx, org, events.ProxyAggHost, req.HostID, v)
	_ = s.renderAndPush(ctx, org, agent)
	return events.Empty{}, nil
}

func (s *Service) hostConfig(ctx context.Context, req events.ProxyHostRef) (events.ProxyHostConfig, error) {
	c, h, err := s.hostOf(ctx, events.PermProxyRead, req.AgentID, req.HostID)
	if err != nil {
		return events.ProxyHostConfig{}, err
	}
	a, _, err := s.db.GetAgent(ctx, c.OrgID, req.AgentID)
	if err != nil {
		return events.ProxyHostConfig{}, err
	}
	f, err := nginxconf.RenderHost(nginxconf.LayoutFor(a.Nginx),
		nginxconf.Host{ID: h.ID, Spec: h.Spec, CertReady: h.Spec.SSL.Enabled && h.CertReady()})
	if err != nil {
		return events.ProxyHostConfig{}, err
	}
	return events.ProxyHostConfig{HostID: h.ID, File: f.Path, Config: f.Content}, nil
}

// testHost asks the agent to run `nginx -t` on its complete desired state
// as it renders now, this host's current specification included.
func (s *Service) testHost(ctx context.Context, req events.ProxyHostRef) (events.NginxTestResult, error) {
	c, h, err := s.hostOf(ctx, events.PermProxyWrite, req.AgentID, req.HostID)
	if err != nil {
		return events.NginxTestResult{}, err
	}
	a, _, err := s.db.GetAgent(ctx, c.OrgID, req.AgentID)
	if err != nil {
		return events.NginxTestResult{}, err
	}
	if a.Mode == events.ProxyModeExternal {
		return events.NginxTestResult{}, events.Invalid("the agent's proxy mode is external: InfraPilot does not manage its nginx")
	}
	if !h.Spec.Enabled {
		h.Spec.Enabled = true // a test of a disabled host tests its configuration
	}
	hosts, err := s.db.AgentHosts(ctx, c.OrgID, req.AgentID)
	if err != nil {
		return events.NginxTestResult{}, err
	}
	for i := range hosts {
		if hosts[i].ID == h.ID {
			hosts[i] = h
		}
	}
	var rev uint64
	if cur, _, err := s.currentDoc(ctx, c.OrgID, req.AgentID); err == nil && cur != nil {
		rev = cur.Revision
	}
	doc, err := build(a, hosts, rev, nil)
	if err != nil {
		return events.NginxTestResult{}, err
	}
	var out events.NginxTestResult
	err = s.callAgent(ctx, c.OrgID, req.AgentID, events.OpAgentNginxTest, s.cfg.ApplyTimeout, doc.Desired(), &out)
	if offline(err) {
		return out, events.Errorf(events.CodeUnavailable, "the agent is not connected")
	}
	return out, err
}
