package clickhouse

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/infrapilot/infrapilot/services/logingest/internal/store"
)

// mutationPoll is how often DeleteBefore checks that its mutations are
// done.
const mutationPoll = 50 * time.Millisecond

// ExpiredOrgs implements store.Store; it reads only the partitions older
// than before.
func (s *Store) ExpiredOrgs(ctx context.Context, before time.Time) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`SELECT DISTINCT org_id FROM logs WHERE time <= toDateTime(?) AND ts < ?`, []any{before.Unix(), uint64(max(0, before.UnixNano()))}},
		{`SELECT DISTINCT org_id FROM metric_samples WHERE time < toDateTime(?)`, []any{store.FloorMinute(before).Unix()}},
	} {
		rows, err := s.conn.Query(ctx, q.sql, q.args...)
		if err != nil {
			return nil, fmt.Errorf("clickhouse: expired orgs: %w", err)
		}
		for rows.Next() {
			var o string
			if err := rows.Scan(&o); err != nil {
				rows.Close()
				return nil, err
			}
			if !seen[o] {
				seen[o] = true
				out = append(out, o)
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, err
		}
	}
	sort.Strings(out)
	return out, nil
}

// DeleteBefore implements store.Store with ALTER TABLE … DELETE
// mutations, one per table for all the orgs (asynchronous in ClickHouse:
// it waits until they are done, or ctx ends). It counts the rows first and
// issues no mutation when there is nothing to delete: a mutation rewrites
// every part it touches.
func (s *Store) DeleteBefore(ctx context.Context, orgs []string, before time.Time) (map[string]store.Deleted, error) {
	out := map[string]store.Deleted{}
	if len(orgs) == 0 {
		return out, nil
	}
	ns := uint64(max(0, before.UnixNano()))
	lines, err := s.countByOrg(ctx, `SELECT org_id, count() FROM logs WHERE org_id IN (?) AND time <= toDateTime(?) AND ts < ? GROUP BY org_id`,
		inList(orgs), before.Unix(), ns)
	if err != nil {
		return out, fmt.Errorf("clickhouse: count expired lines: %w", err)
	}
	cut := store.FloorMinute(before).Unix()
	samples, err := s.countByOrg(ctx, `SELECT org_id, count() FROM (SELECT DISTINCT org_id, agent_id, scope, id, time FROM metric_samples
		WHERE org_id IN (?) AND time < toDateTime(?)) GROUP BY org_id`, inList(orgs), cut)
	if err != nil {
		return out, fmt.Errorf("clickhouse: count expired samples: %w", err)
	}
	if len(lines) > 0 {
		if err := s.conn.Exec(ctx, `ALTER TABLE logs DELETE WHERE org_id IN (?) AND ts < ?`, inList(keys(lines)), ns); err != nil {
			return out, fmt.Errorf("clickhouse: delete lines: %w", err)
		}
	}
	if len(samples) > 0 {
		if err := s.conn.Exec(ctx, `ALTER TABLE metric_samples DELETE WHERE org_id IN (?) AND time < toDateTime(?)`, inList(keys(samples)), cut); err != nil {
			return out, fmt.Errorf("clickhouse: delete samples: %w", err)
		}
	}
	for o, n := range lines {
		d := out[o]
		d.Lines = n
		out[o] = d
	}
	for o, n := range samples {
		d := out[o]
		d.Samples = n
		out[o] = d
	}
	if len(out) > 0 {
		return out, s.waitMutations(ctx)
	}
	return out, nil
}

func (s *Store) countByOrg(ctx context.Context, sql string, args ...any) (map[string]int64, error) {
	rows, err := s.conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var (
			o string
			n uint64
		)
		if err := rows.Scan(&o, &n); err != nil {
			return nil, err
		}
		if n > 0 {
			out[o] = int64(n)
		}
	}
	return out, rows.Err()
}

func keys(m map[string]int64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// waitMutations waits until no mutation of the two tables is pending.
func (s *Store) waitMutations(ctx context.Context) error {
	for {
		var pending uint64
		if err := s.conn.QueryRow(ctx, `SELECT count() FROM system.mutations
			WHERE database = currentDatabase() AND table IN ('logs', 'metric_samples') AND is_done = 0`).Scan(&pending); err != nil {
			return fmt.Errorf("clickhouse: mutations: %w", err)
		}
		if pending == 0 {
			return nil
		}
		t := time.NewTimer(mutationPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// DropBefore implements store.Store by dropping the day partitions that
// end before before's day: whole days only, which is all the retention
// job asks for.
func (s *Store) DropBefore(ctx context.Context, before time.Time) (store.Deleted, error) {
	var d store.Deleted
	day := before.UTC().Format("20060102")
	rows, err := s.conn.Query(ctx, `SELECT table, partition, sum(rows) FROM system.parts
		WHERE database = currentDatabase() AND table IN ('logs', 'metric_samples') AND active AND partition < ?
		GROUP BY table, partition ORDER BY table, partition`, day)
	if err != nil {
		return d, fmt.Errorf("clickhouse: list partitions: %w", err)
	}
	type part struct {
		table, partition string
		rows             uint64
	}
	var parts []part
	for rows.Next() {
		var p part
		if err := rows.Scan(&p.table, &p.partition, &p.rows); err != nil {
			rows.Close()
			return d, err
		}
		parts = append(parts, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return d, err
	}
	for _, p := range parts {
		if !digits(p.partition) {
			continue // not one of our day partitions
		}
		if err := s.conn.Exec(ctx, "ALTER TABLE "+p.table+" DROP PARTITION "+p.partition); err != nil {
			return d, fmt.Errorf("clickhouse: drop partition %s of %s: %w", p.partition, p.table, err)
		}
		if p.table == "logs" {
			d.Lines += int64(p.rows)
		} else {
			d.Samples += int64(p.rows)
		}
	}
	return d, nil
}

func digits(s string) bool {
	if len(s) != 8 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
