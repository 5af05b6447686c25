package report

import "github.com/infrapilot/infrapilot/events"

// security lists the period's security events: failed sign-ins, MFA
// failures, denied requests, policy blocks and refresh-token reuse.
type security struct {
	byCategory counter
	bySource   counter // (category, ip, actor)
	byDay      counter // (day, category)
	events     evidence
}

func newSecurity(maxRows int) *security {
	return &security{byCategory: counter{}, bySource: counter{}, byDay: counter{}, events: evidence{max: maxRows}}
}

func (s *security) add(e events.AuditEntry, in bool) {
	if !in {
		return
	}
	c := SecurityCategory(e)
	if c == "" {
		return
	}
	s.byCategory.add(c)
	s.bySource.add(c, ip(e), actor(e))
	s.byDay.add(day(e), c)
	s.events.add(append([]string{c}, eventRow(e)...))
}

func (s *security) sections() []Section {
	return []Section{
		{ID: "by_category", Title: "Security events by category", Total: s.byCategory.total(),
			Columns: []string{"category", "count"}, Rows: s.byCategory.rows()},
		{ID: "by_source", Title: "Security events by source", Description: "Per category, IP address and actor: repeated failures from one source stand out.",
			Total: s.bySource.total(), Columns: []string{"category", "ip", "actor", "count"}, Rows: s.bySource.rows()},
		{ID: "by_day", Title: "Security events by day (UTC)", Total: s.byDay.total(),
			Columns: []string{"day", "category", "count"}, Rows: s.byDay.rowsByKey()},
		s.events.section("events", "Security events", "Each security event of the period.", append([]string{"category"}, eventColumns...)),
	}
}
