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
	// Forwarding, when present, replaces the org's SIEM destinations
	// (an empty list removes them all); absent, they stay as they are.
	Forwarding *[]AuditDestinationRequest `json:"forwarding,omitempty"`
}

// AuditConfig is an org's audit configuration.
type AuditConfig struct {
	RetentionDays   int    `json:"retention_days"`
	RetentionPolicy string `json:"retention_policy"`
	ComplianceMode  bool   `json:"compliance_mode"`
	UpdatedAt       string `json:"updated_at,omitempty"`
	UpdatedBy       string `json:"updated_by,omitempty"`
	// Forwarding lists the SIEM destinations with their delivery status
	// (secrets are never shown).
	Forwarding []AuditDestination `json:"forwarding"`
	// Retention is the last pruning of the projections, if any.
	Retention *AuditRetentionStatus `json:"retention,omitempty"`
	// ClickHouse says whether the analytics projection runs: "on" or
	// "off (not configured)".
	ClickHouse string `json:"clickhouse,omitempty"`
}

// DefaultAuditConfig is the configuration of an org that never set one:
// keep everything, and archive before any pruning.
func DefaultAuditConfig() AuditConfig {
	return AuditConfig{RetentionDays: 0, RetentionPolicy: RetentionArchive}
}

// Operations of the audit service's exports, reports and SIEM forwarding,
// served on ServiceEndpoint("audit", op). Like the core's, they act in the
// request's org header only.
const (
	// OpAuditExportCreate queues an export of the org's entries in a time
	// range. Request: AuditExportRequest. Reply: AuditExport (status
	// queued). Permission: audit:read. At most a few exports of one org
	// may be queued or running at once (rate_limited beyond).
	OpAuditExportCreate = "export_create"
	// OpAuditExportList lists the org's exports, newest first. Request:
	// AuditPageRequest. Reply: List[AuditExport]. Permission: audit:read.
	OpAuditExportList = "export_list"
	// OpAuditExportGet returns one of the org's exports; another org's id
	// is not_found. Request: AuditIDRequest. Reply: AuditExport.
	// Permission: audit:read.
	OpAuditExportGet = "export_get"
	// OpAuditReportCreate computes a compliance report over a time range
	// and stores it. Request: AuditReportRequest. Reply: AuditReport.
	// Permission: audit:read.
	OpAuditReportCreate = "report_create"
	// OpAuditReportList lists the org's reports, newest first. Request:
	// AuditPageRequest. Reply: List[AuditReport]. Permission: audit:read.
	OpAuditReportList = "report_list"
	// OpAuditReportGet returns one of the org's reports (where its
	// renderings are stored); another org's id is not_found. Request:
	// AuditIDRequest. Reply: AuditReport. Permission: audit:read.
	OpAuditReportGet = "report_get"
	// OpAuditForwardingTest sends one test entry to a SIEM destination,
	// a configured one (by id) or one given in full. Request:
	// AuditForwardingTestRequest. Reply: AuditForwardingTestReply.
	// Permission: audit:manage.
	OpAuditForwardingTest = "forwarding_test"
)

// JetStream object store buckets of the audit service. Every object of an
// org is named with AuditObjectPrefix(org) first, so that whoever serves
// an object checks it against the caller's org, never the request's
// words.
const (
	// AuditBucketExports holds the files of requested exports; they
	// expire (the bucket's TTL, 7 days by default).
	AuditBucketExports = "audit_exports"
	// AuditBucketArchive holds retention archives (the entries pruned from
	// the projections) and compliance reports; nothing in it expires.
	AuditBucketArchive = "audit_archive"
)

// AuditObjectPrefix is the prefix of every object of org in the audit
// buckets: "<org>/".
func AuditObjectPrefix(org string) string { return org + "/" }

// Export purposes.
const (
	// AuditExportPurposeExport is an export a user asked for.
	AuditExportPurposeExport = "export"
	// AuditExportPurposeArchive is the archive the retention job writes
	// before pruning the projections (JSONL, by index range).
	AuditExportPurposeArchive = "archive"
)

// Export job states: queued → running → done | failed.
const (
	AuditExportStatusQueued  = "queued"
	AuditExportStatusRunning = "running"
	AuditExportStatusDone    = "done"
	AuditExportStatusFailed  = "failed"
)

