package report

import "github.com/infrapilot/infrapilot/events"

// soc2 computes the SOC 2 common criteria the audit log evidences.
type soc2 struct {
	access      counter  // CC6.1: (action, outcome)
	provisioned evidence // CC6.2
	roles       evidence // CC6.3
	security    counter  // CC7.2: (category, action)
	incidents   evidence // CC7.2 evidence
}

func newSOC2(maxRows int) *soc2 {
	return &soc2{access: counter{}, security: counter{}, provisioned: evidence{max: maxRows},
		roles: evidence{max: maxRows}, incidents: evidence{max: maxRows}}
}

func (s *soc2) add(e events.AuditEntry, in bool) {
	if !in {
		return
	}
	if isLogicalAccess(e.Action) {
		s.access.add(e.Action, e.Outcome)
	}
	if isProvisioning(e.Action) {
		d := details(e)
		s.provisioned.add([]string{e.Time, u(e.Index), actor(e), e.Action, subject(e, d), d.Role, e.Outcome})
	}
	if e.Action == ActionMemberRoleChange {
		d := details(e)
		s.roles.add([]string{e.Time, u(e.Index), actor(e), d.UserID, d.Previous, d.Role, e.Outcome})
	}
	if c := SecurityCategory(e); c != "" {
		s.security.add(c, e.Action)
		s.incidents.add(append([]string{c}, eventRow(e)...))
	}
}

// subject is who a provisioning entry is about: the user in its details,
// or else its resource (an API key, an invitation).
func subject(e events.AuditEntry, d entryDetails) string {
	if d.UserID != "" {
		return "user:" + d.UserID
	}
	return e.Resource.Type + ":" + e.Resource.ID
}

func (s *soc2) sections() []Section {
	return []Section{
		{ID: "CC6.1", Title: "Logical access security",
			Description: "Sign-ins, second factors, sessions and API keys: how access to the system was authenticated, by action and outcome.",
			Total:       s.access.total(), Columns: []string{"action", "outcome", "count"}, Rows: s.access.rows()},
		s.provisioned.section("CC6.2", "User registration and deprovisioning",
			"Every user, member, invitation and API key that was registered, granted or removed.",
			[]string{"time", "index", "actor", "action", "subject", "role", "outcome"}),
		s.roles.section("CC6.3", "Role changes",
			"Every change of a member's role, with who made it.",
			[]string{"time", "index", "actor", "user_id", "previous_role", "role", "outcome"}),
		{ID: "CC7.2", Title: "Security event monitoring",
			Description: "Security events detected and recorded: failed sign-ins, failed second factors, denied requests, policy blocks and refresh-token reuse.",
			Total:       s.security.total(), Columns: []string{"category", "action", "count"}, Rows: s.security.rows()},
		s.incidents.section("CC7.2-events", "Security events",
			"Each security event of CC7.2.", append([]string{"category"}, eventColumns...)),
	}
}
