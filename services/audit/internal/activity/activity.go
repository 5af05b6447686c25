// Package activity makes a user's own security events visible to the orgs
// the user belongs to.
//
// The auth service records what happens to a user account — sign-ins,
// failed sign-ins of a known account, sessions refreshed and ended, second
// factors enrolled, used and failed — under the pseudo-org "platform",
// because an account belongs to no single org. Those entries are chained
// in the platform chain, which no org can read. An org's administrators
// must nevertheless see their members' sign-ins and failed sign-ins (SOC 2
// CC6/CC7, the security report), so this package links each such event
// into the chain of every org the user was a member of at the time of the
// event: an audit.user_activity.linked event in that org, whose chain
// entry is the source event's own (time, actor with ip, action, resource,
// outcome, details).
//
// "Member at the time" is decided by event times, from a projection of the
// TENANCY stream's membership events (one row per event, so the answer
// does not depend on the order they were projected in) that the linker
// waits to have caught up before it decides. So a sign-up's events before
// the org existed (the account's creation) stay in the platform chain
// only, and everything after it (the first session) is in the org's.
//
// Exactly once: a linked event's id is a UUIDv5 of (org, source event id),
// so a redelivery within the stream's duplicate window is stored once, and
// one older than that is found in the chain's projection first.
package activity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
	"github.com/infrapilot/infrapilot/services/internal/platform/router"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
)

// The durable consumers of this package.
const (
	// MembershipsDurable projects membership changes from TENANCY.
	MembershipsDurable = "audit_memberships"
	// LinkerDurable links users' platform events from AUTH.
	LinkerDurable = "audit_user_activity"
)

// namespace is the UUIDv5 namespace of linked event ids.
var namespace = uuid.MustParse("6f1d3c4e-2b7a-5e8f-9a0b-1c2d3e4f5a6b")

// LinkedID is the id of the event linking source event sourceID into org.
func LinkedID(org, sourceID string) string {
	return uuid.NewSHA1(namespace, []byte(org+":"+sourceID)).String()
}

// Config tunes the linker.
type Config struct {
	// CatchUpWait bounds the wait for the membership projection to catch
	// up with TENANCY before an event is linked (default 10s); past it
	// the event is retried later.
	CatchUpWait time.Duration
}

// Deps are the linker's collaborators. Seen reports whether org's chain
// projection already holds an entry for an event id.
type Deps struct {
	JS     jetstream.JetStream
	DB     *pgxpool.Pool
	Events *eventstore.Store
	Seen   func(ctx context.Context, org, eventID string) (bool, error)
	Log    *slog.Logger
}

// Linker links user activity into org chains.
type Linker struct {
	cfg Config
	d   Deps
}

// New returns a linker; Register adds its handlers.
func New(cfg Config, d Deps) *Linker {
	if cfg.CatchUpWait <= 0 {
		cfg.CatchUpWait = 10 * time.Second
	}
	return &Linker{cfg: cfg, d: d}
}

// Register adds the membership projection and the linker to r.
func (l *Linker) Register(r *router.Router) error {
	if err := r.AddEventHandler(MembershipsDurable, events.DomainStream("tenancy"),
		[]string{events.DomainEvent("tenancy", "*", events.TenancyAggOrg, "*")}, l.projectMembership); err != nil {
		return err
	}
	return r.AddEventHandler(LinkerDurable, events.DomainStream("auth"),
		[]string{events.OrgDomainEvents("auth", events.PlatformOrg)}, l.link)
}

// projectMembership records one membership change.
func (l *Linker) projectMembership(ctx context.Context, env events.Envelope) error {
	p, err := events.Catalogue.Decode(env)
	if err != nil {
		return router.Permanent(err)
	}
	var user, change string
	switch p := p.(type) {
	case *events.MemberAdded:
		user, change = p.UserID, "added"
	case *events.MemberRoleChanged:
		user, change = p.UserID, "role_changed"
	case *events.MemberRemoved:
		user, change = p.UserID, "removed"
	case *events.OrgDeleted:
		change = "org_deleted"
	default:
		return nil
	}
	del, _ := router.DeliveryFrom(ctx)
	_, err = l.d.DB.Exec(ctx, `INSERT INTO memberships (stream_seq, org_id, user_id, change, at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT DO NOTHING`, int64(del.Sequence), env.OrgID, user, change, env.Time.UTC())
	if err != nil {
		return fmt.Errorf("audit activity: project membership: %w", err)
	}
	return nil
}

