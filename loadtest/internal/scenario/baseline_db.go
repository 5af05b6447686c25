package scenario

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/infrapilot/infrapilot/loadtest/internal/harness"
	"github.com/jackc/pgx/v5"
)

// Raw database capacity: ClickHouse batch inserts and Postgres COPY and
// round trips into scratch objects that are dropped afterwards.

// batchRows is the size of one ClickHouse or COPY batch.
const batchRows = 100_000

func scratchName(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// baselineLine is the text column of the scratch rows: a typical log line.
const baselineLine = `2025-01-01T00:00:00Z INFO request completed method=GET path=/api/v1/agents status=200 duration_ms=3 bytes=512`

// measureClickHouse inserts 100k-row batches of six columns into a MergeTree
// table of a scratch database for d (at least one batch); each row counts
// when its batch is acknowledged, a batch's latency is its build and send.
func measureClickHouse(ctx context.Context, url string, d time.Duration, rec *harness.Recorder) error {
	opts, err := ch.ParseDSN(url)
	if err != nil {
		return fmt.Errorf("clickhouse URL: %w", err)
	}
	opts.Protocol = ch.Native
	conn, err := ch.Open(opts)
	if err != nil {
		return err
	}
	defer conn.Close()
	db := scratchName("loadtest_baseline_")
	if err := conn.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		return fmt.Errorf("clickhouse: create scratch database: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = conn.Exec(dctx, "DROP DATABASE IF EXISTS "+db)
	}()
	table := db + ".lines"
	if err := conn.Exec(ctx, `CREATE TABLE `+table+` (ts DateTime, org String, agent String, container String, seq UInt64, line String)
		ENGINE = MergeTree PARTITION BY toDate(ts) ORDER BY (org, agent, ts)`); err != nil {
		return fmt.Errorf("clickhouse: create scratch table: %w", err)
	}
	org, agent := "7f9c2d4e-0000-4000-8000-000000000001", "7f9c2d4e-0000-4000-8000-000000000002"
	var seq uint64
	end := time.Now().Add(d)
	for first := true; first || (time.Now().Before(end) && ctx.Err() == nil); first = false {
		start := time.Now()
		batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+table)
		if err != nil {
			rec.Error(err)
			return nil
		}
		ts := time.Now().UTC().Truncate(time.Second)
		for i := 0; i < batchRows; i++ {
			seq++
			if err := batch.Append(ts, org, agent, "web-1", seq, baselineLine); err != nil {
				rec.Error(err)
				return nil
			}
		}
		err = batch.Send()
		now := time.Now()
		rec.LatencyOnly(now.Sub(start))
		if err != nil {
			rec.Error(err)
			continue
		}
		rec.Items(now, batchRows)
	}
	return nil
}

// pgScratch creates a scratch schema and returns a function dropping it.
func pgScratch(ctx context.Context, conn *pgx.Conn) (string, func(), error) {
	schema := scratchName("loadtest_baseline_")
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return "", nil, fmt.Errorf("postgres: create scratch schema: %w", err)
	}
	return schema, func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = conn.Exec(dctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
	}, nil
}

// measurePGCopy copies 100k-row batches of six columns into a scratch
// table (logged, like InfraPilot's own tables) for d, at least one batch.
func measurePGCopy(ctx context.Context, url string, d time.Duration, rec *harness.Recorder) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	schema, drop, err := pgScratch(ctx, conn)
	if err != nil {
		return err
	}
	defer drop()
	if _, err := conn.Exec(ctx, `CREATE TABLE `+schema+`.lines (ts timestamptz, org uuid, agent uuid, container text, seq bigint, line text)`); err != nil {
		return fmt.Errorf("postgres: create scratch table: %w", err)
	}
	// UUIDs as 16 bytes: pgx would parse a string per value.
	org := [16]byte{0x7f, 0x9c, 0x2d, 0x4e, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, 1}
	agent := [16]byte{0x7f, 0x9c, 0x2d, 0x4e, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, 2}
	cols := []string{"ts", "org", "agent", "container", "seq", "line"}
	var seq int64
	end := time.Now().Add(d)
	for first := true; first || (time.Now().Before(end) && ctx.Err() == nil); first = false {
		start := time.Now()
		ts := time.Now().UTC()
		base := seq
		n, err := conn.CopyFrom(ctx, pgx.Identifier{schema, "lines"}, cols,
			pgx.CopyFromFunc(func() ([]any, error) {
				if seq-base >= batchRows {
					return nil, nil
				}
				seq++
				return []any{ts, org, agent, "web-1", seq, baselineLine}, nil
			}))
		now := time.Now()
		rec.LatencyOnly(now.Sub(start))
		if err != nil {
			rec.Error(err)
			continue
		}
		rec.Items(now, n)
	}
	return nil
}

// measurePGSelect runs `SELECT $1` round trips on one connection for d.
func measurePGSelect(ctx context.Context, url string, d time.Duration, rec *harness.Recorder) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	end := time.Now().Add(d)
	var out int64
	for i := int64(0); time.Now().Before(end) && ctx.Err() == nil; i++ {
		start := time.Now()
		err := conn.QueryRow(ctx, "SELECT $1::bigint", i).Scan(&out)
		now := time.Now()
		rec.Observe(now, now.Sub(start), err)
	}
	return nil
}

// measurePGInsert runs single-row INSERTs, each its own transaction (a
// commit, with the server's fsync setting), on one connection for d: the
// floor of any write that commits to Postgres.
func measurePGInsert(ctx context.Context, url string, d time.Duration, rec *harness.Recorder) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	schema, drop, err := pgScratch(ctx, conn)
	if err != nil {
		return err
	}
	defer drop()
	if _, err := conn.Exec(ctx, `CREATE TABLE `+schema+`.rows (id bigint PRIMARY KEY, ts timestamptz, line text)`); err != nil {
		return fmt.Errorf("postgres: create scratch table: %w", err)
	}
	q := `INSERT INTO ` + schema + `.rows (id, ts, line) VALUES ($1, $2, $3)`
	end := time.Now().Add(d)
	for i := int64(0); time.Now().Before(end) && ctx.Err() == nil; i++ {
		start := time.Now()
		_, err := conn.Exec(ctx, q, i, start, baselineLine)
		now := time.Now()
		rec.Observe(now, now.Sub(start), err)
	}
	return nil
}
