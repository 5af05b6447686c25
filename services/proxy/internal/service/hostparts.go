package service

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
	"github.com/infrapilot/infrapilot/services/proxy/internal/domain"
)

// setSecurityHeaders replaces a host's security headers. Field errors name
// the request's fields ("headers.csp").
func (s *Service) setSecurityHeaders(ctx context.Context, req events.ProxySecurityHeadersWrite) (events.SecurityHeaders, error) {
	_, h, err := s.changeHost(ctx, req.AgentID, req.HostID, func(h *domain.Host) (events.ProxyHostSpec, error) {
		spec := h.Spec
		spec.SecurityHeaders = req.Headers
		return spec, nil
	})
	if err != nil {
		return events.SecurityHeaders{}, renameFields(err, "security_headers", "headers")
	}
	return h.Spec.SecurityHeaders, nil
}

func (s *Service) createRateLimit(ctx context.Context, req events.ProxyRateLimitWrite) (events.RateLimit, error) {
	var before []string
	var index int
	_, h, err := s.changeHost(ctx, req.AgentID, req.HostID, func(h *domain.Host) (events.ProxyHostSpec, error) {
		spec := h.Spec
		before = before[:0]
		for _, rl := range spec.RateLimits {
			before = append(before, rl.ID)
		}
		if req.RateLimit.ID != "" && slices.Contains(before, req.RateLimit.ID) {
			return spec, events.Errorf(events.CodeConflict, "the host has a rate limit %s already", req.RateLimit.ID)
		}
		if len(spec.RateLimits) >= events.ProxyMaxRateLimits {
			return spec, events.Errorf(events.CodeConflict, "a host can have at most %d rate limits", events.ProxyMaxRateLimits)
		}
		index = len(spec.RateLimits)
		spec.RateLimits = append(slices.Clone(spec.RateLimits), req.RateLimit)
		return spec, nil
	})
	if err != nil {
		return events.RateLimit{}, renameFields(err, fmt.Sprintf("rate_limits[%d]", index), "rate_limit")
	}
	for _, rl := range h.Spec.RateLimits {
		if !slices.Contains(before, rl.ID) {
			return rl, nil
		}
	}
	return events.RateLimit{}, events.Errorf(events.CodeInternal, "the new rate limit was not stored")
}

func (s *Service) updateRateLimit(ctx context.Context, req events.ProxyRateLimitWrite) (events.RateLimit, error) {
	index := -1
	_, h, err := s.changeHost(ctx, req.AgentID, req.HostID, func(h *domain.Host) (events.ProxyHostSpec, error) {
		spec := h.Spec
		index = slices.IndexFunc(spec.RateLimits, func(rl events.RateLimit) bool { return rl.ID == req.RateLimit.ID })
		if req.RateLimit.ID == "" || index < 0 {
			return spec, events.NotFound("rate limit not found")
		}
		spec.RateLimits = slices.Clone(spec.RateLimits)
		spec.RateLimits[index] = req.RateLimit
		return spec, nil
	})
	if err != nil {
		return events.RateLimit{}, renameFields(err, fmt.Sprintf("rate_limits[%d]", index), "rate_limit")
	}
	return h.Spec.RateLimits[index], nil
}

func (s *Service) deleteRateLimit(ctx context.Context, req events.ProxyRateLimitRef) (events.Empty, error) {
	_, _, err := s.changeHost(ctx, req.AgentID, req.HostID, func(h *domain.Host) (events.ProxyHostSpec, error) {
		spec := h.Spec
		i := slices.IndexFunc(spec.RateLimits, func(rl events.RateLimit) bool { return rl.ID == req.RateLimitID })
		if req.RateLimitID == "" || i < 0 {
			return spec, events.NotFound("rate limit not found")
		}
		spec.RateLimits = slices.Delete(slices.Clone(spec.RateLimits), i, i+1)
		return spec, nil
	})
	return events.Empty{}, err
}

// renameFields rewrites the validator's field names under prefix (the
// host specification's) to the request's own (to), so that a caller of
// a partial write learns which of its fields is wrong.
func renameFields(err error, prefix, to string) error {
	e := events.AsError(err)
	if e.Code != events.CodeInvalid || len(e.Fields) == 0 {
		return err
	}
	out := *e
	out.Fields = make([]events.FieldError, len(e.Fields))
	for i, f := range e.Fields {
		if rest, ok := strings.CutPrefix(f.Field, prefix); ok && (rest == "" || rest[0] == '.' || rest[0] == '[') {
			f.Field = to + rest
		}
		out.Fields[i] = f
	}
	return &out
}

// requestCert asks for a certificate for the host's domains: the request
// is recorded (which claims it for this replica) and the certificate
// worker sends it to the agent at once. A request already in flight is
// not repeated.
func (s *Service) requestCert(ctx context.Context, req events.ProxyHostRef) (events.ProxyHost, error) {
	c, err := s.onAgent(ctx, events.PermProxyWrite, req.AgentID)
	if err != nil {
		return events.ProxyHost{}, err
	}
	if !events.ValidToken(req.HostID) {
		return events.ProxyHost{}, domain.ErrHostNotFound
	}
	org, agent := c.OrgID, req.AgentID
	a, _, err := s.db.GetAgent(ctx, org, agent)
	if err != nil {
		return events.ProxyHost{}, err
	}
	if a.Mode == events.ProxyModeExternal {
		return events.ProxyHost{}, events.Invalid("the agent's proxy mode is external: InfraPilot does not manage its nginx, which answers the ACME challenge")
	}
	var v uint64
	var claim *certClaim
	err = eventstore.RetryConflicts(func() error {
		h, err := s.loadHost(ctx, org, req.HostID)
		if err != nil {
			return err
		}
		if !h.Of(agent) {
			return domain.ErrHostNotFound
		}
		ev, err := h.RequestCert()
		if err != nil || ev == nil {
			v = h.Ver
			return err
		}
		v, err = s.appendTo(ctx, org, events.ProxyAggHost, req.HostID, h.Ver, *ev)
		if err == nil {
			claim = &certClaim{org: org, host: req.HostID, agent: agent, domains: ev.Domains, attempt: ev.Attempt}
		}
		return err
	})
	if err != nil {
		return events.ProxyHost{}, err
	}
	s.await(ctx, org, events.ProxyAggHost, req.HostID, v)
	if claim != nil {
		s.certs.enqueue(*claim)
	}
	return s.view(ctx, org, req.HostID)
}
