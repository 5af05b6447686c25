// Package siemcreds serves the audit service's SIEM read credentials: NATS
// credentials (issued by natsauth, account SIEM) with which a SIEM pulls
// one org's audit chain from a durable consumer of its own on stream
// AUDIT, and nothing else.
//
// A credential is an aggregate of the audit service's own events
// (audit.siem_credential.created, .revoked), chained like any other, so
// the org's log shows who gave a SIEM access and who took it away. The
// events name the NATS user by its public key only; the .creds text exists
// in the create reply and nowhere else. Table siem_credentials is the
// events' projection and answers the list.
package siemcreds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/audit/internal/authz"
	"github.com/infrapilot/infrapilot/services/internal/platform/endpoint"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
	"github.com/infrapilot/infrapilot/services/internal/platform/natsauth"
	"github.com/infrapilot/infrapilot/services/internal/platform/reqctx"
	"github.com/infrapilot/infrapilot/services/internal/platform/router"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
)

// Issuer issues and revokes SIEM read credentials; natsauth.SIEMIssuer is
// the implementation.
type Issuer interface {
	// Issue returns a credential that reads org's audit chain for ttl:
	// its .creds, the user key that revokes it, and the consumer it reads
	// (access.ConsumerConfig()), which the caller creates.
	Issue(org string, ttl time.Duration) (natsauth.SIEMAccess, error)
	// Revoke makes the credential with user key stop working and closes
	// its connections.
	Revoke(ctx context.Context, key string) error
	// URL is the NATS client URL SIEMs connect to.
	URL() string
}

// Config tunes the SIEM credentials; zero fields take their defaults.
type Config struct {
	// DefaultTTL is the lifetime of a credential whose request names none
	// (default 90 days).
	DefaultTTL time.Duration
	// MaxActivePerOrg caps an org's unrevoked, unexpired credentials
	// (default 10): each has a consumer on the AUDIT stream.
	MaxActivePerOrg int
	// ProjectionWait bounds how long a request waits for the list to show
	// its change (default 5s).
	ProjectionWait time.Duration
}

// Bounds of a request.
const (
	minTTL     = time.Minute
	maxNameLen = 100
	// revokeLeeway: a credential is still revoked this long after its
	// recorded expiry, which may be slightly earlier than the JWT's.
	revokeLeeway = time.Minute
)

// Deps are the service's collaborators.
type Deps struct {
	// JS is the audit service's JetStream (account APP): it creates and
	// deletes the credentials' consumers.
	JS     jetstream.JetStream
	DB     *pgxpool.Pool
	Events *eventstore.Store
	// Issuer is nil when the hub does not run in operator mode: the
	// operations then answer unavailable.
	Issuer Issuer
	Log    *slog.Logger
	Now    func() time.Time
}

// Service serves the SIEM credential operations.
type Service struct {
	cfg Config
	d   Deps
}

