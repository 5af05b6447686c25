package report

import "github.com/infrapilot/infrapilot/events"

// activity counts the period's entries by action, actor, day and outcome.
type activity struct {
	byAction, byActor, byDay, byOutcome counter
}

func newActivity() *activity {
	return &activity{byAction: counter{}, byActor: counter{}, byDay: counter{}, byOutcome: counter{}}
}

func (a *activity) add(e events.AuditEntry, in bool) {
	if !in {
		return
	}
	a.byAction.add(e.Action)
	a.byActor.add(actor(e))
	a.byDay.add(day(e))
	a.byOutcome.add(e.Outcome)
}

func (a *activity) sections() []Section {
	return []Section{
		{ID: "by_action", Title: "Entries by action", Total: a.byAction.total(), Columns: []string{"action", "count"}, Rows: a.byAction.rows()},
		{ID: "by_actor", Title: "Entries by actor", Total: a.byActor.total(), Columns: []string{"actor", "count"}, Rows: a.byActor.rows()},
		{ID: "by_day", Title: "Entries by day (UTC)", Total: a.byDay.total(), Columns: []string{"day", "count"}, Rows: a.byDay.rowsByKey()},
		{ID: "by_outcome", Title: "Entries by outcome", Total: a.byOutcome.total(), Columns: []string{"outcome", "count"}, Rows: a.byOutcome.rows()},
	}
}
