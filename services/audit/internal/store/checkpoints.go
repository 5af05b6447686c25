package store

import (
	"context"
	"fmt"
	"time"

	"github.com/infrapilot/infrapilot/events"
)

// CheckpointRow is one projected checkpoint and its AUDIT stream sequence.
type CheckpointRow struct {
	events.SignedCheckpoint
	StreamSeq uint64
}

// InsertCheckpoints stores checkpoints not stored yet (idempotent on the
// stream sequence).
func (s *Store) InsertCheckpoints(ctx context.Context, cps []CheckpointRow) error {
	if len(cps) == 0 {
		return nil
	}
	n := len(cps)
	org, hash, tm, key, sig := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	idx, seq := make([]int64, n), make([]int64, n)
	at := make([]time.Time, n)
	for i, c := range cps {
		org[i], idx[i], hash[i], tm[i], key[i], sig[i], seq[i] = c.OrgID, int64(c.Index), c.Hash, c.Time, c.KeyID, c.Signature, int64(c.StreamSeq)
		at[i] = entryTime(c.Time, time.Time{})
	}
	_, err := s.db.Exec(ctx, `
		INSERT INTO checkpoints (org_id, checkpoint_index, hash, time, at, key_id, signature, stream_seq)
		SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::timestamptz[], $6::text[], $7::text[], $8::bigint[])
		ON CONFLICT DO NOTHING`, org, idx, hash, tm, at, key, sig, seq)
	if err != nil {
		return fmt.Errorf("audit store: insert %d checkpoints: %w", n, err)
	}
	return nil
}

// Checkpoints returns up to limit of org's checkpoints, newest first,
// starting after cursor.
func (s *Store) Checkpoints(ctx context.Context, org, cursor string, limit int) (events.List[events.SignedCheckpoint], error) {
	before, err := DecodeCursor(cursor)
	if err != nil {
		return events.List[events.SignedCheckpoint]{}, err
	}
	if limit <= 0 {
		limit = events.AuditListDefaultLimit
	}
	limit = min(limit, events.AuditListMaxLimit)
	rows, err := s.db.Query(ctx, `SELECT org_id, checkpoint_index, hash, time, key_id, signature, stream_seq FROM checkpoints
		WHERE org_id = $1 AND ($2::bigint = 0 OR stream_seq < $2::bigint)
		ORDER BY stream_seq DESC LIMIT $3`, org, int64(before), limit+1)
	if err != nil {
		return events.List[events.SignedCheckpoint]{}, fmt.Errorf("audit store: checkpoints of %s: %w", org, err)
	}
	defer rows.Close()
	out := events.List[events.SignedCheckpoint]{Items: []events.SignedCheckpoint{}}
	var seqs []int64
	for rows.Next() {
		var c events.SignedCheckpoint
		var idx, seq int64
		if err := rows.Scan(&c.OrgID, &idx, &c.Hash, &c.Time, &c.KeyID, &c.Signature, &seq); err != nil {
			return events.List[events.SignedCheckpoint]{}, fmt.Errorf("audit store: scan checkpoint: %w", err)
		}
		c.Index = uint64(idx)
		out.Items = append(out.Items, c)
		seqs = append(seqs, seq)
	}
	if err := rows.Err(); err != nil {
		return events.List[events.SignedCheckpoint]{}, fmt.Errorf("audit store: checkpoints of %s: %w", org, err)
	}
	if len(out.Items) > limit {
		out.Items = out.Items[:limit]
		out.NextCursor = EncodeCursor(uint64(seqs[limit-1]))
	}
	return out, nil
}