// New returns the service.
func New(cfg Config, d Deps) *Service {
	if cfg.DefaultTTL <= 0 {
		cfg.DefaultTTL = 90 * 24 * time.Hour
	}
	if cfg.MaxActivePerOrg <= 0 {
		cfg.MaxActivePerOrg = 10
	}
	if cfg.ProjectionWait <= 0 {
		cfg.ProjectionWait = 5 * time.Second
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	d.Log = d.Log.With("component", "audit_siem_credentials")
	return &Service{cfg: cfg, d: d}
}

// ProjectionDurable is the durable consumer of the credentials'
// projection.
const ProjectionDurable = "audit_siem_credentials_projection"

// Register adds the operations and the projection handler.
func (s *Service) Register(ep *endpoint.Server, r *router.Router) error {
	endpoint.Handle(ep, events.OpAuditSIEMCredentialsCreate, s.create)
	endpoint.Handle(ep, events.OpAuditSIEMCredentialsList, s.list)
	endpoint.Handle(ep, events.OpAuditSIEMCredentialsRevoke, s.revoke)
	return r.AddEventHandler(ProjectionDurable, events.StreamAudit,
		[]string{events.DomainEvent("audit", "*", events.AuditAggSIEMCredential, "*")}, s.project)
}

// errNoIssuer is the answer of a control plane that cannot issue or revoke
// NATS credentials.
func errNoIssuer() error {
	return events.Errorf(events.CodeUnavailable, "this control plane does not issue SIEM credentials (its NATS hub is not in operator mode)")
}

// validate checks a create request and returns its name and lifetime.
func validate(req events.AuditSIEMCredentialsRequest, def time.Duration) (string, time.Duration, error) {
	var fields []events.FieldError
	name := strings.TrimSpace(req.Name)
	switch {
	case name == "":
		fields = append(fields, events.FieldError{Field: "name", Message: "required: what reads with it, e.g. \"splunk-prod\""})
	case len(name) > maxNameLen:
		fields = append(fields, events.FieldError{Field: "name", Message: fmt.Sprintf("at most %d characters", maxNameLen)})
	case strings.ContainsFunc(name, unicode.IsControl):
		fields = append(fields, events.FieldError{Field: "name", Message: "must not contain control characters"})
	}
	ttl, err := parseTTL(req.TTL, def)
	if err != nil {
		fields = append(fields, events.FieldError{Field: "ttl", Message: err.Error()})
	}
	if len(fields) > 0 {
		return "", 0, events.Invalid("invalid SIEM credential request").WithFields(fields...)
	}
	return name, ttl, nil
}

// parseTTL reads a lifetime: a Go duration ("720h") or whole days ("30d");
// empty is def.
func parseTTL(v string, def time.Duration) (time.Duration, error) {
	bounds := fmt.Errorf("a duration from %s to %d days, e.g. \"720h\" or \"90d\"", minTTL, natsauth.MaxCredentialTTL/(24*time.Hour))
	if v == "" {
		return def, nil
	}
	var ttl time.Duration
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 1 || n > int(natsauth.MaxCredentialTTL/(24*time.Hour)) {
			return 0, bounds
		}
		ttl = time.Duration(n) * 24 * time.Hour
	} else {
		d, err := time.ParseDuration(v)
		if err != nil {
			return 0, bounds
		}
		ttl = d
	}
	if ttl < minTTL || ttl > natsauth.MaxCredentialTTL {
		return 0, bounds
	}
	return ttl, nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func (s *Service) create(ctx context.Context, req events.AuditSIEMCredentialsRequest) (events.AuditSIEMCredentialsIssued, error) {
	org, err := authz.Org(ctx, events.PermAuditManage)
	if err != nil {
		return events.AuditSIEMCredentialsIssued{}, err
	}
	name, ttl, err := validate(req, s.cfg.DefaultTTL)
	if err != nil {
		return events.AuditSIEMCredentialsIssued{}, err
	}
	if s.d.Issuer == nil {
		return events.AuditSIEMCredentialsIssued{}, errNoIssuer()
	}
	now := s.d.Now()
	// Two concurrent requests may both pass the cap by one each; it bounds
	// consumers, it is not a security boundary.
	n, err := countActive(ctx, s.d.DB, org, now)
	if err != nil {
		return events.AuditSIEMCredentialsIssued{}, err
	}
	if n >= s.cfg.MaxActivePerOrg {
		return events.AuditSIEMCredentialsIssued{}, events.Errorf(events.CodeConflict,
			"the organisation has %d active SIEM credentials, the most allowed: revoke one first", n)
	}
	access, err := s.d.Issuer.Issue(org, ttl)
	if err != nil {
		return events.AuditSIEMCredentialsIssued{}, fmt.Errorf("audit siem credentials: issue for %s: %w", org, err)
	}
	// The JWT's expiry is taken when it is signed, just after now, in
	// whole seconds: the recorded expiry is never later than the real one.
	expires := now.Add(ttl).Truncate(time.Second)
	cc := access.ConsumerConfig()
	// The consumer exists before anyone holds the credential: a SIEM can
	// never create one itself (see natsauth.SIEMCreds).
	if _, err := s.d.JS.CreateConsumer(ctx, events.StreamAudit, cc); err != nil {
		return events.AuditSIEMCredentialsIssued{}, fmt.Errorf("audit siem credentials: create consumer %s: %w", access.Consumer, err)
	}
	p := events.AuditSIEMCredentialCreated{Name: name, UserKey: access.UserPub, Consumer: access.Consumer,
		Subject: cc.FilterSubject, InboxPrefix: access.InboxPrefix, ExpiresAt: stamp(expires)}
	m := reqctx.Meta(ctx)
	m.OrgID = org
	env, err := events.New(p, events.Aggregate{Type: events.AuditAggSIEMCredential, ID: access.ID}, m)
	if err == nil {
		_, err = s.d.Events.Append(ctx, s.ref(org, access.ID), 0, env)
	}
	if err != nil {
		// Unrecorded, the credential is never handed out (its seed dies
		// with this request), so only its consumer needs undoing.
		_ = s.deleteConsumer(context.WithoutCancel(ctx), access.Consumer)
		return events.AuditSIEMCredentialsIssued{}, err
	}
	view, ok := s.wait(ctx, org, access.ID, func(c events.AuditSIEMCredential) bool { return true })
	if !ok {
		// Recorded but not projected yet: the credential works, and this
		// reply is the only place its secret will ever be, so answer from
		// the event rather than fail.
		view = fromCreated(access.ID, p, env.Actor.ID, env.Time)
	}
	view.Status = status(view, s.d.Now())
	return events.AuditSIEMCredentialsIssued{AuditSIEMCredential: view, NATSURL: s.d.Issuer.URL(),
		Credentials: string(access.Creds)}, nil
}

func (s *Service) ref(org, id string) eventstore.Ref {
	return eventstore.Ref{OrgID: org, Type: events.AuditAggSIEMCredential, ID: id}
}

// deleteConsumer deletes a credential's consumer; one already gone is
// fine.
func (s *Service) deleteConsumer(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := s.d.JS.DeleteConsumer(ctx, events.StreamAudit, name)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		s.d.Log.Warn("deleting a SIEM consumer failed", "consumer", name, "err", err)
		return err
	}
	return nil
}

