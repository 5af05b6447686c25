package exports

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/audit/internal/export"
	"github.com/infrapilot/infrapilot/services/audit/internal/store"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// jobColumns are the columns every read selects, in the order scanJob
// expects.
const jobColumns = `export_id, purpose, format, range_from, range_to, from_index, to_index, status, attempts,
	rows_written, bytes, sha256, first_index, last_index, bucket, object, error, requested_by,
	created_at, started_at, finished_at, stream_seq, created_seq`

// row is a job as the read model holds it.
type row struct {
	events.AuditExport
	seq, createdSeq uint64
}

func scanJob(r pgx.Row, org string, ttl time.Duration) (row, error) {
	var (
		j                 events.AuditExport
		fromIdx, toIdx    int64
		rows, first, last int64
		created           time.Time
		started, finished *time.Time
		seq, createdSeq   int64
	)
	if err := r.Scan(&j.ID, &j.Purpose, &j.Format, &j.From, &j.To, &fromIdx, &toIdx, &j.Status, &j.Attempts,
		&rows, &j.Bytes, &j.SHA256, &first, &last, &j.Bucket, &j.Object, &j.Error, &j.RequestedBy,
		&created, &started, &finished, &seq, &createdSeq); err != nil {
		return row{}, err
	}
	j.FromIndex, j.ToIndex, j.Rows, j.FirstIndex, j.LastIndex = uint64(fromIdx), uint64(toIdx), uint64(rows), uint64(first), uint64(last)
	j.CreatedAt = stamp(created)
	j.FileName, j.ContentType = fileName(org, j.ID, export.Format(j.Format)), export.Format(j.Format).ContentType()
	if started != nil {
		j.StartedAt = stamp(*started)
	}
	if finished != nil {
		j.FinishedAt = stamp(*finished)
		if j.Status == events.AuditExportStatusDone && j.Purpose == events.AuditExportPurposeExport {
			j.ExpiresAt = stamp(finished.Add(ttl))
		}
	}
	return row{AuditExport: j, seq: uint64(seq), createdSeq: uint64(createdSeq)}, nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func parseStamp(s string) *time.Time {
	if s == "" {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil
	}
	return &t
}

// put writes a job's fold as of stream sequence seq; an older fold than
// the one stored changes nothing, so redeliveries converge.
func put(ctx context.Context, db *pgxpool.Pool, org string, j events.AuditExport, seq, createdSeq uint64) error {
	created := parseStamp(j.CreatedAt)
	if created == nil {
		return fmt.Errorf("export %s: no creation time", j.ID)
	}
	_, err := db.Exec(ctx, `INSERT INTO exports (org_id, export_id, purpose, format, range_from, range_to, from_index, to_index,
			status, attempts, rows_written, bytes, sha256, first_index, last_index, bucket, object, error, requested_by,
			created_at, started_at, finished_at, created_seq, stream_seq)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)
		ON CONFLICT (org_id, export_id) DO UPDATE SET status = excluded.status, attempts = excluded.attempts,
			rows_written = excluded.rows_written, bytes = excluded.bytes, sha256 = excluded.sha256,
			first_index = excluded.first_index, last_index = excluded.last_index, bucket = excluded.bucket,
			object = excluded.object, error = excluded.error, started_at = excluded.started_at,
			finished_at = excluded.finished_at, stream_seq = excluded.stream_seq
		WHERE exports.stream_seq < excluded.stream_seq`,
		org, j.ID, j.Purpose, j.Format, j.From, j.To, int64(j.FromIndex), int64(j.ToIndex),
		j.Status, j.Attempts, int64(j.Rows), j.Bytes, j.SHA256, int64(j.FirstIndex), int64(j.LastIndex), j.Bucket, j.Object,
		j.Error, j.RequestedBy, *created, parseStamp(j.StartedAt), parseStamp(j.FinishedAt), int64(createdSeq), int64(seq))
	if err != nil {
		return fmt.Errorf("audit exports: project %s/%s: %w", org, j.ID, err)
	}
	return nil
}

// get reads org's job id; ok is false when there is none (or it is
// another org's).
func get(ctx context.Context, db *pgxpool.Pool, org, id string, ttl time.Duration) (row, bool, error) {
	r, err := scanJob(db.QueryRow(ctx, `SELECT `+jobColumns+` FROM exports WHERE org_id = $1 AND export_id = $2`, org, id), org, ttl)
	if errors.Is(err, pgx.ErrNoRows) {
		return row{}, false, nil
	}
	if err != nil {
		return row{}, false, fmt.Errorf("audit exports: get %s/%s: %w", org, id, err)
	}
	return r, true, nil
}

// list pages through org's jobs, newest first.
func list(ctx context.Context, db *pgxpool.Pool, org, cursor string, limit int, ttl time.Duration) (events.List[events.AuditExport], error) {
	before, err := store.DecodeCursor(cursor)
	if err != nil {
		return events.List[events.AuditExport]{}, err
	}
	if limit <= 0 {
		limit = events.AuditListDefaultLimit
	}
	limit = min(limit, events.AuditListMaxLimit)
	rows, err := db.Query(ctx, `SELECT `+jobColumns+` FROM exports
		WHERE org_id = $1 AND ($2::bigint = 0 OR created_seq < $2) ORDER BY created_seq DESC LIMIT $3`,
		org, int64(before), limit+1)
	if err != nil {
		return events.List[events.AuditExport]{}, fmt.Errorf("audit exports: list %s: %w", org, err)
	}
	defer rows.Close()
	out := events.List[events.AuditExport]{Items: []events.AuditExport{}}
	var last uint64
	for rows.Next() {
		r, err := scanJob(rows, org, ttl)
		if err != nil {
			return events.List[events.AuditExport]{}, fmt.Errorf("audit exports: list %s: %w", org, err)
		}
		if len(out.Items) == limit {
			out.NextCursor = store.EncodeCursor(last)
			break
		}
		out.Items = append(out.Items, r.AuditExport)
		last = r.createdSeq
	}
	return out, rows.Err()
}

// active counts org's user exports that are queued or running.
func active(ctx context.Context, db *pgxpool.Pool, org string) (int, error) {
	var n int
	err := db.QueryRow(ctx, `SELECT count(*) FROM exports WHERE org_id = $1 AND purpose = $2 AND status IN ($3, $4)`,
		org, events.AuditExportPurposeExport, events.AuditExportStatusQueued, events.AuditExportStatusRunning).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("audit exports: count active of %s: %w", org, err)
	}
	return n, nil
}
