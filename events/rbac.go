package events

// Role is a member's role in an organisation. Roles are ordered: each one
// can do everything the roles below it can.
type Role string

// The roles, highest first.
const (
	RoleOwner    Role = "owner"
	RoleAdmin    Role = "admin"
	RoleOperator Role = "operator"
	RoleViewer   Role = "viewer"
)

// Roles lists every role, highest first.
var Roles = []Role{RoleOwner, RoleAdmin, RoleOperator, RoleViewer}

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r.rank() > 0 }

// AtLeast reports whether r is the same as or above min.
func (r Role) AtLeast(min Role) bool { return r.Valid() && r.rank() >= min.rank() }

func (r Role) rank() int {
	switch r {
	case RoleOwner:
		return 4
	case RoleAdmin:
		return 3
	case RoleOperator:
		return 2
	case RoleViewer:
		return 1
	}
	return 0
}

// Permission names one thing a caller may do in an organisation.
type Permission string

// The permissions. Each route of the gateway and each service operation
// requires exactly one; the matrix below says which roles hold it.
const (
	PermOrgRead         Permission = "org:read"
	PermOrgUpdate       Permission = "org:update"
	PermOrgDelete       Permission = "org:delete"
	PermMembersRead     Permission = "members:read"
	PermMembersManage   Permission = "members:manage"
	PermOwnersManage    Permission = "owners:manage"
	PermEnrollmentRead  Permission = "enrollment:read"
	PermEnrollManage    Permission = "enrollment:manage"
	PermAPIKeysManage   Permission = "apikeys:manage"
	PermAgentsRead      Permission = "agents:read"
	PermAgentsManage    Permission = "agents:manage"
	PermContainersRead  Permission = "containers:read"
	PermContainersWrite Permission = "containers:write"
	PermContainersExec  Permission = "containers:exec"
	PermProxyRead       Permission = "proxy:read"
	PermProxyWrite      Permission = "proxy:write"
	PermLogsRead        Permission = "logs:read"
	PermAlertsRead      Permission = "alerts:read"
	PermAlertsWrite     Permission = "alerts:write"
	PermAuditRead       Permission = "audit:read"
	PermAuditManage     Permission = "audit:manage"
	PermPoliciesRead    Permission = "policies:read"
	PermPoliciesWrite   Permission = "policies:write"
	PermBillingRead     Permission = "billing:read"
	PermBillingManage   Permission = "billing:manage"
)

// permissions is the one permission matrix of InfraPilot: the lowest role
// holding each permission. Viewers read; operators run things (containers,
// proxies, alerts); admins manage people, keys, policies and the audit
// configuration; owners alone delete the organisation, manage owners and
// billing.
var permissions = map[Permission]Role{
	PermOrgRead:         RoleViewer,
	PermMembersRead:     RoleViewer,
	PermEnrollmentRead:  RoleOperator,
	PermAgentsRead:      RoleViewer,
	PermContainersRead:  RoleViewer,
	PermProxyRead:       RoleViewer,
	PermLogsRead:        RoleViewer,
	PermAlertsRead:      RoleViewer,
	PermPoliciesRead:    RoleViewer,
	PermBillingRead:     RoleAdmin,
	PermAuditRead:       RoleAdmin,
	PermContainersWrite: RoleOperator,
	PermContainersExec:  RoleOperator,
	PermProxyWrite:      RoleOperator,
	PermAlertsWrite:     RoleOperator,
	PermAgentsManage:    RoleAdmin,
	PermEnrollManage:    RoleAdmin,
	PermMembersManage:   RoleAdmin,
	PermAPIKeysManage:   RoleAdmin,
	PermOrgUpdate:       RoleAdmin,
	PermPoliciesWrite:   RoleAdmin,
	PermAuditManage:     RoleAdmin,
	PermOwnersManage:    RoleOwner,
	PermOrgDelete:       RoleOwner,
	PermBillingManage:   RoleOwner,
}

// Allowed reports whether role r holds permission p. Unknown roles and
// unknown permissions are never allowed.
func Allowed(r Role, p Permission) bool {
	min, ok := permissions[p]
	return ok && r.AtLeast(min)
}

// Permissions lists every permission with the lowest role holding it, for
// documentation and tests.
func Permissions() map[Permission]Role {
	out := make(map[Permission]Role, len(permissions))
	for p, r := range permissions {
		out[p] = r
	}
	return out
}