func (s *Service) list(ctx context.Context, req events.AuditPageRequest) (events.List[events.AuditSIEMCredential], error) {
	org, err := authz.Org(ctx, events.PermAuditManage)
	if err != nil {
		return events.List[events.AuditSIEMCredential]{}, err
	}
	if req.Limit < 0 || req.Limit > events.AuditListMaxLimit {
		return events.List[events.AuditSIEMCredential]{}, events.Invalid("invalid limit").WithFields(
			events.FieldError{Field: "limit", Message: fmt.Sprintf("between 1 and %d", events.AuditListMaxLimit)})
	}
	out, err := list(ctx, s.d.DB, org, req.Cursor, req.Limit)
	if err != nil {
		return events.List[events.AuditSIEMCredential]{}, err
	}
	now := s.d.Now()
	for i := range out.Items {
		out.Items[i].Status = status(out.Items[i], now)
	}
	return out, nil
}

// status is a credential's state at now.
func status(c events.AuditSIEMCredential, now time.Time) string {
	if c.RevokedAt != "" {
		return events.AuditSIEMStatusRevoked
	}
	if exp, err := time.Parse(time.RFC3339Nano, c.ExpiresAt); err == nil && !now.Before(exp) {
		return events.AuditSIEMStatusExpired
	}
	return events.AuditSIEMStatusActive
}