// AuditIDRequest names one resource of the request's org.
type AuditIDRequest struct {
	ID string `json:"id"`
}

// AuditExportRequest is the body of POST /audit/exports: the entries whose
// time lies in [from, to) (RFC 3339), in format csv, jsonl, cef or syslog.
type AuditExportRequest struct {
	Format string `json:"format"`
	From   string `json:"from"`
	To     string `json:"to"`
}

// AuditExport is an export job and, once done, where its file is.
type AuditExport struct {
	ID      string `json:"id"`
	Purpose string `json:"purpose"`
	Format  string `json:"format"`
	// From and To bound the entry times (exports); FromIndex and ToIndex
	// the chain indexes (archives).
	From      string `json:"from,omitempty"`
	To        string `json:"to,omitempty"`
	FromIndex uint64 `json:"from_index,omitempty"`
	ToIndex   uint64 `json:"to_index,omitempty"`
	Status    string `json:"status"`
	Attempts  int    `json:"attempts"`
	// Rows, Bytes and SHA256 (hex, of the whole file) are set when done;
	// FirstIndex and LastIndex are the chain indexes the file holds.
	Rows       uint64 `json:"rows"`
	Bytes      int64  `json:"bytes"`
	SHA256     string `json:"sha256,omitempty"`
	FirstIndex uint64 `json:"first_index,omitempty"`
	LastIndex  uint64 `json:"last_index,omitempty"`
	Error      string `json:"error,omitempty"`
	// FileName and ContentType are what a download is served with.
	FileName    string `json:"file_name"`
	ContentType string `json:"content_type"`
	// Bucket and Object locate the file in the JetStream object store.
	Bucket      string `json:"bucket,omitempty"`
	Object      string `json:"object,omitempty"`
	RequestedBy string `json:"requested_by,omitempty"`
	CreatedAt   string `json:"created_at"`
	StartedAt   string `json:"started_at,omitempty"`
	FinishedAt  string `json:"finished_at,omitempty"`
	// ExpiresAt is when the file leaves the object store (exports only).
	ExpiresAt string `json:"expires_at,omitempty"`
}

// AuditReportRequest is the body of POST /audit/reports: a report of kind
// soc2, hipaa, access_review, activity or security over the entries whose
// time lies in [from, to); format json (default) or csv is the rendering
// GET /audit/reports/{id} answers with when the request names none.
type AuditReportRequest struct {
	Kind   string `json:"kind"`
	From   string `json:"from"`
	To     string `json:"to"`
	Format string `json:"format,omitempty"`
}

// AuditReport describes a stored report. Objects maps each rendering
// ("json", "csv") to its object in Bucket.
type AuditReport struct {
	ID          string            `json:"id"`
	Kind        string            `json:"kind"`
	From        string            `json:"from"`
	To          string            `json:"to"`
	Format      string            `json:"format"`
	Entries     uint64            `json:"entries"`
	FirstIndex  uint64            `json:"first_index,omitempty"`
	LastIndex   uint64            `json:"last_index,omitempty"`
	Bucket      string            `json:"bucket,omitempty"`
	Objects     map[string]string `json:"objects,omitempty"`
	RequestedBy string            `json:"requested_by,omitempty"`
	CreatedAt   string            `json:"created_at"`
}

// AuditDestinationConfig is the configuration of one SIEM destination,
// without its secret. Kind is webhook (URL; the secret is the HMAC key),
// syslog (Address host:port, TLS for RFC 5425 over TLS) or splunk_hec
// (URL; the secret is the HEC token).
type AuditDestinationConfig struct {
	ID         string `json:"id"`
	Kind       string `json:"kind"`
	URL        string `json:"url,omitempty"`
	Address    string `json:"address,omitempty"`
	TLS        bool   `json:"tls,omitempty"`
	CACertPEM  string `json:"ca_cert_pem,omitempty"`
	ServerName string `json:"server_name,omitempty"`
	Index      string `json:"index,omitempty"`
	Hostname   string `json:"hostname,omitempty"`
	// FromStart forwards the org's whole chain to a new destination;
	// otherwise it receives the entries appended after it was added.
	FromStart bool `json:"from_start,omitempty"`
}

// AuditDestinationRequest is one destination in PUT /audit/config. Secret
// may be left out for a destination that already has one: it is kept.
type AuditDestinationRequest struct {
	AuditDestinationConfig
	Secret string `json:"secret,omitempty"`
}

