// Package clickhouse projects the audit chains into ClickHouse for
// analytics, and reads them back (counts for reports, entries as a
// Source).
//
// The projection keeps to the schema subset that works on ClickHouse 18.16
// (Debian's package) as well as on current servers: MergeTree family,
// String, UInt64, DateTime('UTC'), PARTITION BY / ORDER BY. No TTL, Map,
// DateTime64, Bool, JSON, CODEC, LowCardinality or skipping indexes; the
// driver (clickhouse-go v2.26.0, pinned) speaks the native protocol only.
//
// Idempotency on (org_id, index) has two layers. Project inserts only the
// indexes of a batch that are not in the table yet (one primary-key range
// query per org and batch, so a redelivered or partially inserted batch
// fills exactly the gaps). Two projectors racing on the same entries can
// still both insert them; the table is a ReplacingMergeTree ordered by
// (org_id, index), so such duplicates collapse at the next merge, and every
// query here counts uniqExact(index) or reads LIMIT 1 BY index, so results
// are exact before the merge too.
package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/infrapilot/infrapilot/events"
)

// DefaultTable is the table the projection writes.
const DefaultTable = "audit_entries"

// Config configures a Store.
type Config struct {
	// URL is the native-protocol DSN, for example
	// clickhouse://user:password@127.0.0.1:9000/database. The database
	// must exist.
	URL string
	// Table is the projection's table (DefaultTable when empty).
	Table string
}

// Store is the ClickHouse projection of the audit chains.
type Store struct {
	conn    driver.Conn
	table   string
	version string
}

// Open connects to ClickHouse. It does not create the schema: call Schema.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Table == "" {
		cfg.Table = DefaultTable
	}
	if !validIdent(cfg.Table) {
		return nil, fmt.Errorf("clickhouse: invalid table name %q", cfg.Table)
	}
	if !strings.HasPrefix(cfg.URL, "clickhouse://") && !strings.HasPrefix(cfg.URL, "tcp://") {
		return nil, errors.New("clickhouse: URL must use the native protocol (clickhouse:// or tcp://)")
	}
	opts, err := ch.ParseDSN(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: parse URL: %w", err)
	}
	opts.Protocol = ch.Native
	conn, err := ch.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: open: %w", err)
	}
	if err := conn.Ping(ctx); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("clickhouse: ping: %w", err)
	}
	return &Store{conn: conn, table: cfg.Table}, nil
}

// Close closes the connections.
func (s *Store) Close() error { return s.conn.Close() }

// Ping checks the server answers (for readiness).
func (s *Store) Ping(ctx context.Context) error { return s.conn.Ping(ctx) }

// Version is the server version Schema found ("" before Schema).
func (s *Store) Version() string { return s.version }

// minVersion is the oldest server the schema is known to work on.
var minVersion = [2]int{18, 16}

// Schema checks the server version and creates the projection table if
// it does not exist. It is idempotent and safe to run from every replica.
func (s *Store) Schema(ctx context.Context) error {
	if err := s.conn.QueryRow(ctx, "SELECT version()").Scan(&s.version); err != nil {
		return fmt.Errorf("clickhouse: version: %w", err)
	}
	if !atLeast(s.version, minVersion) {
		return fmt.Errorf("clickhouse: server %s is older than %d.%d, the oldest the audit schema supports", s.version, minVersion[0], minVersion[1])
	}
	// Month partitions: audit volume is small next to logs, and a retention
	// change deletes by org (ALTER … DELETE), not by dropping partitions
	// shared by every org. time is seconds (DateTime64 does not exist on
	// 18.16); time_raw keeps the exact hashed string so that entries read
	// back verify.
	q := `CREATE TABLE IF NOT EXISTS ` + s.table + ` (
		org_id String,
		index UInt64,
		time DateTime('UTC'),
		time_raw String,
		prev_hash String,
		hash String,
		event_id String,
		actor_kind String,
		actor_id String,
		actor_ip String,
		actor_user_agent String,
		action String,
		resource_type String,
		resource_id String,
		outcome String,
		details String
	) ENGINE = ReplacingMergeTree()
	PARTITION BY toYYYYMM(time)
	ORDER BY (org_id, index)`
	if err := s.conn.Exec(ctx, q); err != nil {
		return fmt.Errorf("clickhouse: create %s: %w", s.table, err)
	}
	return nil
}

// atLeast reports whether version "major.minor…" is at least min.
func atLeast(version string, min [2]int) bool {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return major > min[0] || major == min[0] && minor >= min[1]
}

func validIdent(s string) bool {
	return events.ValidToken(s) && !strings.Contains(s, "-") && (s[0] < '0' || s[0] > '9')
}