// revoke revokes the credential at the NATS servers first, then deletes
// its consumer, then records it: the record follows what has happened. A
// failure part-way answers an error; revoking again completes it, as every
// step is idempotent.
func (s *Service) revoke(ctx context.Context, req events.AuditIDRequest) (events.Empty, error) {
	org, err := authz.Org(ctx, events.PermAuditManage)
	if err != nil {
		return events.Empty{}, err
	}
	if err := authz.ID(req.ID, "SIEM credential"); err != nil {
		return events.Empty{}, err
	}
	ref := s.ref(org, req.ID)
	for range 3 {
		evs, version, err := s.d.Events.Load(ctx, ref)
		if err != nil {
			return events.Empty{}, err
		}
		created, revoked := fold(evs)
		if created == nil {
			return events.Empty{}, events.NotFound("SIEM credential not found")
		}
		if err := s.undo(ctx, *created); err != nil {
			return events.Empty{}, err
		}
		if revoked {
			return events.Empty{}, nil
		}
		env, err := events.New(events.AuditSIEMCredentialRevoked{UserKey: created.UserKey, Consumer: created.Consumer},
			events.Aggregate{Type: ref.Type, ID: ref.ID}, withOrg(reqctx.Meta(ctx), org))
		if err != nil {
			return events.Empty{}, err
		}
		if _, err := s.d.Events.Append(ctx, ref, version, env); errors.Is(err, eventstore.ErrConflict) {
			continue
		} else if err != nil {
			return events.Empty{}, err
		}
		// The revocation is done and recorded; a list that lags behind
		// catches up on its own, so a slow projection is no failure.
		s.wait(ctx, org, req.ID, func(c events.AuditSIEMCredential) bool { return c.RevokedAt != "" })
		return events.Empty{}, nil
	}
	return events.Empty{}, events.Errorf(events.CodeConflict, "the SIEM credential is being changed concurrently; try again")
}

// undo revokes a credential's NATS user (unless it has expired: the
// servers refuse it anyway, and every revocation lengthens the account
// JWT) and deletes its consumer.
func (s *Service) undo(ctx context.Context, c events.AuditSIEMCredentialCreated) error {
	exp, err := time.Parse(time.RFC3339Nano, c.ExpiresAt)
	if err != nil || s.d.Now().Before(exp.Add(revokeLeeway)) {
		if s.d.Issuer == nil {
			return errNoIssuer()
		}
		if err := s.d.Issuer.Revoke(ctx, c.UserKey); err != nil {
			return &events.Error{Code: events.CodeUnavailable, Err: err,
				Message: "the SIEM credential could not be revoked at the NATS servers yet; revoke it again"}
		}
	}
	if err := s.deleteConsumer(ctx, c.Consumer); err != nil {
		return &events.Error{Code: events.CodeUnavailable, Err: err,
			Message: "the SIEM credential is revoked but its consumer could not be deleted yet; revoke it again"}
	}
	return nil
}

func withOrg(m events.Meta, org string) events.Meta {
	m.OrgID = org
	return m
}

// fold reads a credential's events: how it was created (nil when it never
// was) and whether it has been revoked.
func fold(evs []events.Envelope) (*events.AuditSIEMCredentialCreated, bool) {
	var created *events.AuditSIEMCredentialCreated
	revoked := false
	for _, env := range evs {
		p, err := events.Catalogue.Decode(env)
		if err != nil {
			continue
		}
		switch p := p.(type) {
		case *events.AuditSIEMCredentialCreated:
			created = p
		case *events.AuditSIEMCredentialRevoked:
			revoked = true
		}
	}
	return created, revoked
}

// wait polls the read model, bounded, until org's credential id satisfies
// done.
func (s *Service) wait(ctx context.Context, org, id string, done func(events.AuditSIEMCredential) bool) (events.AuditSIEMCredential, bool) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ProjectionWait)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		c, ok, err := get(ctx, s.d.DB, org, id)
		if err == nil && ok && done(c) {
			return c, true
		}
		select {
		case <-ctx.Done():
			return events.AuditSIEMCredential{}, false
		case <-tick.C:
		}
	}
}

// fromCreated is the view of a credential just created.
func fromCreated(id string, p events.AuditSIEMCredentialCreated, by string, at time.Time) events.AuditSIEMCredential {
	return events.AuditSIEMCredential{ID: id, Name: p.Name, Stream: events.StreamAudit, Consumer: p.Consumer, Subject: p.Subject,
		InboxPrefix: p.InboxPrefix, UserKey: p.UserKey, CreatedBy: by, CreatedAt: stamp(at), ExpiresAt: p.ExpiresAt}
}
