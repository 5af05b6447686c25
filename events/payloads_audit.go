package events

// Aggregate types of the audit service's own events, on stream AUDIT under
// "audit.evt.>". They are separate from the chains ("audit.chain.<org>")
// and checkpoints ("audit.checkpoint.<org>"), which are not envelopes.
const (
	// AuditAggConfig is an org's audit configuration: ("config", org id).
	AuditAggConfig = "config"
	// AuditAggRetention records how far an org's Postgres and ClickHouse
	// projections have been pruned: ("retention", org id). The stream
	// itself is never pruned.
	AuditAggRetention = "retention"
	// AuditAggSigningKey is one checkpoint signing key, in org PlatformOrg:
	// ("signing_key", key id).
	AuditAggSigningKey = "signing_key"
)

// Retention policies: what happens to entries older than the retention
// period.
const (
	// RetentionDelete prunes old entries from the projections.
	RetentionDelete = "delete"
	// RetentionArchive exports old entries (verifiable JSONL) before
	// pruning them from the projections.
	RetentionArchive = "archive"
)

// RetentionDays lists the accepted retention periods in days; 0 means
// unlimited.
var RetentionDays = []int{30, 90, 180, 365, 0}

// AuditConfigUpdated is emitted when an org's audit configuration changes.
// It carries the whole new configuration. The aggregate is
// (AuditAggConfig, org id).
type AuditConfigUpdated struct {
	// RetentionDays is one of RetentionDays; 0 keeps entries forever.
	RetentionDays int `json:"retention_days"`
	// RetentionPolicy is RetentionDelete or RetentionArchive.
	RetentionPolicy string `json:"retention_policy"`
	// ComplianceMode, when on, requires the archive policy: no entry
	// leaves the projections without a verifiable export first.
	ComplianceMode bool `json:"compliance_mode"`
}

// EventType implements Payload.
func (AuditConfigUpdated) EventType() string { return "audit.config.updated" }

// EventVersion implements Payload.
func (AuditConfigUpdated) EventVersion() int { return 1 }

// AuditRetentionApplied is emitted by the retention job before it prunes an
// org's projections: entries with an index up to ThroughIndex may be gone
// from Postgres and ClickHouse (never from the stream). Verification starts
// after it. The aggregate is (AuditAggRetention, org id).
type AuditRetentionApplied struct {
	ThroughIndex uint64 `json:"through_index"`
	// Before is the RFC 3339 cut-off time the job pruned by.
	Before string `json:"before"`
	Policy string `json:"policy"`
	// ArchiveID names the export that holds the pruned entries under the
	// archive policy; empty under delete.
	ArchiveID string `json:"archive_id,omitempty"`
}

// EventType implements Payload.
func (AuditRetentionApplied) EventType() string { return "audit.retention.applied" }

// EventVersion implements Payload.
func (AuditRetentionApplied) EventVersion() int { return 1 }

// AuditSigningKeyCreated is emitted when the audit service creates the
// Ed25519 key it signs checkpoints with, so that the public key is on the
// append-only stream for any verifier to fetch. The private key never
// leaves the audit service's database. The aggregate is
// (AuditAggSigningKey, key id) in org PlatformOrg.
type AuditSigningKeyCreated struct {
	KeyID     string `json:"key_id"`
	Algorithm string `json:"algorithm"` // "Ed25519"
	// PublicKey is the raw 32-byte public key, standard base64.
	PublicKey string `json:"public_key"`
}

// EventType implements Payload.
func (AuditSigningKeyCreated) EventType() string { return "audit.signing_key.created" }

// EventVersion implements Payload.
func (AuditSigningKeyCreated) EventVersion() int { return 1 }

func init() {
	Catalogue.MustRegister(AuditConfigUpdated{}, "An org's audit configuration (retention days and policy, compliance mode) changed; the whole new configuration.")
	Catalogue.MustRegister(AuditRetentionApplied{}, "The retention job is about to prune an org's audit projections up to an index; the AUDIT stream keeps every entry.")
	Catalogue.MustRegister(AuditSigningKeyCreated{}, "The audit service created its checkpoint signing key; the public key, never the private one.")
}