// AuditDestination is a destination as GET /audit/config shows it: never
// its secret, only whether it has one, and its delivery status.
type AuditDestination struct {
	AuditDestinationConfig
	SecretSet bool                   `json:"secret_set"`
	Status    *AuditForwardingStatus `json:"status,omitempty"`
}

// AuditForwardingStatus is a destination's delivery state as the answering
// audit instance sees it; Lag is the server's count (all instances).
type AuditForwardingStatus struct {
	Running     bool   `json:"running"`
	LastSuccess string `json:"last_success,omitempty"`
	LastError   string `json:"last_error,omitempty"`
	LastErrorAt string `json:"last_error_at,omitempty"`
	// Failures counts consecutive failed attempts (0 when healthy).
	Failures  int    `json:"failures"`
	LastIndex uint64 `json:"last_index"`
	Delivered uint64 `json:"delivered"`
	Lag       uint64 `json:"lag"`
}

// AuditRetentionStatus is the last run of the retention job that pruned
// anything from an org's projections.
type AuditRetentionStatus struct {
	ThroughIndex uint64 `json:"through_index"`
	Before       string `json:"before"`
	Policy       string `json:"policy"`
	ArchiveID    string `json:"archive_id,omitempty"`
	AppliedAt    string `json:"applied_at"`
}

// AuditForwardingTestRequest names the destination to test: a configured
// one by ID (its stored secret is used), or Destination in full.
type AuditForwardingTestRequest struct {
	ID          string                   `json:"id,omitempty"`
	Destination *AuditDestinationRequest `json:"destination,omitempty"`
}

// AuditForwardingTestReply is the outcome of one test delivery.
type AuditForwardingTestReply struct {
	OK         bool   `json:"ok"`
	Error      string `json:"error,omitempty"`
	DurationMS int64  `json:"duration_ms"`
}

// Aggregate types of the audit service's exports, reports and linked user
// activity, on stream AUDIT under "audit.evt.>".
const (
	// AuditAggExport is one export job: ("export", export id).
	AuditAggExport = "export"
	// AuditAggReport is one stored report: ("report", report id).
	AuditAggReport = "report"
	// AuditAggUserActivity is one user's activity as linked into one org:
	// ("user_activity", user id) in that org.
	AuditAggUserActivity = "user_activity"
)

// AuditExportRequested is emitted when an export is asked for (by a user,
// or by the retention job as an archive). The aggregate is
// (AuditAggExport, export id).
type AuditExportRequested struct {
	Purpose   string `json:"purpose"`
	Format    string `json:"format"`
	From      string `json:"from,omitempty"`
	To        string `json:"to,omitempty"`
	FromIndex uint64 `json:"from_index,omitempty"`
	ToIndex   uint64 `json:"to_index,omitempty"`
}

// EventType implements Payload.
func (AuditExportRequested) EventType() string { return "audit.export.requested" }

// EventVersion implements Payload.
func (AuditExportRequested) EventVersion() int { return 1 }

// AuditExportStarted is emitted when a worker starts (or restarts, after
// an interruption) writing an export.
type AuditExportStarted struct {
	Attempt int `json:"attempt"`
}

// EventType implements Payload.
func (AuditExportStarted) EventType() string { return "audit.export.started" }

// EventVersion implements Payload.
func (AuditExportStarted) EventVersion() int { return 1 }

// AuditExportCompleted is emitted when an export's file is whole in the
// object store.
type AuditExportCompleted struct {
	Bucket     string `json:"bucket"`
	Object     string `json:"object"`
	Rows       uint64 `json:"rows"`
	Bytes      int64  `json:"bytes"`
	SHA256     string `json:"sha256"`
	FirstIndex uint64 `json:"first_index,omitempty"`
	LastIndex  uint64 `json:"last_index,omitempty"`
}

// EventType implements Payload.
func (AuditExportCompleted) EventType() string { return "audit.export.completed" }

// EventVersion implements Payload.
func (AuditExportCompleted) EventVersion() int { return 1 }

// AuditExportFailed is emitted when an export cannot be written.
type AuditExportFailed struct {
	Error string `json:"error"`
}

// EventType implements Payload.
func (AuditExportFailed) EventType() string { return "audit.export.failed" }

// EventVersion implements Payload.
func (AuditExportFailed) EventVersion() int { return 1 }

