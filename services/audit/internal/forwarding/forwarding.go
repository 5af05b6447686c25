// Package forwarding connects the audit configuration to the SIEM
// forwarders (package forward): it validates the destinations a PUT
// /audit/config names, keeps their secrets in the audit schema (events
// refer to a secret only by a random id, never carry it), projects the
// audit.forwarding.updated events, and keeps every instance's
// forward.Manager running exactly the configured destinations. It also
// answers POST /audit/forwarding/test.
//
// Every instance runs every destination's forwarder; they share each
// destination's durable consumer, so one of them delivers at a time. An
// instance learns of a change from the projection it writes, or within
// Config.Resync from the table (another instance projected it).
package forwarding

import (
	"context"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	"github.com/google/uuid"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/audit/internal/authz"
	"github.com/infrapilot/infrapilot/services/audit/internal/forward"
	"github.com/infrapilot/infrapilot/services/internal/platform/endpoint"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
)

// Config configures forwarding.
type Config struct {
	// Forward is the forwarders' configuration (batching, backoff, and
	// whether destinations may be on private networks or plain http).
	Forward forward.Config
	// Resync is how often an instance re-reads the configured
	// destinations (default 10s).
	Resync time.Duration
	// MaxDestinations caps an org's destinations (default 10).
	MaxDestinations int
}

// Service runs the forwarders and validates their configuration.
type Service struct {
	cfg  Config
	db   *pgxpool.Pool
	mgr  *forward.Manager
	log  *slog.Logger
	kick chan struct{}
}

// New returns the service; Run starts the forwarders.
func New(cfg Config, js jetstream.JetStream, db *pgxpool.Pool, log *slog.Logger) *Service {
	if cfg.Resync <= 0 {
		cfg.Resync = 10 * time.Second
	}
	if cfg.MaxDestinations <= 0 {
		cfg.MaxDestinations = 10
	}
	log = log.With("component", "audit_forwarding")
	return &Service{cfg: cfg, db: db, mgr: forward.NewManager(js, cfg.Forward, log), log: log, kick: make(chan struct{}, 1)}
}

// Register adds the test operation.
func (s *Service) Register(ep *endpoint.Server) {
	endpoint.Handle(ep, events.OpAuditForwardingTest, s.test)
}

// Kick asks Run to apply the configuration now.
func (s *Service) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run runs the forwarders of every configured destination until ctx ends,
// applying configuration changes as they are projected.
func (s *Service) Run(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- s.mgr.Run(ctx) }()
	applied := map[string]bool{}
	t := time.NewTicker(s.cfg.Resync)
	defer t.Stop()
	for {
		s.resync(ctx, applied)
		select {
		case <-ctx.Done():
			return <-done
		case <-t.C:
		case <-s.kick:
		}
	}
}

// resync applies every org's configured destinations, with their secrets.
func (s *Service) resync(ctx context.Context, applied map[string]bool) {
	all, err := s.all(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("audit forwarding: read configuration", "err", err)
		}
		return
	}
	for org := range applied {
		if _, ok := all[org]; !ok {
			all[org] = nil
		}
	}
	for org, ds := range all {
		fds := make([]forward.Destination, 0, len(ds))
		for _, d := range ds {
			secret, err := s.secret(ctx, org, d.ID, d.SecretID)
			if err != nil {
				s.log.Warn("audit forwarding: read secret", "org_id", org, "destination", d.ID, "err", err)
				return
			}
			fds = append(fds, toForward(org, d.AuditDestinationConfig, secret))
		}
		if err := s.mgr.Apply(ctx, org, fds); err != nil {
			s.log.Error("audit forwarding: apply", "org_id", org, "err", err)
			continue
		}
		if len(fds) > 0 {
			applied[org] = true
		} else {
			delete(applied, org)
		}
	}
	if err := s.pruneSecrets(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("audit forwarding: prune secrets", "err", err)
	}
}

func toForward(org string, c events.AuditDestinationConfig, secret string) forward.Destination {
	return forward.Destination{ID: c.ID, OrgID: org, Kind: forward.Kind(c.Kind), URL: c.URL, Address: c.Address, TLS: c.TLS,
		CACertPEM: c.CACertPEM, ServerName: c.ServerName, Index: c.Index, Hostname: c.Hostname, FromStart: c.FromStart,
		Secret: secret}
}

// Current returns org's configured destinations (for the configuration
// operation's decision).
func (s *Service) Current(ctx context.Context, org string) ([]events.AuditForwardDestination, error) {
	ds, _, err := s.destinations(ctx, org)
	return ds, err
}

