package service

import (
	"context"
	"strings"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
	"github.com/infrapilot/infrapilot/services/proxy/internal/domain"
)

// settingsView is an agent's settings from the read model, with the
// revision of its stored desired state.
func (s *Service) settingsView(ctx context.Context, org, agent string) (events.ProxySettings, error) {
	a, _, err := s.db.GetAgent(ctx, org, agent)
	if err != nil {
		return events.ProxySettings{}, err
	}
	var desired uint64
	doc, _, err := s.currentDoc(ctx, org, agent)
	if err != nil {
		return events.ProxySettings{}, err
	}
	if doc != nil {
		desired = doc.Revision
	}
	return a.Settings(desired), nil
}

func (s *Service) getSettings(ctx context.Context, req events.ProxyAgentRequest) (events.ProxySettings, error) {
	c, err := s.onAgent(ctx, events.PermProxyRead, req.AgentID)
	if err != nil {
		return events.ProxySettings{}, err
	}
	return s.settingsView(ctx, c.OrgID, req.AgentID)
}

// setSettings changes the mode or the ACME contact. A mode change
// re-renders the agent: external mode carries no files, which tells the
// agent to leave nginx alone.
func (s *Service) setSettings(ctx context.Context, req events.ProxySettingsWrite) (events.ProxySettings, error) {
	c, err := s.onAgent(ctx, events.PermProxyWrite, req.AgentID)
	if err != nil {
		return events.ProxySettings{}, err
	}
	org, agent := c.OrgID, req.AgentID
	var v uint64
	err = eventstore.RetryConflicts(func() error {
		a, err := s.loadAgent(ctx, org, agent)
		if err != nil {
			return err
		}
		ev, err := a.SetSettings(req.Mode, req.ACMEEmail)
		if err != nil || ev == nil {
			return err
		}
		v, err = s.appendTo(ctx, org, events.ProxyAggAgent, agent, a.Ver, *ev)
		return err
	})
	if err != nil {
		return events.ProxySettings{}, err
	}
	if v > 0 {
		s.await(ctx, org, events.ProxyAggAgent, agent, v)
		_ = s.renderAndPush(ctx, org, agent)
	}
	return s.settingsView(ctx, org, agent)
}

// attachNetwork attaches the agent's nginx container to one of its
// networks, so that nginx reaches upstream containers on it by name.
func (s *Service) attachNetwork(ctx context.Context, req events.ProxyNetworkRequest) (events.ProxySettings, error) {
	return s.network(ctx, req, true)
}

// detachNetwork detaches it again.
func (s *Service) detachNetwork(ctx context.Context, req events.ProxyNetworkRequest) (events.ProxySettings, error) {
	return s.network(ctx, req, false)
}

func (s *Service) network(ctx context.Context, req events.ProxyNetworkRequest, attach bool) (events.ProxySettings, error) {
	c, err := s.onAgent(ctx, events.PermProxyWrite, req.AgentID)
	if err != nil {
		return events.ProxySettings{}, err
	}
	org, agent := c.OrgID, req.AgentID
	name := strings.TrimSpace(req.Network)
	if name == "" || len(name) > 255 {
		return events.ProxySettings{}, events.Invalid("invalid network").
			WithFields(events.FieldError{Field: "network", Message: "is required (a network name or id)"})
	}
	a, err := s.loadAgent(ctx, org, agent)
	if err != nil {
		return events.ProxySettings{}, err
	}
	container, err := a.NginxContainer()
	if err != nil {
		return events.ProxySettings{}, err
	}
	var nets events.List[events.Network]
	if err := s.callAgent(ctx, org, agent, events.OpAgentNetworksList, s.cfg.CallTimeout, events.Empty{}, &nets); err != nil {
		return events.ProxySettings{}, agentErr(err)
	}
	var net *events.Network
	for i := range nets.Items {
		if n := &nets.Items[i]; n.Name == name || n.ID == name {
			net = n
			break
		}
	}
	if net == nil {
		return events.ProxySettings{}, events.NotFound("network %q not found on the agent", name)
	}
	if attach {
		if err := domain.CheckAttachable(*net); err != nil {
			return events.ProxySettings{}, err
		}
	}
	op := events.OpAgentNetworkDisconnect
	if attach {
		op = events.OpAgentNetworkConnect
	}
	err = s.callAgent(ctx, org, agent, op, s.cfg.CallTimeout, events.NetworkConnectRequest{Network: net.Name, Container: container}, nil)
	switch code := events.ErrorCode(err); {
	case err == nil:
	case attach && code == events.CodeConflict:
		// Attached already (by hand, or a previous attempt whose reply
		// was lost): record it.
	case !attach && (code == events.CodeConflict || code == events.CodeNotFound) && a.Attached(net.Name):
		// Detached already: record it.
	default:
		return events.ProxySettings{}, agentErr(err)
	}
	var v uint64
	err = eventstore.RetryConflicts(func() error {
		a, err := s.loadAgent(ctx, org, agent)
		if err != nil || a.Attached(net.Name) == attach {
			return err
		}
		var ev events.Payload = events.ProxyNetworkDetached{Network: net.Name, Container: container}
		if attach {
			ev = events.ProxyNetworkAttached{Network: net.Name, Container: container}
		}
		v, err = s.appendTo(ctx, org, events.ProxyAggAgent, agent, a.Ver, ev)
		return err
	})
	if err != nil {
		return events.ProxySettings{}, err
	}
	if v > 0 {
		s.await(ctx, org, events.ProxyAggAgent, agent, v)
	}
	return s.settingsView(ctx, org, agent)
}

// agentErr turns an agent's unavailability into a clear answer.
func agentErr(err error) error {
	if offline(err) {
		return events.Errorf(events.CodeUnavailable, "the agent is not connected")
	}
	return err
}

// tlsHealth scores the certificates of every SSL host of the org.
func (s *Service) tlsHealth(ctx context.Context, _ events.Empty) (events.TLSHealthReport, error) {
	c, err := inOrg(ctx, events.PermProxyRead)
	if err != nil {
		return events.TLSHealthReport{}, err
	}
	hosts, err := s.db.OrgSSLHosts(ctx, c.OrgID)
	if err != nil {
		return events.TLSHealthReport{}, err
	}
	now := s.now()
	out := make([]events.TLSHostHealth, 0, len(hosts))
	for _, h := range hosts {
		out = append(out, domain.TLSHealth(h, now))
	}
	return domain.TLSReport(out), nil
}
