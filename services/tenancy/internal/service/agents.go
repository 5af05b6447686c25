package service

import (
	"context"
	"strings"

	"github.com/google/uuid"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
	"github.com/infrapilot/infrapilot/services/internal/platform/readmodel"
	"github.com/infrapilot/infrapilot/services/tenancy/internal/domain"
)

// AgentCredentials issues and revokes the NATS credentials of agents. The
// control plane that runs the hub provides it (natsauth); without it the
// service cannot enroll agents and says so.
type AgentCredentials interface {
	// Issue returns a .creds file for agent in org and the public key
	// that names it for revocation.
	Issue(org, agent string) (creds []byte, key string, err error)
	// Revoke makes the credentials with key stop working and closes
	// their connections.
	Revoke(ctx context.Context, key string) error
	// URL is the hub's leafnode URL agents dial.
	URL() string
}

// Maximum lengths of an agent's self-reported facts.
const (
	maxHostname = 253
	maxFact     = 64
)

// enrollAgent enrolls a machine: one use of the token (whose rules
// useEnrollmentToken keeps), then the agent aggregate: new for a machine
// the org does not know, re-enrolled (same id, new credentials, the old
// ones revoked) for one it does.
func (s *Service) enrollAgent(ctx context.Context, req events.EnrollAgentRequest) (events.AgentEnrollment, error) {
	var p domain.Problems
	domain.CheckFingerprint(&p, "fingerprint", req.Fingerprint)
	hostname := fact(&p, "hostname", req.Hostname, maxHostname, true)
	osName := fact(&p, "os", req.OS, maxFact, true)
	arch := fact(&p, "arch", req.Arch, maxFact, true)
	version := fact(&p, "version", req.Version, maxFact, false)
	if err := p.Err(); err != nil {
		return events.AgentEnrollment{}, err
	}
	if s.creds == nil {
		return events.AgentEnrollment{}, events.Errorf(events.CodeUnavailable, "this control plane does not issue agent credentials (its NATS hub is not in operator mode)")
	}
	use, err := s.useEnrollmentToken(ctx, events.UseEnrollmentTokenRequest{Token: req.Token, Fingerprint: req.Fingerprint})
	if err != nil {
		return events.AgentEnrollment{}, err
	}
	org := use.OrgID
	id, known, err := s.db.AgentByFingerprint(ctx, org, req.Fingerprint)
	if err != nil {
		return events.AgentEnrollment{}, err
	}
	if !known {
		// A repeated use spends nothing and is not checked against the
		// plan by the token; a machine that was deleted and comes back
		// with the same token must still fit.
		o, err := s.loadOrg(ctx, org)
		if err != nil {
			return events.AgentEnrollment{}, err
		}
		enrolled, n, err := s.db.AgentEnrolled(ctx, org, req.Fingerprint)
		if err != nil {
			return events.AgentEnrollment{}, err
		}
		if plan := s.plan(o.Plan); !enrolled && !plan.AgentsAllowed(n) {
			return events.AgentEnrollment{}, domain.PlanLimitError("agents", o.Plan, plan.MaxAgents)
		}
		uid, err := uuid.NewV7()
		if err != nil {
			return events.AgentEnrollment{}, err
		}
		id = uid.String()
	}
	creds, key, err := s.creds.Issue(org, id)
	if err != nil {
		return events.AgentEnrollment{}, err
	}
	var v uint64
	var previous string
	if !known {
		v, err = s.appendTo(ctx, org, events.TenancyAggAgent, id, 0, events.AgentEnrolled{
			Fingerprint: req.Fingerprint, Hostname: hostname, OS: osName, Arch: arch, Version: version,
			TokenID: use.TokenID, Labels: use.Labels, CredentialKey: key})
	} else {
		err = eventstore.RetryConflicts(func() error {
			a, err := s.loadAgent(ctx, org, id)
			if err != nil {
				return err
			}
			if !a.Exists() {
				return events.Errorf(events.CodeConflict, "the agent was deleted while enrolling; enroll again")
			}
			previous = a.CredentialKey
			v, err = s.appendTo(ctx, org, events.TenancyAggAgent, id, a.Ver, events.AgentReenrolled{
				Hostname: hostname, OS: osName, Arch: arch, Version: version, TokenID: use.TokenID,
				CredentialKey: key, PreviousKey: previous})
			return err
		})
	}
	if err != nil {
		return events.AgentEnrollment{}, err
	}
	if previous != "" && previous != key {
		if err := s.creds.Revoke(ctx, previous); err != nil {
			// The new credentials work; the old ones stay valid until a
			// later revocation succeeds. Say so rather than fail the
			// enrollment the machine now depends on.
			s.log.Error("revoking an agent's previous credentials failed", "org_id", org, "agent_id", id, "err", err)
		}
	}
	s.await(ctx, events.TenancyAggAgent, id, v)
	return events.AgentEnrollment{AgentID: id, OrgID: org, NATSURL: s.creds.URL(), Credentials: string(creds), Reenrolled: known}, nil
}

