package report

import (
	"cmp"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/infrapilot/infrapilot/events"
)

// Action names the reports recognise (the wire types of the source events).
const (
	ActionLoginSucceeded   = "auth.login.succeeded"
	ActionLoginFailed      = "auth.login.failed"
	ActionMFAFailed        = "auth.mfa.failed"
	ActionSessionRevoked   = "auth.session.revoked"
	ActionUserRegistered   = "auth.user.registered"
	ActionMemberAdded      = "tenancy.member.added"
	ActionMemberRoleChange = "tenancy.member.role_changed"
	ActionMemberRemoved    = "tenancy.member.removed"
)

// Security event categories (CC7.2, HIPAA incidents, the security report).
const (
	CategoryFailedLogin   = "failed_login"
	CategoryMFAFailure    = "mfa_failure"
	CategoryDeniedRequest = "denied_request"
	CategoryPolicyBlock   = "policy_block"
	CategoryTokenReuse    = "token_reuse"
)

// SecurityCategory classifies a security event, or returns "" for an
// entry that is not one: failed logins and MFA failures by action, policy
// blocks as denials by the policy service (or any action ending in
// ".blocked"), other denials (outcome "denied": a request refused by
// authorisation) as denied requests, and a revoked session whose spent
// refresh token was presented again as token reuse.
func SecurityCategory(e events.AuditEntry) string {
	switch {
	case e.Action == ActionLoginFailed:
		return CategoryFailedLogin
	case e.Action == ActionMFAFailed:
		return CategoryMFAFailure
	case strings.HasSuffix(e.Action, ".blocked"),
		strings.HasPrefix(e.Action, "policy.") && e.Outcome == events.OutcomeDenied:
		return CategoryPolicyBlock
	case e.Outcome == events.OutcomeDenied:
		return CategoryDeniedRequest
	case e.Action == ActionSessionRevoked && details(e).Reason == events.SessionRevokedReuse:
		return CategoryTokenReuse
	}
	return ""
}

// isLogicalAccess reports whether an entry is about authentication and
// credentials (SOC 2 CC6.1, HIPAA access).
func isLogicalAccess(action string) bool {
	for _, p := range []string{"auth.login.", "auth.mfa.", "auth.session.", "auth.apikey.", "auth.signing_key."} {
		if strings.HasPrefix(action, p) {
			return true
		}
	}
	return false
}

// isProvisioning reports whether an entry registers or removes a user or
// credential (SOC 2 CC6.2).
func isProvisioning(action string) bool {
	switch action {
	case ActionUserRegistered, ActionMemberAdded, ActionMemberRemoved,
		"tenancy.invitation.created", "tenancy.invitation.accepted", "tenancy.invitation.revoked",
		"auth.apikey.created", "auth.apikey.revoked":
		return true
	}
	return false
}

// entryDetails are the detail fields the reports read; the rest is ignored.
type entryDetails struct {
	UserID   string `json:"user_id"`
	Role     string `json:"role"`
	Previous string `json:"previous_role"`
	Reason   string `json:"reason"`
	Stage    string `json:"stage"`
	IP       string `json:"ip"`
}

func details(e events.AuditEntry) entryDetails {
	var d entryDetails
	if len(e.Details) > 0 {
		_ = json.Unmarshal(e.Details, &d) // lenient: missing fields stay empty
	}
	return d
}

func actor(e events.AuditEntry) string { return string(e.Actor.Kind) + ":" + e.Actor.ID }

func day(e events.AuditEntry) string {
	if t, ok := entryTime(e); ok {
		return t.Format("2006-01-02")
	}
	return ""
}

func ip(e events.AuditEntry) string {
	if e.Actor.IP != "" {
		return e.Actor.IP
	}
	return details(e).IP
}

func u(n uint64) string { return strconv.FormatUint(n, 10) }

// evidence is a capped list of rows.
type evidence struct {
	max       int
	total     uint64
	rows      [][]string
	truncated bool
}

func (v *evidence) add(row []string) {
	v.total++
	if len(v.rows) >= v.max {
		v.truncated = true
		return
	}
	v.rows = append(v.rows, row)
}

func (v *evidence) section(id, title, desc string, cols []string) Section {
	return Section{ID: id, Title: title, Description: desc, Total: v.total, Columns: cols, Rows: nonNil(v.rows), Truncated: v.truncated}
}

// counter counts entries by a composite key.
type counter map[string]uint64

func (c counter) add(key ...string) { c[strings.Join(key, "\x00")]++ }

func (c counter) total() uint64 {
	var n uint64
	for _, v := range c {
		n += v
	}
	return n
}

// rows returns one row per key (its parts, then the count), by count
// descending and then by key.
func (c counter) rows() [][]string {
	keys := slices.Collect(maps.Keys(c))
	slices.SortFunc(keys, func(a, b string) int {
		if d := cmp.Compare(c[b], c[a]); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	out := make([][]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, append(strings.Split(k, "\x00"), u(c[k])))
	}
	return out
}

// rowsByKey returns the rows ordered by key (for days).
func (c counter) rowsByKey() [][]string {
	keys := slices.Sorted(maps.Keys(c))
	out := make([][]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, append(strings.Split(k, "\x00"), u(c[k])))
	}
	return out
}

func nonNil(rows [][]string) [][]string {
	if rows == nil {
		return [][]string{}
	}
	return rows
}

// eventRow is the common evidence row of one entry.
var eventColumns = []string{"time", "index", "actor", "ip", "action", "resource", "outcome"}

func eventRow(e events.AuditEntry) []string {
	return []string{e.Time, u(e.Index), actor(e), ip(e), e.Action, e.Resource.Type + ":" + e.Resource.ID, e.Outcome}
}
