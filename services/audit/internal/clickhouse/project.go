package clickhouse

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/infrapilot/infrapilot/events"
)

// Project inserts entries into the projection, skipping those already
// there, in one batch insert. Entries may belong to several orgs and come
// in any order; redelivered, repeated and partially inserted batches are
// all fine (see the package comment). It is the projection consumer's
// handler.
func (s *Store) Project(ctx context.Context, entries []events.AuditEntry) error {
	if len(entries) == 0 {
		return nil
	}
	byOrg := map[string][]events.AuditEntry{}
	for _, e := range entries {
		byOrg[e.OrgID] = append(byOrg[e.OrgID], e)
	}
	var fresh []events.AuditEntry
	for org, es := range byOrg {
		slices.SortFunc(es, func(a, b events.AuditEntry) int { return compareU64(a.Index, b.Index) })
		es = slices.CompactFunc(es, func(a, b events.AuditEntry) bool { return a.Index == b.Index })
		have, err := s.present(ctx, org, es[0].Index, es[len(es)-1].Index)
		if err != nil {
			return err
		}
		for _, e := range es {
			if !have[e.Index] {
				fresh = append(fresh, e)
			}
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.table)
	if err != nil {
		return fmt.Errorf("clickhouse: prepare insert: %w", err)
	}
	defer func() { _ = batch.Abort() }()
	for _, e := range fresh {
		t, err := time.Parse(time.RFC3339Nano, e.Time)
		if err != nil {
			t = time.Unix(0, 0) // kept, and still exact in time_raw
		}
		if err := batch.Append(
			e.OrgID, e.Index, t.UTC(), e.Time, e.PrevHash, e.Hash, e.EventID,
			string(e.Actor.Kind), e.Actor.ID, e.Actor.IP, e.Actor.UserAgent,
			e.Action, e.Resource.Type, e.Resource.ID, e.Outcome, string(e.Details),
		); err != nil {
			return fmt.Errorf("clickhouse: append entry %s/%d: %w", e.OrgID, e.Index, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("clickhouse: insert %d entries: %w", len(fresh), err)
	}
	return nil
}

// present returns the indexes of org in [lo, hi] already in the table.
func (s *Store) present(ctx context.Context, org string, lo, hi uint64) (map[uint64]bool, error) {
	rows, err := s.conn.Query(ctx, "SELECT DISTINCT index FROM "+s.table+" WHERE org_id = ? AND index >= ? AND index <= ?", org, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: read present indexes: %w", err)
	}
	defer rows.Close()
	have := map[uint64]bool{}
	for rows.Next() {
		var i uint64
		if err := rows.Scan(&i); err != nil {
			return nil, err
		}
		have[i] = true
	}
	return have, rows.Err()
}

func compareU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