// fact cleans one self-reported fact of a machine: printable, bounded.
func fact(p *domain.Problems, field, v string, maxLen int, required bool) string {
	v = strings.TrimSpace(v)
	switch {
	case v == "" && required:
		p.Add(field, "is required")
	case len(v) > maxLen:
		p.Add(field, "is too long")
	default:
		for _, r := range v {
			if r < ' ' || r == 0x7f {
				p.Add(field, "must not contain control characters")
				break
			}
		}
	}
	return v
}

func (s *Service) enrollStatus(ctx context.Context, req events.EnrollStatusRequest) (events.EnrollStatus, error) {
	c, err := inOrg(ctx, events.PermAgentsRead)
	if err != nil {
		return events.EnrollStatus{}, err
	}
	var p domain.Problems
	domain.CheckFingerprint(&p, "fingerprint", req.Fingerprint)
	if err := p.Err(); err != nil {
		return events.EnrollStatus{}, err
	}
	id, ok, err := s.db.AgentByFingerprint(ctx, c.OrgID, req.Fingerprint)
	if err != nil || !ok {
		return events.EnrollStatus{}, err
	}
	a, ok, err := s.db.GetAgent(ctx, c.OrgID, id)
	if err != nil || !ok {
		return events.EnrollStatus{}, err
	}
	return events.EnrollStatus{Enrolled: true, AgentID: id, Status: a.Status}, nil
}

func (s *Service) listAgents(ctx context.Context, req events.ListRequest) (events.List[events.Agent], error) {
	c, err := inOrg(ctx, events.PermAgentsRead)
	if err != nil {
		return events.List[events.Agent]{}, err
	}
	page, err := readmodel.PageOf(req.Limit, req.Cursor)
	if err != nil {
		return events.List[events.Agent]{}, err
	}
	items, next, err := s.db.ListAgents(ctx, c.OrgID, page)
	return events.List[events.Agent]{Items: nonNil(items), NextCursor: next}, err
}

func (s *Service) getAgent(ctx context.Context, req events.IDRequest) (events.Agent, error) {
	c, err := inOrg(ctx, events.PermAgentsRead)
	if err != nil {
		return events.Agent{}, err
	}
	if !events.ValidToken(req.ID) {
		return events.Agent{}, domain.ErrAgentNotFound
	}
	a, ok, err := s.db.GetAgent(ctx, c.OrgID, req.ID)
	if err != nil {
		return events.Agent{}, err
	}
	if !ok {
		return events.Agent{}, domain.ErrAgentNotFound
	}
	return a, nil
}

// deleteAgent deletes an agent and revokes its credentials. The deletion
// is stored first: were the revocation to fail, retrying the delete
// revokes again (a deleted agent answers not_found only once its key is
// revoked).
func (s *Service) deleteAgent(ctx context.Context, req events.IDRequest) (events.Empty, error) {
	c, err := inOrg(ctx, events.PermAgentsManage)
	if err != nil {
		return events.Empty{}, err
	}
	if !events.ValidToken(req.ID) {
		return events.Empty{}, domain.ErrAgentNotFound
	}
	var key string
	var v uint64
	gone := false
	err = eventstore.RetryConflicts(func() error {
		a, err := s.loadAgent(ctx, c.OrgID, req.ID)
		if err != nil {
			return err
		}
		if a.Deleted {
			// Deleted before: revoke again (cheap, idempotent) in case
			// that deletion's revocation failed, and answer not_found.
			key, v, gone = a.CredentialKey, a.Ver, true
			return nil
		}
		ev, err := a.Delete()
		if err != nil {
			return err
		}
		key = ev.CredentialKey
		v, err = s.appendTo(ctx, c.OrgID, events.TenancyAggAgent, req.ID, a.Ver, *ev)
		return err
	})
	if err != nil {
		return events.Empty{}, err
	}
	if s.creds != nil && key != "" {
		if err := s.creds.Revoke(ctx, key); err != nil {
			return events.Empty{}, events.Errorf(events.CodeUnavailable, "the agent is deleted but its credentials could not be revoked yet; delete it again: %v", err)
		}
	}
	if gone {
		return events.Empty{}, domain.ErrAgentNotFound
	}
	s.await(ctx, events.TenancyAggAgent, req.ID, v)
	return events.Empty{}, nil
}

func (s *Service) loadAgent(ctx context.Context, orgID, id string) (*domain.Agent, error) {
	evs, v, err := s.es.Load(ctx, eventstore.Ref{OrgID: orgID, Type: events.TenancyAggAgent, ID: id})
	if err != nil {
		return nil, err
	}
	return domain.ReplayAgent(orgID, id, evs, v)
}
