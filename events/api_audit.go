package events

// Operations of the audit service's core, served on
// ServiceEndpoint("audit", op). The org is always the request's org header,
// never a field of the request. Exports, reports and forwarding have their
// own operations.
const (
	// OpAuditList lists an org's audit entries, newest first. Request:
	// AuditListRequest. Reply: List[AuditEntry]. Permission: audit:read.
	OpAuditList = "list"
	// OpAuditVerify recomputes the org's chain over a range of the
	// Postgres projection and checks it against the AUDIT stream and the
	// latest signed checkpoint. Request: AuditVerifyRequest. Reply:
	// AuditVerifyReply. Permission: audit:read.
	OpAuditVerify = "verify"
	// OpAuditCheckpoints lists the org's signed checkpoints, newest
	// first. Request: AuditPageRequest. Reply: List[SignedCheckpoint].
	// Permission: audit:read.
	OpAuditCheckpoints = "checkpoints"
	// OpAuditPublicKey returns the checkpoint signing keys. Request:
	// Empty. Reply: AuditPublicKeys. Permission: audit:read.
	OpAuditPublicKey = "public_key"
	// OpAuditGetConfig returns the org's audit configuration (defaults
	// when never set). Request: Empty. Reply: AuditConfig. Permission:
	// audit:read.
	OpAuditGetConfig = "config_get"
	// OpAuditPutConfig replaces the org's audit configuration. Request:
	// AuditConfigRequest. Reply: AuditConfig. Permission: audit:manage.
	OpAuditPutConfig = "config_put"
)

// Limits of the audit list operations.
const (
	AuditListDefaultLimit = 50
	AuditListMaxLimit     = 500
)

// AuditListRequest filters an org's audit entries. Every filter is
// optional; they combine with AND.
type AuditListRequest struct {
	// Action is an event type ("tenancy.member.added"), or a prefix
	// ending in "*" ("auth.*").
	Action       string `json:"action,omitempty"`
	ResourceType string `json:"resource_type,omitempty"`
	// Actor is the actor's id (user, API key, agent or system component).
	Actor string `json:"actor,omitempty"`
	// From and To bound the entry time, RFC 3339: From inclusive, To
	// exclusive.
	From   string `json:"from,omitempty"`
	To     string `json:"to,omitempty"`
	Limit  int    `json:"limit,omitempty"`
	Cursor string `json:"cursor,omitempty"`
}

// AuditPageRequest pages through a list.
type AuditPageRequest struct {
	Limit  int    `json:"limit,omitempty"`
	Cursor string `json:"cursor,omitempty"`
}

// AuditVerifyRequest names the range to verify, by chain index or by time
// (RFC 3339). Index bounds win over time bounds; an absent bound means the
// start (after retention) or the end of the chain.
type AuditVerifyRequest struct {
	FromIndex uint64 `json:"from_index,omitempty"`
	ToIndex   uint64 `json:"to_index,omitempty"`
	From      string `json:"from,omitempty"`
	To        string `json:"to,omitempty"`
}

// AuditFinding is one problem verification found.
type AuditFinding struct {
	Index  uint64 `json:"index"`
	Reason string `json:"reason"`
}

// AuditVerifyReply is the verdict on a range of an org's chain.
type AuditVerifyReply struct {
	OK bool `json:"ok"`
	// Checked is how many entries were recomputed.
	Checked uint64 `json:"checked"`
	// FirstIndex and LastIndex are the range actually checked.
	FirstIndex uint64 `json:"first_index,omitempty"`
	LastIndex  uint64 `json:"last_index,omitempty"`
	// FirstBadIndex is the lowest index found wrong, with Reason.
	FirstBadIndex uint64 `json:"first_bad_index,omitempty"`
	Reason        string `json:"reason,omitempty"`
	// Findings lists the first problems found (at most a few dozen), each
	// check reporting separately: a rewritten history shows up both as a
	// mismatch with the stream and with the signed checkpoint.
	Findings []AuditFinding `json:"findings,omitempty"`
	// Checkpoint is the latest signed checkpoint the range was checked
	// against, if any, and whether its signature verified.
	Checkpoint         *SignedCheckpoint `json:"checkpoint,omitempty"`
	CheckpointVerified bool              `json:"checkpoint_verified"`
}

// AuditPublicKey is one checkpoint signing key.
type AuditPublicKey struct {
	KeyID     string `json:"key_id"`
	Algorithm string `json:"algorithm"`
	// PublicKey is the raw 32-byte Ed25519 public key, standard base64.
	PublicKey string `json:"public_key"`
	CreatedAt string `json:"created_at,omitempty"`
	Active    bool   `json:"active"`
}

// AuditPublicKeys is the reply of OpAuditPublicKey: the active key's fields
// at the top level (for simple verifiers) and every key ever used.
type AuditPublicKeys struct {
	AuditPublicKey
	Keys []AuditPublicKey `json:"keys"`
}

// AuditConfigRequest is the body of PUT /audit/config.
type AuditConfigRequest struct {
	RetentionDays   *int   `json:"retention_days"`
	RetentionPolicy string `json:"retention_policy"`
	ComplianceMode  bool   `json:"compliance_mode"`
}

// AuditConfig is an org's audit configuration.
type AuditConfig struct {
	RetentionDays   int    `json:"retention_days"`
	RetentionPolicy string `json:"retention_policy"`
	ComplianceMode  bool   `json:"compliance_mode"`
	UpdatedAt       string `json:"updated_at,omitempty"`
	UpdatedBy       string `json:"updated_by,omitempty"`
}

// DefaultAuditConfig is the configuration of an org that never set one:
// keep everything, and archive before any pruning.
func DefaultAuditConfig() AuditConfig {
	return AuditConfig{RetentionDays: 0, RetentionPolicy: RetentionArchive}
}
