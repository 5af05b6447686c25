package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/auth/internal/domain"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
	"github.com/infrapilot/infrapilot/services/internal/platform/reqctx"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
)

// platformRef names an aggregate that belongs to no org.
func platformRef(typ, id string) eventstore.Ref {
	return eventstore.Ref{OrgID: events.PlatformOrg, Type: typ, ID: id}
}

// meta is the metadata of an event caused by the request in ctx, for an
// aggregate of org, with actor replacing the request's actor when set.
func meta(ctx context.Context, org string, actor events.Actor) events.Meta {
	m := reqctx.MetaIn(ctx, org, events.SystemActor("auth"))
	if actor.Kind != "" {
		m.Actor = actor
	}
	return m
}

// userActor is the actor of an event a user causes through a public
// operation (login, refresh): the request's IP and user agent, the user's
// id ("anonymous" when unknown).
func userActor(ctx context.Context, userID string) events.Actor {
	a := reqctx.From(ctx).Actor
	if userID == "" {
		userID = "anonymous"
	}
	return events.Actor{Kind: events.ActorUser, ID: userID, IP: a.IP, UserAgent: a.UserAgent}
}

// append stores payloads as the next events of ref, expecting version.
func (s *Service) append(ctx context.Context, ref eventstore.Ref, version uint64, m events.Meta, ps ...events.Payload) (uint64, error) {
	return s.es.AppendPayloads(ctx, ref, version, m, ps...)
}

// record appends a log-like event (a failed login, a spent backup code)
// whose writing depends on no decision about the aggregate's state: it
// appends at whatever version the aggregate has, retrying when another
// writer got in between. The envelope is built once, so a retry after a
// lost ack stores it once.
func (s *Service) record(ctx context.Context, ref eventstore.Ref, m events.Meta, p events.Payload) error {
	envs, err := eventstore.Envelopes(ref, m, p)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		last, err := s.lastVersion(ctx, ref)
		if err != nil {
			return err
		}
		_, err = s.es.Append(ctx, ref, last, envs...)
		if errors.Is(err, eventstore.ErrConflict) && attempt < 8 {
			continue
		}
		return err
	}
}

// lastVersion is the sequence of the last event of ref, 0 when none.
func (s *Service) lastVersion(ctx context.Context, ref eventstore.Ref) (uint64, error) {
	st, err := s.js.Stream(ctx, events.DomainStream("auth"))
	if err != nil {
		return 0, unavailable(err)
	}
	msg, err := st.GetLastMsgForSubject(ctx, events.DomainEvent("auth", ref.OrgID, ref.Type, ref.ID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, unavailable(err)
	}
	return msg.Sequence, nil
}

func unavailable(err error) error {
	return &events.Error{Code: events.CodeUnavailable, Message: "event store unavailable; retry", Err: err}
}

// waitVersion waits until the read model row of id in table has reached
// version: read-your-writes for a command that answers with what it wrote.
func (s *Service) waitVersion(ctx context.Context, table, id string, version uint64) error {
	q := fmt.Sprintf(`SELECT version FROM %s WHERE id = $1`, table)
	return s.waitFor(ctx, func() (bool, error) {
		var v int64
		err := s.db.QueryRow(ctx, q, id).Scan(&v)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil
		}
		return err == nil && uint64(v) >= version, err
	})
}

// waitFor polls done with a growing interval for at most ProjectionWait.
func (s *Service) waitFor(ctx context.Context, done func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ProjectionWait)
	defer cancel()
	interval := 2 * time.Millisecond
	for {
		ok, err := done()
		if err != nil && ctx.Err() == nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return events.Errorf(events.CodeUnavailable, "the change is stored but not yet visible; retry the read")
		case <-time.After(interval):
		}
		interval = min(interval*2, 50*time.Millisecond)
	}
}

// loadUser rebuilds a user from its read-model row (a snapshot) and the
// events stored after it, so the state is exact even when the projection
// lags. A user that does not exist comes back with Exists() false.
func (s *Service) loadUser(ctx context.Context, id string) (*domain.User, error) {
	u := &domain.User{ID: id}
	if !events.ValidToken(id) {
		return u, nil
	}
	var version int64
	err := s.db.QueryRow(ctx, `SELECT email, name, mfa_enabled, disabled, created_at, version FROM users WHERE id = $1`, id).
		Scan(&u.Email, &u.Name, &u.MFAEnabled, &u.Disabled, &u.CreatedAt, &version)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, err
	}
	u.Version = uint64(version)
	evs, v, err := s.es.LoadFrom(ctx, platformRef(domain.AggUser, id), u.Version)
	if err != nil {
		return nil, err
	}
	if err := u.Apply(evs...); err != nil {
		return nil, err
	}
	u.Version = v
	return u, nil
}

// loadSession rebuilds a session like loadUser.
func (s *Service) loadSession(ctx context.Context, id string) (*domain.Session, error) {
	ss := &domain.Session{ID: id}
	var version int64
	var reason *string
	err := s.db.QueryRow(ctx, `SELECT user_id, generation, mfa, revoked_reason, started_at, updated_at, version FROM sessions WHERE id = $1`, id).
		Scan(&ss.UserID, &ss.Generation, &ss.MFA, &reason, &ss.StartedAt, &ss.UpdatedAt, &version)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, err
	}
	if reason != nil {
		ss.Revoked, ss.RevokedReason = true, *reason
	}
	ss.Version = uint64(version)
	evs, v, err := s.es.LoadFrom(ctx, platformRef(domain.AggSession, id), ss.Version)
	if err != nil {
		return nil, err
	}
	if err := ss.Apply(evs...); err != nil {
		return nil, err
	}
	ss.Version = v
	return ss, nil
}

// loadAPIKey rebuilds an API key of org like loadUser. A key of another
// org is not found: its events live under that org's subject.
func (s *Service) loadAPIKey(ctx context.Context, org, id string) (*domain.APIKey, error) {
	k := &domain.APIKey{ID: id}
	if !events.ValidToken(org) || !events.ValidToken(id) {
		return k, nil
	}
	var version int64
	var expires, revoked *time.Time
	err := s.db.QueryRow(ctx, `SELECT org_id, name, role, prefix, created_by, created_at, expires_at, revoked_at, version
		FROM api_keys WHERE id = $1 AND org_id = $2`, id, org).
		Scan(&k.OrgID, &k.Name, &k.Role, &k.Prefix, &k.CreatedBy, &k.CreatedAt, &expires, &revoked, &version)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, err
	}
	if expires != nil {
		k.ExpiresAt = *expires
	}
	if revoked != nil {
		k.RevokedAt = *revoked
	}
	k.Version = uint64(version)
	evs, v, err := s.es.LoadFrom(ctx, eventstore.Ref{OrgID: org, Type: domain.AggAPIKey, ID: id}, k.Version)
	if err != nil {
		return nil, err
	}
	if err := k.Apply(evs...); err != nil {
		return nil, err
	}
	k.OrgID, k.Version = org, v
	return k, nil
}