// Plan validates the destinations a configuration request names for org,
// stores the secrets it brings, and returns the list the
// audit.forwarding.updated event records and whether it differs from
// current. A destination named without a secret keeps its stored one; a
// secret equal to the stored one changes nothing.
func (s *Service) Plan(ctx context.Context, org string, reqs []events.AuditDestinationRequest, current []events.AuditForwardDestination) ([]events.AuditForwardDestination, bool, error) {
	if len(reqs) > s.cfg.MaxDestinations {
		return nil, false, events.Invalid("too many SIEM destinations").WithFields(events.FieldError{
			Field: "forwarding", Message: fmt.Sprintf("at most %d destinations", s.cfg.MaxDestinations)})
	}
	byID := map[string]events.AuditForwardDestination{}
	for _, d := range current {
		byID[d.ID] = d
	}
	var fields []events.FieldError
	seen := map[string]bool{}
	out := make([]events.AuditForwardDestination, 0, len(reqs))
	secrets := map[int]string{} // new secrets to store, by position
	for i, r := range reqs {
		prefix := fmt.Sprintf("forwarding[%d].", i)
		if seen[r.ID] {
			fields = append(fields, events.FieldError{Field: prefix + "id", Message: "is listed twice"})
			continue
		}
		seen[r.ID] = true
		d := events.AuditForwardDestination{AuditDestinationConfig: r.AuditDestinationConfig}
		secret := r.Secret
		old, had := byID[r.ID]
		if had {
			stored, err := s.secret(ctx, org, r.ID, old.SecretID)
			if err != nil {
				return nil, false, err
			}
			switch {
			case secret == "" || subtle.ConstantTimeCompare([]byte(secret), []byte(stored)) == 1:
				secret, d.SecretID = stored, old.SecretID
			default:
				secrets[i] = secret
			}
		} else if secret != "" {
			secrets[i] = secret
		}
		if d.Kind == string(forward.KindSyslog) {
			secret, d.SecretID = "", ""
			delete(secrets, i)
		}
		if err := toForward(org, d.AuditDestinationConfig, secret).Validate(s.cfg.Forward); err != nil {
			for _, f := range events.AsError(err).Fields {
				fields = append(fields, events.FieldError{Field: prefix + f.Field, Message: f.Message})
			}
			continue
		}
		out = append(out, d)
	}
	if len(fields) > 0 {
		return nil, false, events.Invalid("invalid SIEM destinations").WithFields(fields...)
	}
	for i, secret := range secrets {
		id, err := uuid.NewV7()
		if err != nil {
			return nil, false, err
		}
		if err := s.putSecret(ctx, org, out[i].ID, id.String(), secret); err != nil {
			return nil, false, err
		}
		out[i].SecretID = id.String()
	}
	changed := !reflect.DeepEqual(normalize(out), normalize(current))
	return out, changed, nil
}

func normalize(ds []events.AuditForwardDestination) []events.AuditForwardDestination {
	if len(ds) == 0 {
		return nil
	}
	return ds
}

// View returns org's destinations as the configuration shows them — no
// secret, whether one is set, and this instance's delivery status — and
// the stream sequence of the event they were projected from.
func (s *Service) View(ctx context.Context, org string) ([]events.AuditDestination, uint64, error) {
	ds, seq, err := s.destinations(ctx, org)
	if err != nil {
		return nil, 0, err
	}
	status := map[string]forward.Status{}
	for _, st := range s.mgr.Status(ctx, org) {
		status[st.DestinationID] = st
	}
	out := make([]events.AuditDestination, 0, len(ds))
	for _, d := range ds {
		v := events.AuditDestination{AuditDestinationConfig: d.AuditDestinationConfig, SecretSet: d.SecretID != ""}
		if st, ok := status[d.ID]; ok {
			v.Status = statusOf(st)
		}
		out = append(out, v)
	}
	return out, seq, nil
}

func statusOf(st forward.Status) *events.AuditForwardingStatus {
	stamp := func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	return &events.AuditForwardingStatus{Running: st.Running, LastSuccess: stamp(st.LastSuccess), LastError: st.LastError,
		LastErrorAt: stamp(st.LastErrorAt), Failures: st.Failures, LastIndex: st.LastIndex, Delivered: st.Delivered, Lag: st.Lag}
}

// test sends one test entry to a configured destination or one given in
// full (whose missing secret may come from the configured destination of
// the same id).
func (s *Service) test(ctx context.Context, req events.AuditForwardingTestRequest) (events.AuditForwardingTestReply, error) {
	org, err := authz.Org(ctx, events.PermAuditManage)
	if err != nil {
		return events.AuditForwardingTestReply{}, err
	}
	current, err := s.Current(ctx, org)
	if err != nil {
		return events.AuditForwardingTestReply{}, err
	}
	find := func(id string) (events.AuditForwardDestination, bool) {
		for _, d := range current {
			if d.ID == id {
				return d, true
			}
		}
		return events.AuditForwardDestination{}, false
	}
	var d forward.Destination
	switch {
	case req.Destination != nil:
		c := req.Destination.AuditDestinationConfig
		if c.ID == "" {
			c.ID = "test"
		}
		secret := req.Destination.Secret
		if old, ok := find(c.ID); ok && secret == "" {
			if secret, err = s.secret(ctx, org, old.ID, old.SecretID); err != nil {
				return events.AuditForwardingTestReply{}, err
			}
		}
		d = toForward(org, c, secret)
	case req.ID != "":
		old, ok := find(req.ID)
		if !ok {
			return events.AuditForwardingTestReply{}, events.NotFound("no SIEM destination %q", req.ID)
		}
		secret, err := s.secret(ctx, org, old.ID, old.SecretID)
		if err != nil {
			return events.AuditForwardingTestReply{}, err
		}
		d = toForward(org, old.AuditDestinationConfig, secret)
	default:
		return events.AuditForwardingTestReply{}, events.Invalid("name a destination").WithFields(
			events.FieldError{Field: "id", Message: "the id of a configured destination, or a destination in full"})
	}
	res, err := forward.Test(ctx, d, s.cfg.Forward)
	if err != nil {
		return events.AuditForwardingTestReply{}, err
	}
	return events.AuditForwardingTestReply{OK: res.OK, Error: res.Error, DurationMS: res.DurationMS}, nil
}
