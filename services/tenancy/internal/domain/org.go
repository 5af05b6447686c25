package domain

import (
	"fmt"
	"sort"
	"time"

	"github.com/infrapilot/infrapilot/events"
)

// Member is one membership of an org.
type Member struct {
	UserID   string
	Role     events.Role
	JoinedAt time.Time
}

// Org is the org aggregate: the org and its members. Members live in the
// org's own event subject, so that the last-owner rule and the plan's user
// limit are decided on one version and two concurrent changes cannot both
// pass them.
type Org struct {
	ID        string
	Name      string
	Slug      string
	Plan      string
	CreatedAt time.Time
	UpdatedAt time.Time
	Deleted   bool
	Members   map[string]Member
	// Version is the sequence of the org's last event (0: no org).
	Version uint64
}

// ReplayOrg rebuilds an org from its events.
func ReplayOrg(id string, evs []events.Envelope, version uint64) (*Org, error) {
	o := &Org{ID: id, Members: map[string]Member{}}
	for _, env := range evs {
		if err := o.apply(env); err != nil {
			return nil, err
		}
	}
	o.Version = version
	return o, nil
}

// Exists reports whether the org was created and not deleted.
func (o *Org) Exists() bool { return !o.CreatedAt.IsZero() && !o.Deleted }

func (o *Org) apply(env events.Envelope) error {
	p, err := events.Catalogue.Decode(env)
	if err != nil {
		return err
	}
	o.UpdatedAt = env.Time
	switch e := p.(type) {
	case *events.OrgCreated:
		o.Name, o.Slug, o.Plan, o.CreatedAt = e.Name, e.Slug, e.Plan, env.Time
	case *events.OrgUpdated:
		o.Name, o.Slug = e.Name, e.Slug
	case *events.OrgPlanChanged:
		o.Plan = e.Plan
	case *events.OrgDeleted:
		o.Deleted = true
	case *events.MemberAdded:
		o.Members[e.UserID] = Member{UserID: e.UserID, Role: e.Role, JoinedAt: env.Time}
	case *events.MemberRoleChanged:
		m := o.Members[e.UserID]
		m.UserID, m.Role = e.UserID, e.Role
		o.Members[e.UserID] = m
	case *events.MemberRemoved:
		delete(o.Members, e.UserID)
	case *events.Unknown:
		// A newer writer's event: keep what we know. The version still
		// moves on, so a decision made on this state cannot overwrite it.
	default:
		return fmt.Errorf("org %s: unexpected event %s", o.ID, env.Type)
	}
	return nil
}

// Owners counts the org's owners.
func (o *Org) Owners() int {
	n := 0
	for _, m := range o.Members {
		if m.Role == events.RoleOwner {
			n++
		}
	}
	return n
}

// SortedMembers lists the members by user id.
func (o *Org) SortedMembers() []Member {
	out := make([]Member, 0, len(o.Members))
	for _, m := range o.Members {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UserID < out[j].UserID })
	return out
}

// ErrOrgNotFound is the answer for an org that does not exist, was deleted,
// or is not the caller's.
var ErrOrgNotFound = events.NotFound("organisation not found")

// MayGrant checks that an actor with role actor may give or take role
// target: members:manage always, owners:manage when owners are involved.
func MayGrant(actor, target events.Role) error {
	if !events.Allowed(actor, events.PermMembersManage) {
		return events.Errorf(events.CodeForbidden, "your role %q may not manage members", actor)
	}
	if target == events.RoleOwner && !events.Allowed(actor, events.PermOwnersManage) {
		return events.Errorf(events.CodeForbidden, "only an owner may grant or remove the owner role")
	}
	return nil
}

// AddMember decides adding userID with role, by an actor with role actor
// (empty for the system: sign-up, accepting an invitation), under plan.
func (o *Org) AddMember(actor events.Role, userID string, role events.Role, plan Plan) (events.MemberAdded, error) {
	if !o.Exists() {
		return events.MemberAdded{}, ErrOrgNotFound
	}
	if actor != "" {
		if err := MayGrant(actor, role); err != nil {
			return events.MemberAdded{}, err
		}
	}
	if _, ok := o.Members[userID]; ok {
		return events.MemberAdded{}, events.Errorf(events.CodeConflict, "the user is already a member of this organisation")
	}
	if !plan.UsersAllowed(len(o.Members)) {
		return events.MemberAdded{}, PlanLimitError("users", o.Plan, plan.MaxUsers)
	}
	return events.MemberAdded{UserID: userID, Role: role}, nil
}

// ChangeRole decides giving member userID role.
func (o *Org) ChangeRole(actor events.Role, userID string, role events.Role) (*events.MemberRoleChanged, error) {
	m, err := o.member(userID)
	if err != nil {
		return nil, err
	}
	if err := MayGrant(actor, role); err != nil {
		return nil, err
	}
	if err := MayGrant(actor, m.Role); err != nil {
		return nil, err
	}
	if m.Role == role {
		return nil, nil
	}
	if m.Role == events.RoleOwner && o.Owners() == 1 {
		return nil, events.Errorf(events.CodeConflict, "an organisation needs at least one owner: make another member owner first")
	}
	return &events.MemberRoleChanged{UserID: userID, Role: role, Previous: m.Role}, nil
}

// RemoveMember decides removing member userID.
func (o *Org) RemoveMember(actor events.Role, userID string) (events.MemberRemoved, error) {
	m, err := o.member(userID)
	if err != nil {
		return events.MemberRemoved{}, err
	}
	if err := MayGrant(actor, m.Role); err != nil {
		return events.MemberRemoved{}, err
	}
	if m.Role == events.RoleOwner && o.Owners() == 1 {
		return events.MemberRemoved{}, events.Errorf(events.CodeConflict, "the last owner cannot be removed: make another member owner first")
	}
	return events.MemberRemoved{UserID: userID, Role: m.Role}, nil
}

func (o *Org) member(userID string) (Member, error) {
	if !o.Exists() {
		return Member{}, ErrOrgNotFound
	}
	m, ok := o.Members[userID]
	if !ok {
		return Member{}, events.NotFound("member not found")
	}
	return m, nil
}

// PlanLimitError is the conflict answered when a plan's limit is reached.
func PlanLimitError(what, plan string, limit int) error {
	return events.Errorf(events.CodeConflict, "the %s plan allows %d %s: upgrade the plan or remove some first", plan, limit, what)
}

// SlugClaim is the claim aggregate of one slug: who holds it.
type SlugClaim struct {
	Holder  string
	Version uint64
}

// ReplaySlug rebuilds a slug claim.
func ReplaySlug(evs []events.Envelope, version uint64) (*SlugClaim, error) {
	c := &SlugClaim{Version: version}
	for _, env := range evs {
		p, err := events.Catalogue.Decode(env)
		if err != nil {
			return nil, err
		}
		switch e := p.(type) {
		case *events.SlugClaimed:
			c.Holder = e.OrgID
		case *events.SlugReleased:
			if c.Holder == e.OrgID {
				c.Holder = ""
			}
		}
	}
	return c, nil
}