// AuditReportGenerated is emitted when a compliance report has been
// computed and stored. The aggregate is (AuditAggReport, report id).
type AuditReportGenerated struct {
	Kind       string            `json:"kind"`
	From       string            `json:"from"`
	To         string            `json:"to"`
	Format     string            `json:"format"`
	Entries    uint64            `json:"entries"`
	FirstIndex uint64            `json:"first_index,omitempty"`
	LastIndex  uint64            `json:"last_index,omitempty"`
	Bucket     string            `json:"bucket"`
	Objects    map[string]string `json:"objects"`
}

// EventType implements Payload.
func (AuditReportGenerated) EventType() string { return "audit.report.generated" }

// EventVersion implements Payload.
func (AuditReportGenerated) EventVersion() int { return 1 }

// AuditForwardDestination is a SIEM destination as an event records it:
// its configuration and SecretID, a random reference to the secret stored
// in the audit service's database (never the secret, nor anything derived
// from it). A new SecretID means the secret was replaced.
type AuditForwardDestination struct {
	AuditDestinationConfig
	SecretID string `json:"secret_id,omitempty"`
}

// AuditForwardingUpdated is emitted when an org's SIEM destinations
// change; it carries the whole new list. The aggregate is
// (AuditAggConfig, org id), shared with AuditConfigUpdated.
type AuditForwardingUpdated struct {
	Destinations []AuditForwardDestination `json:"destinations"`
}

// EventType implements Payload.
func (AuditForwardingUpdated) EventType() string { return "audit.forwarding.updated" }

// EventVersion implements Payload.
func (AuditForwardingUpdated) EventVersion() int { return 1 }

// AuditUserActivityLinked copies a user's own platform event (a login, a
// failed login, a session, a second factor) into the chain of an org the
// user was a member of when it happened, so that the org's administrators
// see it. Its chain entry is the source event's (time, actor, action,
// resource, outcome, details) under this event's id. The aggregate is
// (AuditAggUserActivity, user id) in that org.
type AuditUserActivityLinked struct {
	Source Envelope `json:"source"`
}

// EventType implements Payload.
func (AuditUserActivityLinked) EventType() string { return "audit.user_activity.linked" }

// EventVersion implements Payload.
func (AuditUserActivityLinked) EventVersion() int { return 1 }

func init() {
	Catalogue.MustRegister(AuditExportRequested{}, "An export of an org's audit entries was asked for (a user's export, or the retention job's archive).")
	Catalogue.MustRegister(AuditExportStarted{}, "A worker started writing an export (again, after an interruption, when attempt > 1).")
	Catalogue.MustRegister(AuditExportCompleted{}, "An export's file is complete in the object store: rows, bytes, SHA-256, chain indexes.")
	Catalogue.MustRegister(AuditExportFailed{}, "An export could not be written.")
	Catalogue.MustRegister(AuditReportGenerated{}, "A compliance report was computed over a time range and stored (JSON and CSV).")
	Catalogue.MustRegister(AuditForwardingUpdated{}, "An org's SIEM destinations changed; the whole new list, with references to the stored secrets, never the secrets.")
	Catalogue.MustRegister(AuditUserActivityLinked{}, "A user's own platform event (login, failed login, session, MFA) linked into the audit chain of an org the user belongs to.")
}

// Operations of the audit service's SIEM read credentials: NATS
// credentials with which a SIEM reads one org's audit chain
// (AuditChain(org) on StreamAudit) through a durable pull consumer of its
// own, and nothing else. Served on ServiceEndpoint("audit", op), in the
// request's org header only. docs/security.md describes what the
// credentials can and cannot do.
const (
	// OpAuditSIEMCredentialsCreate issues a credential, creates its
	// consumer and records it. Request: AuditSIEMCredentialsRequest.
	// Reply: AuditSIEMCredentialsIssued (the .creds text is in this reply
	// only, never stored). Permission: audit:manage. Unavailable when the
	// control plane's NATS hub does not run in operator mode.
	OpAuditSIEMCredentialsCreate = "siem_credentials_create"
	// OpAuditSIEMCredentialsList lists the org's credentials, newest
	// first, revoked and expired ones included, without any secret.
	// Request: AuditPageRequest. Reply: List[AuditSIEMCredential].
	// Permission: audit:manage.
	OpAuditSIEMCredentialsList = "siem_credentials_list"
	// OpAuditSIEMCredentialsRevoke revokes a credential (its live
	// connections are closed) and deletes its consumer. Revoking a revoked
	// credential again is not an error. Request: AuditIDRequest. Reply:
	// Empty. Permission: audit:manage.
	OpAuditSIEMCredentialsRevoke = "siem_credentials_revoke"
)

