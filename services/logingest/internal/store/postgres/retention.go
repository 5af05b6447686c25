package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/infrapilot/infrapilot/services/logingest/internal/store"
)

// ExpiredOrgs implements store.Store. The distinct orgs of lines are
// found by a skip scan of the primary key (one index probe per org), each
// checked for a line older than before with another probe.
func (s *Store) ExpiredOrgs(ctx context.Context, before time.Time) ([]string, error) {
	rows, err := s.db.Query(ctx, `
		WITH RECURSIVE orgs(org_id) AS (
			(SELECT org_id FROM lines ORDER BY org_id LIMIT 1)
			UNION ALL
			SELECT (SELECT l.org_id FROM lines l WHERE l.org_id > orgs.org_id ORDER BY l.org_id LIMIT 1)
			FROM orgs WHERE orgs.org_id IS NOT NULL
		)
		SELECT org_id FROM orgs
		WHERE org_id IS NOT NULL AND EXISTS (SELECT 1 FROM lines l WHERE l.org_id = orgs.org_id AND l.ts < $1)
		UNION
		SELECT DISTINCT org_id FROM metrics_minute WHERE minute < $2
		ORDER BY 1`, before.UnixNano(), store.FloorMinute(before).Unix())
	if err != nil {
		return nil, fmt.Errorf("postgres: expired orgs: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var o string
		if err := rows.Scan(&o); err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// DeleteBefore implements store.Store, in chunks of deleteChunk rows.
func (s *Store) DeleteBefore(ctx context.Context, orgs []string, before time.Time) (map[string]store.Deleted, error) {
	out := map[string]store.Deleted{}
	if len(orgs) == 0 {
		return out, nil
	}
	for {
		n, err := s.deleteChunk(ctx, `WITH del AS (DELETE FROM lines WHERE ctid = ANY(ARRAY(
			SELECT ctid FROM lines WHERE org_id = ANY($1) AND ts < $2 LIMIT $3)) RETURNING org_id, 1 AS n)
			SELECT org_id, count(*), sum(n) FROM del GROUP BY org_id`, orgs, before.UnixNano(), out, false)
		if err != nil {
			return out, fmt.Errorf("postgres: delete lines: %w", err)
		}
		if n < deleteChunk {
			break
		}
	}
	for {
		n, err := s.deleteChunk(ctx, `WITH del AS (DELETE FROM metrics_minute WHERE ctid = ANY(ARRAY(
			SELECT ctid FROM metrics_minute WHERE org_id = ANY($1) AND minute < $2 LIMIT $3)) RETURNING org_id, samples AS n)
			SELECT org_id, count(*), sum(n) FROM del GROUP BY org_id`, orgs, store.FloorMinute(before).Unix(), out, true)
		if err != nil {
			return out, fmt.Errorf("postgres: delete samples: %w", err)
		}
		if n < deleteChunk {
			break
		}
	}
	return out, nil
}

// deleteChunk runs one chunked DELETE returning (org, rows, counted) and
// adds the counts to out; it returns the rows deleted.
func (s *Store) deleteChunk(ctx context.Context, sql string, orgs []string, cut int64, out map[string]store.Deleted, samples bool) (int64, error) {
	rows, err := s.db.Query(ctx, sql, orgs, cut, deleteChunk)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var total int64
	for rows.Next() {
		var (
			org    string
			n, cnt int64
		)
		if err := rows.Scan(&org, &n, &cnt); err != nil {
			return 0, err
		}
		total += n
		d := out[org]
		if samples {
			d.Samples += cnt
		} else {
			d.Lines += cnt
		}
		out[org] = d
	}
	return total, rows.Err()
}

// DropBefore implements store.Store. Postgres has no partitions to drop:
// it deletes the expired rows of every org.
func (s *Store) DropBefore(ctx context.Context, before time.Time) (store.Deleted, error) {
	orgs, err := s.ExpiredOrgs(ctx, before)
	if err != nil {
		return store.Deleted{}, err
	}
	d, err := s.DeleteBefore(ctx, orgs, before)
	return store.Total(d), err
}
