// Package clickhouse is the ClickHouse adapter of the log store, for
// scale.
//
// The schema keeps to the subset that works on ClickHouse 18.16 (Debian's
// package) as well as on current servers: ReplacingMergeTree, String,
// UInt32/UInt64, Float64, DateTime('UTC'), PARTITION BY / ORDER BY. No TTL,
// DateTime64, LowCardinality, CODEC or skipping indexes; the driver
// (clickhouse-go v2.26.0, pinned) speaks the native protocol only.
//
// Table logs is partitioned by day and ordered by (org_id, agent_id,
// source, ts, container, stream, seq): the sort key is the line's
// identity, so ReplacingMergeTree collapses duplicates at merge. Exactness
// does not wait for merges: InsertLines first reads which keys of the
// batch's range are stored already and inserts only the others (so a
// redelivered batch inserts nothing), and QueryLines drops adjacent equal
// keys (two replicas racing on the same batch can still both insert it)
// and reads on until the page is full. No query uses FINAL.
//
// Metric samples are stored one row per sample (table metric_samples,
// same engine, keyed by org, agent, scope, id and second) and rolled up
// per bucket at query time, deduplicated by an inner GROUP BY on the key:
// ClickHouse aggregates millions of rows in milliseconds and has no
// upsert to maintain stored roll-ups exactly.
package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/infrapilot/infrapilot/services/logingest/internal/store"
)

// Store is the ClickHouse log store.
type Store struct {
	conn    driver.Conn
	version string
}

var _ store.Store = (*Store)(nil)

// Open connects to the native-protocol URL
// (clickhouse://user:password@host:9000/database; the database must
// exist) and creates the tables if they do not exist.
func Open(ctx context.Context, url string) (*Store, error) {
	if !strings.HasPrefix(url, "clickhouse://") && !strings.HasPrefix(url, "tcp://") {
		return nil, errors.New("clickhouse: URL must use the native protocol (clickhouse:// or tcp://)")
	}
	opts, err := ch.ParseDSN(url)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: parse URL: %w", err)
	}
	opts.Protocol = ch.Native
	if opts.MaxOpenConns == 0 {
		opts.MaxOpenConns = 16
	}
	conn, err := ch.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: open: %w", err)
	}
	s := &Store{conn: conn}
	if err := s.schema(ctx); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return s, nil
}

// Version is the server's version.
func (s *Store) Version() string { return s.version }

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error { return s.conn.Ping(ctx) }

// Close implements store.Store.
func (s *Store) Close() error { return s.conn.Close() }

func (s *Store) schema(ctx context.Context) error {
	if err := s.conn.QueryRow(ctx, "SELECT version()").Scan(&s.version); err != nil {
		return fmt.Errorf("clickhouse: version: %w", err)
	}
	if !atLeast(s.version, 18, 16) {
		return fmt.Errorf("clickhouse: server %s is older than 18.16, the oldest the log schema supports", s.version)
	}
	// ts is Unix nanoseconds (DateTime64 does not exist on 18.16); time is
	// the same instant in seconds, for day partitions and pruning.
	for _, q := range []string{`CREATE TABLE IF NOT EXISTS logs (
		org_id String,
		agent_id String,
		source String,
		ts UInt64,
		container String,
		stream String,
		seq UInt32,
		time DateTime('UTC'),
		container_name String,
		stack String,
		level String,
		message String,
		raw String,
		attrs String
	) ENGINE = ReplacingMergeTree()
	PARTITION BY toYYYYMMDD(time)
	ORDER BY (org_id, agent_id, source, ts, container, stream, seq)`,
		`CREATE TABLE IF NOT EXISTS metric_samples (
		org_id String,
		agent_id String,
		scope String,
		id String,
		time DateTime('UTC'),
		name String,
		cpu Float64,
		mem UInt64,
		mem_limit UInt64,
		rx UInt64,
		tx UInt64
	) ENGINE = ReplacingMergeTree()
	PARTITION BY toYYYYMMDD(time)
	ORDER BY (org_id, agent_id, scope, id, time)`} {
		if err := s.conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("clickhouse: create table: %w", err)
		}
	}
	return nil
}

// limited returns ctx carrying max_execution_time from its deadline, so
// the server stops a query its caller no longer waits for.
func limited(ctx context.Context) context.Context {
	dl, ok := ctx.Deadline()
	if !ok {
		return ctx
	}
	secs := max(1, int(time.Until(dl).Seconds()+0.999))
	return ch.Context(ctx, ch.WithSettings(ch.Settings{"max_execution_time": secs}))
}

func atLeast(version string, major, minor int) bool {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}
