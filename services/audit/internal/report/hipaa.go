package report

import "github.com/infrapilot/infrapilot/events"

// hipaa computes the HIPAA Security Rule evidence the audit log gives:
// information system activity review (who accessed the system), security
// incidents, and workforce access changes.
type hipaa struct {
	actors    map[string]*actorAccess
	incidents evidence
	workforce evidence
}

type actorAccess struct {
	entries, logins, failed uint64
	first, last             string
}

func newHIPAA(maxRows int) *hipaa {
	return &hipaa{actors: map[string]*actorAccess{}, incidents: evidence{max: maxRows}, workforce: evidence{max: maxRows}}
}

func (h *hipaa) add(e events.AuditEntry, in bool) {
	if !in {
		return
	}
	a := h.actors[actor(e)]
	if a == nil {
		a = &actorAccess{first: e.Time}
		h.actors[actor(e)] = a
	}
	a.entries++
	a.last = e.Time
	switch e.Action {
	case ActionLoginSucceeded:
		a.logins++
	case ActionLoginFailed:
		a.failed++
	}
	if c := SecurityCategory(e); c != "" {
		h.incidents.add(append([]string{c}, eventRow(e)...))
	}
	switch e.Action {
	case ActionMemberAdded, ActionMemberRoleChange, ActionMemberRemoved:
		d := details(e)
		h.workforce.add([]string{e.Time, u(e.Index), actor(e), e.Action, d.UserID, d.Previous, d.Role})
	}
}

func (h *hipaa) sections() []Section {
	access := Section{ID: "164.312(b)", Title: "Access to systems (audit controls, information system activity review)",
		Description: "Each actor that used the system, with its sign-ins, failed sign-ins and first and last activity in the period. §164.312(b), §164.308(a)(1)(ii)(D).",
		Columns:     []string{"actor", "entries", "logins", "failed_logins", "first_seen", "last_seen"}, Rows: [][]string{}}
	for _, k := range sortedKeys(h.actors) {
		a := h.actors[k]
		access.Total += a.entries
		access.Rows = append(access.Rows, []string{k, u(a.entries), u(a.logins), u(a.failed), a.first, a.last})
	}
	return []Section{
		access,
		h.incidents.section("164.308(a)(6)", "Security incidents",
			"Security events identified and recorded: failed sign-ins, failed second factors, denied requests, policy blocks, refresh-token reuse. §164.308(a)(6)(ii).",
			append([]string{"category"}, eventColumns...)),
		h.workforce.section("164.308(a)(3)", "Workforce access changes",
			"Members granted access, changed role or removed (authorisation, clearance and termination). §164.308(a)(3)(ii)(A)–(C), §164.308(a)(4).",
			[]string{"time", "index", "actor", "action", "user_id", "previous_role", "role"}),
	}
}
