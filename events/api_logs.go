package events

import "time"

// Operations of the log-ingest service, served on
// ServiceEndpoint("logingest", op). The org is always the request's org
// header, never a field of the request: a query can only ever see its own
// org's lines and metrics.
const (
	// OpLogsQuery searches an org's stored log lines, newest first.
	// Request: LogsQueryRequest. Reply: LogsPage. Permission: logs:read.
	OpLogsQuery = "query"
	// OpLogsMetrics returns an agent's per-minute metric roll-ups (host and
	// containers) over a time range. Request: AgentMetricsRequest. Reply:
	// AgentMetricsReply. Permission: agents:read.
	OpLogsMetrics = "metrics"
	// OpLogsRetention reports the org's log retention: its plan, how long
	// lines are kept, and what the last retention run deleted. Request:
	// Empty. Reply: LogsRetentionStatus. Permission: logs:read.
	OpLogsRetention = "retention"
)

// Log sources: lines of a container's own log, or of the nginx proxy an
// agent runs (access and error logs).
const (
	LogSourceContainer = "container"
	LogSourceNginx     = "nginx"
)

// Log levels. Every stored line has exactly one; a line without any
// recognisable marker is LevelInfo.
const (
	LevelError = "error"
	LevelWarn  = "warn"
	LevelInfo  = "info"
	LevelDebug = "debug"
)

// Bounds of every log query, so that one tenant cannot exhaust the store:
// the time range, the page size, the bytes of one reply (well under the
// NATS payload limit), and how many lines one regex query may examine
// before it returns a short page with a cursor to continue.
const (
	LogsDefaultLimit   = 100
	LogsMaxLimit       = 1000
	LogsDefaultRange   = 24 * time.Hour
	LogsMaxRange       = 31 * 24 * time.Hour
	LogsMaxReplyBytes  = 4 << 20
	LogsMaxQueryLength = 1024
	// LogsExportMaxLines bounds one export; a larger one stops there and
	// says so (the CSV's last row, the JSONL's last object).
	LogsExportMaxLines = 1_000_000
	// MetricsMaxRange bounds GET /agents/{id}/metrics.
	MetricsMaxRange = 31 * 24 * time.Hour
)

// LogsQueryRequest filters an org's log lines. Every filter is optional and
// they combine with AND. From and To are RFC 3339 times, From inclusive and
// To exclusive; To defaults to now and From to LogsDefaultRange before To;
// the range may not exceed LogsMaxRange.
type LogsQueryRequest struct {
	AgentID string `json:"agent_id,omitempty"`
	// Container is a container id, an id prefix or a container name.
	Container string `json:"container,omitempty"`
	// Source is LogSourceContainer or LogSourceNginx.
	Source string `json:"source,omitempty"`
	// Level is one level or a comma-separated list ("error,warn").
	Level string `json:"level,omitempty"`
	// Q is a case-insensitive substring of the raw line.
	Q string `json:"q,omitempty"`
	// Regex is an RE2 expression (Go's regexp syntax) the raw line must
	// match. It is evaluated by the service, identically on every store.
	Regex  string `json:"regex,omitempty"`
	From   string `json:"from,omitempty"`
	To     string `json:"to,omitempty"`
	Limit  int    `json:"limit,omitempty"`
	Cursor string `json:"cursor,omitempty"`
}

// LogEntry is one stored log line. ID is stable: the same line always has
// the same id, however often it was delivered.
type LogEntry struct {
	ID            string    `json:"id"`
	Time          time.Time `json:"time"`
	AgentID       string    `json:"agent_id"`
	Source        string    `json:"source"`
	Container     string    `json:"container"`
	ContainerName string    `json:"container_name,omitempty"`
	Stack         string    `json:"stack,omitempty"`
	Stream        string    `json:"stream"`
	Level         string    `json:"level"`
	// Message is the message of a structured line (the "msg" of a JSON
	// line, the request line of an nginx access line); empty for plain
	// lines, whose message is Line.
	Message string `json:"message,omitempty"`
	// Line is the raw line as the agent read it.
	Line string `json:"line"`
	// Attrs are the fields parsed from an nginx line (status, method,
	// path, remote_addr, …).
	Attrs map[string]string `json:"attrs,omitempty"`
}

