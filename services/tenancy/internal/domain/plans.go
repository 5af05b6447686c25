package domain

import "github.com/infrapilot/infrapilot/events"

// Plan names.
const (
	PlanFree       = "free"
	PlanPro        = "pro"
	PlanEnterprise = "enterprise"
)

// Plan is what an org may use. A zero limit means unlimited.
type Plan struct {
	MaxUsers  int
	MaxAgents int
}

// DefaultPlans are the plans InfraPilot sells.
func DefaultPlans() map[string]Plan {
	return map[string]Plan{
		PlanFree:       {MaxUsers: 3, MaxAgents: 2},
		PlanPro:        {MaxUsers: 25, MaxAgents: 50},
		PlanEnterprise: {},
	}
}

// UsersAllowed reports whether an org on p with n users may add one more.
func (p Plan) UsersAllowed(n int) bool { return p.MaxUsers == 0 || n < p.MaxUsers }

// AgentsAllowed reports whether an org on p with n agents may add one more.
func (p Plan) AgentsAllowed(n int) bool { return p.MaxAgents == 0 || n < p.MaxAgents }

// Limits is p's limits on the wire (null for unlimited).
func (p Plan) Limits() events.PlanLimits {
	var l events.PlanLimits
	if p.MaxUsers > 0 {
		u := p.MaxUsers
		l.Users = &u
	}
	if p.MaxAgents > 0 {
		a := p.MaxAgents
		l.Agents = &a
	}
	return l
}