// Subject returns the user a platform auth event is about ("" when none):
// the user aggregate, the user_id of the payload, or the acting user.
func Subject(env events.Envelope) string {
	if env.OrgID != events.PlatformOrg || !strings.HasPrefix(env.Type, "auth.") {
		return ""
	}
	user := ""
	var p struct {
		UserID string `json:"user_id"`
	}
	switch {
	case env.Aggregate.Type == "user":
		user = env.Aggregate.ID
	case json.Unmarshal(env.Data, &p) == nil && p.UserID != "":
		user = p.UserID
	case env.Actor.Kind == events.ActorUser && env.Actor.ID != "anonymous":
		user = env.Actor.ID
	}
	if !events.ValidToken(user) {
		return ""
	}
	return user
}

// link links one platform event into the chains of its user's orgs.
func (l *Linker) link(ctx context.Context, env events.Envelope) error {
	user := Subject(env)
	if user == "" {
		return nil
	}
	if err := l.caughtUp(ctx); err != nil {
		return err
	}
	orgs, err := l.orgsAt(ctx, user, env.Time)
	if err != nil {
		return err
	}
	for _, org := range orgs {
		if err := l.linkInto(ctx, org, user, env); err != nil {
			return err
		}
	}
	return nil
}

func (l *Linker) linkInto(ctx context.Context, org, user string, src events.Envelope) error {
	id := LinkedID(org, src.ID)
	seen, err := l.d.Seen(ctx, org, id)
	if err != nil || seen {
		return err
	}
	env, err := events.New(events.AuditUserActivityLinked{Source: src}, events.Aggregate{Type: events.AuditAggUserActivity, ID: user},
		events.Meta{OrgID: org, Actor: src.Actor, CorrelationID: src.CorrelationID, CausationID: src.ID})
	if err != nil {
		return err
	}
	env.ID = id
	r := eventstore.Ref{OrgID: org, Type: events.AuditAggUserActivity, ID: user}
	for attempt := 0; ; attempt++ {
		last, err := l.lastVersion(ctx, r)
		if err != nil {
			return err
		}
		_, err = l.d.Events.Append(ctx, r, last, env)
		if errors.Is(err, eventstore.ErrConflict) && attempt < 8 {
			continue
		}
		return err
	}
}

func (l *Linker) lastVersion(ctx context.Context, r eventstore.Ref) (uint64, error) {
	st, err := l.d.JS.Stream(ctx, events.StreamAudit)
	if err != nil {
		return 0, err
	}
	msg, err := st.GetLastMsgForSubject(ctx, events.DomainEvent("audit", r.OrgID, r.Type, r.ID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return msg.Sequence, nil
}

// caughtUp waits until the membership projection has handled every
// membership event stored on TENANCY when it was called.
func (l *Linker) caughtUp(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.CatchUpWait)
	defer cancel()
	st, err := l.d.JS.Stream(ctx, events.DomainStream("tenancy"))
	if err != nil {
		return err
	}
	last := st.CachedInfo().State.LastSeq
	for {
		c, err := l.d.JS.Consumer(ctx, events.DomainStream("tenancy"), MembershipsDurable)
		if err == nil {
			info := c.CachedInfo()
			if info.AckFloor.Stream >= last || (info.NumPending == 0 && info.NumAckPending == 0) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("audit activity: the membership projection has not caught up: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// orgsAt lists the orgs user was a member of at time at.
func (l *Linker) orgsAt(ctx context.Context, user string, at time.Time) ([]string, error) {
	rows, err := l.d.DB.Query(ctx, `SELECT m.org_id FROM (
			SELECT DISTINCT ON (org_id) org_id, change FROM memberships
			WHERE user_id = $1 AND at <= $2 ORDER BY org_id, at DESC, stream_seq DESC) m
		WHERE m.change <> 'removed' AND NOT EXISTS (
			SELECT 1 FROM memberships d WHERE d.org_id = m.org_id AND d.change = 'org_deleted' AND d.at <= $2)
		ORDER BY m.org_id`, user, at.UTC())
	if err != nil {
		return nil, fmt.Errorf("audit activity: orgs of %s: %w", user, err)
	}
	orgs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("audit activity: orgs of %s: %w", user, err)
	}
	return orgs, nil
}