// LogsPage is a page of log lines, newest first. A page may hold fewer
// than the limit even when more lines match (a regex query stops after
// examining a bounded number of lines; a reply stops before
// LogsMaxReplyBytes): NextCursor is set whenever more may follow, and is
// empty only at the end of the range.
type LogsPage struct {
	Items      []LogEntry `json:"items"`
	NextCursor string     `json:"next_cursor,omitempty"`
	// Scanned is how many candidate lines the service examined (more
	// than len(Items) for a regex query).
	Scanned int `json:"scanned,omitempty"`
}

// NginxLogBatch is a batch of nginx log lines on AgentLogs(org, agent),
// beside AgentLogBatch: the same chaining of positions, and Source set to
// LogSourceNginx, which is how a reader tells the two apart (an
// AgentLogBatch has no source field). Lines on StreamStdout are the access
// log (combined format), lines on StreamStderr the error log, as the nginx
// image writes them; Container is the nginx container's id, or "host" for
// an nginx outside containers.
type NginxLogBatch struct {
	Source string `json:"source"`
	AgentLogBatch
}

// AgentMetricsRequest asks for an agent's roll-ups between From and To
// (RFC 3339; To defaults to now, From to one hour before To, the range is
// at most MetricsMaxRange). Container limits the containers to one (id or
// name); the host series is always included. StepSeconds is the bucket
// width, a multiple of 60; 0 lets the service choose the smallest width
// that keeps the reply bounded.
type AgentMetricsRequest struct {
	AgentID     string `json:"agent_id"`
	From        string `json:"from,omitempty"`
	To          string `json:"to,omitempty"`
	Container   string `json:"container,omitempty"`
	StepSeconds int    `json:"step_seconds,omitempty"`
}

// Metric series scopes.
const (
	MetricScopeHost      = "host"
	MetricScopeContainer = "container"
)

// AgentMetricsReply holds one series per scope (the host, each container),
// each with one point per bucket that had samples.
type AgentMetricsReply struct {
	AgentID     string         `json:"agent_id"`
	From        time.Time      `json:"from"`
	To          time.Time      `json:"to"`
	StepSeconds int            `json:"step_seconds"`
	Series      []MetricSeries `json:"series"`
}

// MetricSeries is the roll-up of the host (Scope MetricScopeHost, ID
// empty) or of one container.
type MetricSeries struct {
	Scope  string        `json:"scope"`
	ID     string        `json:"id,omitempty"`
	Name   string        `json:"name,omitempty"`
	Points []MetricPoint `json:"points"`
}

// MetricPoint is one bucket of a series. CPU is in percent (of one CPU for
// containers, of the whole host for the host); memory in bytes; network
// rates in bytes per second, from the counters' growth over the bucket
// (zero with a single sample).
type MetricPoint struct {
	Time      time.Time `json:"time"`
	Samples   int       `json:"samples"`
	CPUAvg    float64   `json:"cpu_avg"`
	CPUMax    float64   `json:"cpu_max"`
	MemAvg    uint64    `json:"mem_avg"`
	MemMax    uint64    `json:"mem_max"`
	MemLimit  uint64    `json:"mem_limit,omitempty"`
	NetRxRate float64   `json:"net_rx_rate"`
	NetTxRate float64   `json:"net_tx_rate"`
}

// LogsRetentionStatus is an org's log retention: lines and metrics older
// than Cutoff are deleted by the retention job, which runs every few
// minutes; LastRun and the deleted counts describe its last run that
// touched this org.
type LogsRetentionStatus struct {
	Plan           string     `json:"plan"`
	RetentionDays  int        `json:"retention_days"`
	Cutoff         time.Time  `json:"cutoff"`
	LastRun        *time.Time `json:"last_run,omitempty"`
	LinesDeleted   int64      `json:"lines_deleted"`
	SamplesDeleted int64      `json:"samples_deleted"`
}

// LogingestAggRetentionRun is the aggregate type of a retention run of one
// org; its id is the run's id.
const LogingestAggRetentionRun = "retention_run"

// RetentionApplied is emitted when the retention job deleted an org's log
// lines or metric samples older than the org's plan allows.
type RetentionApplied struct {
	Plan           string    `json:"plan"`
	RetentionDays  int       `json:"retention_days"`
	Cutoff         time.Time `json:"cutoff"`
	LinesDeleted   int64     `json:"lines_deleted"`
	SamplesDeleted int64     `json:"samples_deleted"`
}

// EventType implements Payload.
func (RetentionApplied) EventType() string { return "logingest.retention.applied" }

// EventVersion implements Payload.
func (RetentionApplied) EventVersion() int { return 1 }

func init() {
	Catalogue.MustRegister(RetentionApplied{}, "The retention job deleted an org's log lines and metric samples older than its plan keeps them.")
}
