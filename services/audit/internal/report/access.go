package report

import (
	"maps"
	"slices"

	"github.com/infrapilot/infrapilot/events"
)

// accessReview computes who holds access at the end of the period (the
// state after every entry up to To) and what changed during it.
type accessReview struct {
	members map[string]*member
	keys    map[string]*apiKey
	changes evidence
}

type member struct {
	role, status                   string
	since, removedAt               string
	changes                        uint64
	lastChange, lastBy, lastAction string
}

type apiKey struct {
	role, createdAt, createdBy, revokedAt, revokedBy string
}

func newAccessReview(maxRows int) *accessReview {
	return &accessReview{members: map[string]*member{}, keys: map[string]*apiKey{}, changes: evidence{max: maxRows}}
}

func (a *accessReview) add(e events.AuditEntry, in bool) {
	if e.Outcome != events.OutcomeSuccess {
		return
	}
	d := details(e)
	switch e.Action {
	case ActionMemberAdded, ActionMemberRoleChange, ActionMemberRemoved:
		if d.UserID == "" {
			return
		}
		m := a.members[d.UserID]
		if m == nil {
			m = &member{since: e.Time}
			a.members[d.UserID] = m
		} else if e.Action == ActionMemberAdded && m.status == "removed" {
			m.since, m.removedAt = e.Time, "" // re-joined: same person, same history
		}
		m.role, m.status = d.Role, "member"
		if e.Action == ActionMemberRemoved {
			m.status, m.removedAt = "removed", e.Time
		}
		if in {
			m.changes++
			m.lastChange, m.lastBy, m.lastAction = e.Time, actor(e), e.Action
			a.changes.add([]string{e.Time, u(e.Index), actor(e), e.Action, d.UserID, d.Previous, d.Role})
		} else if e.Action == ActionMemberRemoved {
			delete(a.members, d.UserID) // left before the period: not under review
		}
	case "auth.apikey.created":
		a.keys[e.Resource.ID] = &apiKey{role: d.Role, createdAt: e.Time, createdBy: actor(e)}
	case "auth.apikey.revoked":
		if k := a.keys[e.Resource.ID]; k != nil {
			if !in {
				delete(a.keys, e.Resource.ID)
				return
			}
			k.revokedAt, k.revokedBy = e.Time, actor(e)
		}
	}
}

func (a *accessReview) sections() []Section {
	members := Section{ID: "members", Title: "Members and roles",
		Description: "Every member at the end of the period with their role, and those removed during it, with the changes of the period.",
		Columns:     []string{"user_id", "role", "status", "member_since", "removed_at", "changes_in_period", "last_change", "last_change_by", "last_change_action"},
		Rows:        [][]string{}}
	for _, id := range sortedKeys(a.members) {
		m := a.members[id]
		members.Total++
		members.Rows = append(members.Rows, []string{id, m.role, m.status, m.since, m.removedAt, u(m.changes), m.lastChange, m.lastBy, m.lastAction})
	}
	keys := Section{ID: "api_keys", Title: "API keys",
		Description: "API keys valid at the end of the period or revoked during it, with their role.",
		Columns:     []string{"key_id", "role", "created_at", "created_by", "revoked_at", "revoked_by"}, Rows: [][]string{}}
	for _, id := range sortedKeys(a.keys) {
		k := a.keys[id]
		keys.Total++
		keys.Rows = append(keys.Rows, []string{id, k.role, k.createdAt, k.createdBy, k.revokedAt, k.revokedBy})
	}
	return []Section{members, keys,
		a.changes.section("changes", "Access changes in the period",
			"Each membership grant, role change and removal of the period.",
			[]string{"time", "index", "actor", "action", "user_id", "previous_role", "role"})}
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