// States of a SIEM credential.
const (
	AuditSIEMStatusActive  = "active"
	AuditSIEMStatusExpired = "expired"
	AuditSIEMStatusRevoked = "revoked"
)

// AuditSIEMCredentialsRequest is the body of POST
// /audit/siem-credentials. TTL is a Go duration ("720h") or a number of
// days ("30d"); absent, 90 days; at most 400 days.
type AuditSIEMCredentialsRequest struct {
	Name string `json:"name"`
	TTL  string `json:"ttl,omitempty"`
}

// AuditSIEMCredential is a SIEM credential as listed: where and how it
// reads, never its secret. UserKey is the public nkey of its NATS user
// (what the servers revoke and log), not a secret.
type AuditSIEMCredential struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Status is active, expired or revoked.
	Status string `json:"status"`
	// Stream, Consumer and Subject are what the SIEM reads: the durable
	// pull consumer Consumer on stream AUDIT, filtered to Subject (the
	// org's chain).
	Stream   string `json:"stream"`
	Consumer string `json:"consumer"`
	Subject  string `json:"subject"`
	// InboxPrefix is the only inbox the credential may receive on; the
	// SIEM's NATS client must use it as its inbox prefix.
	InboxPrefix string `json:"inbox_prefix"`
	UserKey     string `json:"user_key"`
	CreatedBy   string `json:"created_by,omitempty"`
	CreatedAt   string `json:"created_at"`
	ExpiresAt   string `json:"expires_at"`
	RevokedBy   string `json:"revoked_by,omitempty"`
	RevokedAt   string `json:"revoked_at,omitempty"`
}

// AuditSIEMCredentialsIssued is the reply of OpAuditSIEMCredentialsCreate:
// the credential, the NATS URL to connect to, and the .creds file. The
// .creds text is shown once: InfraPilot does not keep it.
type AuditSIEMCredentialsIssued struct {
	AuditSIEMCredential
	NATSURL     string `json:"nats_url"`
	Credentials string `json:"credentials"`
}

// AuditAggSIEMCredential is one SIEM read credential: ("siem_credential",
// credential id) in its org, on stream AUDIT under "audit.evt.>".
const AuditAggSIEMCredential = "siem_credential"

// AuditSIEMCredentialCreated is emitted when a SIEM read credential is
// issued for an org. It names the credential's NATS user by its public key
// only; the credential itself is never in an event. The aggregate is
// (AuditAggSIEMCredential, credential id).
type AuditSIEMCredentialCreated struct {
	Name        string `json:"name"`
	UserKey     string `json:"user_key"`
	Consumer    string `json:"consumer"`
	Subject     string `json:"subject"`
	InboxPrefix string `json:"inbox_prefix"`
	// ExpiresAt is when the NATS servers stop accepting the credential
	// (RFC 3339).
	ExpiresAt string `json:"expires_at"`
}

// EventType implements Payload.
func (AuditSIEMCredentialCreated) EventType() string { return "audit.siem_credential.created" }

// EventVersion implements Payload.
func (AuditSIEMCredentialCreated) EventVersion() int { return 1 }

// AuditSIEMCredentialRevoked is emitted when a SIEM read credential has
// been revoked at the NATS servers and its consumer deleted.
type AuditSIEMCredentialRevoked struct {
	UserKey  string `json:"user_key"`
	Consumer string `json:"consumer"`
}

// EventType implements Payload.
func (AuditSIEMCredentialRevoked) EventType() string { return "audit.siem_credential.revoked" }

// EventVersion implements Payload.
func (AuditSIEMCredentialRevoked) EventVersion() int { return 1 }

func init() {
	Catalogue.MustRegister(AuditSIEMCredentialCreated{}, "Read-only NATS credentials to an org's audit chain were issued for a SIEM; the user's public key, never the credentials.")
	Catalogue.MustRegister(AuditSIEMCredentialRevoked{}, "A SIEM's read credentials to an org's audit chain were revoked (connections closed) and its consumer deleted.")
}
