package clickhouse

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"time"

	"github.com/infrapilot/infrapilot/events"
)

// Entries yields org's entries whose time lies in [from, to), in index
// order, streamed from the server block by block. Together with the hashes
// and the exact time string it stores, the projection returns entries that
// verify by the chain rule, so it can serve exports and reports (it
// implements export.Source and report.Source).
func (s *Store) Entries(ctx context.Context, org string, from, to time.Time) iter.Seq2[events.AuditEntry, error] {
	return func(yield func(events.AuditEntry, error) bool) {
		// DateTime has second precision: select whole seconds around the
		// range on the server, then cut exactly on the nanosecond time.
		rows, err := s.conn.Query(ctx, `SELECT index, time_raw, prev_hash, hash, event_id, actor_kind, actor_id,
			actor_ip, actor_user_agent, action, resource_type, resource_id, outcome, details
			FROM `+s.table+` WHERE org_id = ? AND time >= toDateTime(?) AND time <= toDateTime(?)
			ORDER BY index LIMIT 1 BY index`, org, from.Unix(), to.Unix())
		if err != nil {
			yield(events.AuditEntry{}, fmt.Errorf("clickhouse: read entries: %w", err))
			return
		}
		defer rows.Close()
		for rows.Next() {
			e := events.AuditEntry{OrgID: org}
			var kind, details string
			if err := rows.Scan(&e.Index, &e.Time, &e.PrevHash, &e.Hash, &e.EventID, &kind, &e.Actor.ID,
				&e.Actor.IP, &e.Actor.UserAgent, &e.Action, &e.Resource.Type, &e.Resource.ID, &e.Outcome, &details); err != nil {
				yield(events.AuditEntry{}, fmt.Errorf("clickhouse: scan entry: %w", err))
				return
			}
			e.Actor.Kind = events.ActorKind(kind)
			if details != "" {
				e.Details = json.RawMessage(details)
			}
			t, err := time.Parse(time.RFC3339Nano, e.Time)
			if err != nil || t.Before(from) || !t.Before(to) {
				continue
			}
			if !yield(e, nil) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(events.AuditEntry{}, fmt.Errorf("clickhouse: read entries: %w", err))
		}
	}
}

// ActionDayCount is the number of entries of one action on one day (UTC).
type ActionDayCount struct {
	Day    time.Time `json:"day"`
	Action string    `json:"action"`
	Count  uint64    `json:"count"`
}

// CountsByActionDay counts org's entries in [from, to) by day and action,
// ordered by day then action. The range is applied to whole seconds.
func (s *Store) CountsByActionDay(ctx context.Context, org string, from, to time.Time) ([]ActionDayCount, error) {
	rows, err := s.conn.Query(ctx, `SELECT toDate(time) AS day, action, uniqExact(index) AS n
		FROM `+s.table+` WHERE org_id = ? AND time >= toDateTime(?) AND time < toDateTime(?)
		GROUP BY day, action ORDER BY day, action`, org, from.Unix(), to.Unix())
	if err != nil {
		return nil, fmt.Errorf("clickhouse: counts by action: %w", err)
	}
	defer rows.Close()
	out := []ActionDayCount{}
	for rows.Next() {
		var c ActionDayCount
		if err := rows.Scan(&c.Day, &c.Action, &c.Count); err != nil {
			return nil, err
		}
		c.Day = time.Date(c.Day.Year(), c.Day.Month(), c.Day.Day(), 0, 0, 0, 0, time.UTC)
		out = append(out, c)
	}
	return out, rows.Err()
}

// ActorCount is the number of entries (and of failed or denied ones) of
// one actor.
type ActorCount struct {
	ActorKind string `json:"actor_kind"`
	ActorID   string `json:"actor_id"`
	Count     uint64 `json:"count"`
	Failures  uint64 `json:"failures"`
}

// TopActors returns the limit most active actors of org in [from, to),
// with how many of their entries did not succeed.
func (s *Store) TopActors(ctx context.Context, org string, from, to time.Time, limit int) ([]ActorCount, error) {
	if limit <= 0 {
		limit = 10
	}
	rows, err := s.conn.Query(ctx, `SELECT actor_kind, actor_id, uniqExact(index) AS n,
			uniqExactIf(index, outcome != 'success') AS failures
		FROM `+s.table+` WHERE org_id = ? AND time >= toDateTime(?) AND time < toDateTime(?)
		GROUP BY actor_kind, actor_id ORDER BY n DESC, actor_kind, actor_id LIMIT ?`, org, from.Unix(), to.Unix(), limit)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: top actors: %w", err)
	}
	defer rows.Close()
	out := []ActorCount{}
	for rows.Next() {
		var c ActorCount
		if err := rows.Scan(&c.ActorKind, &c.ActorID, &c.Count, &c.Failures); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// MaxIndex is the highest index of org in the projection (0 when none): how
// far the projection has caught up with the chain.
func (s *Store) MaxIndex(ctx context.Context, org string) (uint64, error) {
	var n uint64
	if err := s.conn.QueryRow(ctx, "SELECT max(index) FROM "+s.table+" WHERE org_id = ?", org).Scan(&n); err != nil {
		return 0, fmt.Errorf("clickhouse: max index: %w", err)
	}
	return n, nil
}

// Prune deletes org's entries older than before (retention). It starts an
// asynchronous mutation (ALTER TABLE … DELETE, which 18.16 has; TTL it has
// not); the stream, the source of truth, is untouched.
func (s *Store) Prune(ctx context.Context, org string, before time.Time) error {
	if err := s.conn.Exec(ctx, "ALTER TABLE "+s.table+" DELETE WHERE org_id = ? AND time < toDateTime(?)", org, before.Unix()); err != nil {
		return fmt.Errorf("clickhouse: prune %s: %w", org, err)
	}
	return nil
}
