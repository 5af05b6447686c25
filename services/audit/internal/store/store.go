// Package store is the audit service's Postgres projection: the entries of
// every org's hash chain and the signed checkpoints, as published on stream
// AUDIT, plus each org's audit configuration.
//
// Only the projection consumer writes entries and checkpoints (Insert*),
// idempotently: a row that is already there is left alone (ON CONFLICT DO
// NOTHING on (org_id, index) and (org_id, event_id)). The table is
// append-only in the database itself; PruneThrough is the one way rows
// leave it. Everything else here reads: Range and Entries stream an org's
// entries in chain order (the exporters, reports and the verifier use
// them), List pages through them newest first for the API.
//
// Readers get entries exactly as stored: verification recomputes hashes
// from the same columns the API shows, so a row edited in the database is a
// row that fails verification.
package store

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pageSize is how many rows one query of a streaming read fetches. Reads
// page by index (keyset pagination), so none holds a connection or a
// snapshot for the whole of a long export.
const pageSize = 1000

// Store reads and writes the audit projection in the service's schema.
// It is safe for concurrent use.
type Store struct {
	db *pgxpool.Pool
}

// New returns a store on db, a pool whose search_path is the audit schema.
func New(db *pgxpool.Pool) *Store { return &Store{db: db} }

// DB returns the pool, for packages that keep tables of their own in the
// audit schema (exports, reports).
func (s *Store) DB() *pgxpool.Pool { return s.db }

// Row is one projected entry: the chain entry and the AUDIT stream
// sequence it is stored at.
type Row struct {
	events.AuditEntry
	StreamSeq uint64
	// Stored is the stream's timestamp of the entry; it stands in for
	// the entry's own time in filters when that does not parse.
	Stored time.Time
}

// entryColumns are the columns every read selects, in the order scanRow
// expects.
const entryColumns = `org_id, entry_index, prev_hash, hash, event_id, time, actor_kind, actor_id, actor_ip, actor_ua,
	action, resource_type, resource_id, outcome, details::text, stream_seq`

// scanRow reads one row of entryColumns.
func scanRow(rows pgx.Rows) (Row, error) {
	var (
		r       Row
		kind    string
		details *string
		idx     int64
		seq     int64
	)
	e := &r.AuditEntry
	if err := rows.Scan(&e.OrgID, &idx, &e.PrevHash, &e.Hash, &e.EventID, &e.Time, &kind, &e.Actor.ID,
		&e.Actor.IP, &e.Actor.UserAgent, &e.Action, &e.Resource.Type, &e.Resource.ID, &e.Outcome, &details, &seq); err != nil {
		return Row{}, fmt.Errorf("audit store: scan entry: %w", err)
	}
	e.Index, r.StreamSeq = uint64(idx), uint64(seq)
	e.Actor.Kind = events.ActorKind(kind)
	if details != nil {
		e.Details = []byte(*details)
	}
	return r, nil
}

// InsertEntries stores rows that are not stored yet and returns how many
// it inserted. A row whose (org, index) or (org, event id) is already
// present is skipped: the projection consumer may see an entry twice.
func (s *Store) InsertEntries(ctx context.Context, rows []Row) (int64, error) {
	if len(rows) == 0 {
		return 0, nil
	}
	n := len(rows)
	var (
		org, prev, hash, evID, tm, kind, actor, ip, ua = make([]string, n), make([]string, n), make([]string, n),
			make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		action, rtype, rid, outcome = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		details                     = make([]*string, n)
		idx, seq                    = make([]int64, n), make([]int64, n)
		at                          = make([]time.Time, n)
	)
	for i, r := range rows {
		e := r.AuditEntry
		org[i], idx[i], prev[i], hash[i], evID[i], tm[i] = e.OrgID, int64(e.Index), e.PrevHash, e.Hash, e.EventID, e.Time
		kind[i], actor[i], ip[i], ua[i] = string(e.Actor.Kind), e.Actor.ID, e.Actor.IP, e.Actor.UserAgent
		action[i], rtype[i], rid[i], outcome[i] = e.Action, e.Resource.Type, e.Resource.ID, e.Outcome
		if len(e.Details) > 0 {
			d := string(e.Details)
			details[i] = &d
		}
		seq[i] = int64(r.StreamSeq)
		at[i] = entryTime(e.Time, r.Stored)
	}
	tag, err := s.db.Exec(ctx, `
		INSERT INTO entries (org_id, entry_index, prev_hash, hash, event_id, time, at, actor_kind, actor_id, actor_ip,
			actor_ua, action, resource_type, resource_id, outcome, details, stream_seq)
		SELECT o, i, p, h, e, t, a, k, ac, ip, ua, act, rt, ri, oc, d::json, sq
		FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[],
			$8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[],
			$16::text[], $17::bigint[])
			AS x(o, i, p, h, e, t, a, k, ac, ip, ua, act, rt, ri, oc, d, sq)
		ON CONFLICT DO NOTHING`,
		org, idx, prev, hash, evID, tm, at, kind, actor, ip, ua, action, rtype, rid, outcome, details, seq)
	if err != nil {
		return 0, fmt.Errorf("audit store: insert %d entries: %w", n, err)
	}
	return tag.RowsAffected(), nil
}

// entryTime parses an entry's time for filtering; fallback is used when it
// does not parse (the chain keeps whatever string was hashed).
func entryTime(s string, fallback time.Time) time.Time {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC()
	}
	if fallback.IsZero() {
		return time.Unix(0, 0).UTC()
	}
	return fallback.UTC()
}

// HasEvent reports whether the projection holds an entry for the source
// event id in org's chain. The chain writer asks it before appending an
// event that may have been chained already, beyond the stream's duplicate
// window.
func (s *Store) HasEvent(ctx context.Context, org, eventID string) (bool, error) {
	var ok bool
	err := s.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM entries WHERE org_id = $1 AND event_id = $2)`, org, eventID).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("audit store: look up event %s: %w", eventID, err)
	}
	return ok, nil
}

// Bounds returns the lowest and highest index of org's projected entries;
// ok is false when there are none.
func (s *Store) Bounds(ctx context.Context, org string) (first, last uint64, ok bool, err error) {
	var lo, hi *int64
	if err := s.db.QueryRow(ctx, `SELECT min(entry_index), max(entry_index) FROM entries WHERE org_id = $1`, org).Scan(&lo, &hi); err != nil {
		return 0, 0, false, fmt.Errorf("audit store: bounds of %s: %w", org, err)
	}
	if lo == nil || hi == nil {
		return 0, 0, false, nil
	}
	return uint64(*lo), uint64(*hi), true, nil
}

// IndexBounds returns the lowest and highest index of org's entries whose
// time lies in [from, to); a zero time leaves that side open. ok is false
// when no entry matches.
func (s *Store) IndexBounds(ctx context.Context, org string, from, to time.Time) (first, last uint64, ok bool, err error) {
	var lo, hi *int64
	if err := s.db.QueryRow(ctx, `SELECT min(entry_index), max(entry_index) FROM entries
		WHERE org_id = $1 AND ($2::timestamptz IS NULL OR at >= $2) AND ($3::timestamptz IS NULL OR at < $3)`,
		org, nullTime(from), nullTime(to)).Scan(&lo, &hi); err != nil {
		return 0, 0, false, fmt.Errorf("audit store: index bounds of %s: %w", org, err)
	}
	if lo == nil || hi == nil {
		return 0, 0, false, nil
	}
	return uint64(*lo), uint64(*hi), true, nil
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// Range yields org's projected entries with from <= index <= to in chain
// order; to == 0 means no upper bound. Indices missing from the projection
// are simply absent: the caller sees the gap. The sequence stops at the
// first error it yields.
func (s *Store) Range(ctx context.Context, org string, from, to uint64) iter.Seq2[Row, error] {
	return s.scan(ctx, org, from, to, time.Time{}, time.Time{})
}

// Entries yields org's entries whose time lies in [from, to), in chain
// order (a zero time leaves that side open). It implements the exporters'
// Source.
func (s *Store) Entries(ctx context.Context, org string, from, to time.Time) iter.Seq2[events.AuditEntry, error] {
	return func(yield func(events.AuditEntry, error) bool) {
		lo, hi, ok, err := s.IndexBounds(ctx, org, from, to)
		if err != nil {
			yield(events.AuditEntry{}, err)
			return
		}
		if !ok {
			return
		}
		for r, err := range s.scan(ctx, org, lo, hi, from, to) {
			if !yield(r.AuditEntry, err) || err != nil {
				return
			}
		}
	}
}

// scan pages through org's entries by index, optionally filtered by time.
func (s *Store) scan(ctx context.Context, org string, from, to uint64, tFrom, tTo time.Time) iter.Seq2[Row, error] {
	return func(yield func(Row, error) bool) {
		next := max(from, 1)
		upper := int64(-1)
		if to > 0 {
			upper = int64(to)
		}
		for {
			page, err := s.page(ctx, org, next, upper, tFrom, tTo)
			if err != nil {
				yield(Row{}, err)
				return
			}
			for _, r := range page {
				if !yield(r, nil) {
					return
				}
			}
			if len(page) < pageSize {
				return
			}
			next = page[len(page)-1].Index + 1
		}
	}
}

func (s *Store) page(ctx context.Context, org string, from uint64, upper int64, tFrom, tTo time.Time) ([]Row, error) {
	rows, err := s.db.Query(ctx, `SELECT `+entryColumns+` FROM entries
		WHERE org_id = $1 AND entry_index >= $2 AND ($3::bigint < 0 OR entry_index <= $3::bigint)
			AND ($4::timestamptz IS NULL OR at >= $4) AND ($5::timestamptz IS NULL OR at < $5)
		ORDER BY entry_index LIMIT $6`, org, int64(from), upper, nullTime(tFrom), nullTime(tTo), pageSize)
	if err != nil {
		return nil, fmt.Errorf("audit store: read %s from %d: %w", org, from, err)
	}
	defer rows.Close()
	out := make([]Row, 0, 64)
	for rows.Next() {
		r, err := scanRow(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit store: read %s from %d: %w", org, from, err)
	}
	return out, nil
}

// Entry returns the projected entry of org at index, or ok false.
func (s *Store) Entry(ctx context.Context, org string, index uint64) (Row, bool, error) {
	for r, err := range s.Range(ctx, org, index, index) {
		if err != nil {
			return Row{}, false, err
		}
		return r, true, nil
	}
	return Row{}, false, nil
}

// Orgs lists every org with projected entries, for jobs that walk all
// chains (retention).
func (s *Store) Orgs(ctx context.Context) ([]string, error) {
	rows, err := s.db.Query(ctx, `SELECT DISTINCT org_id FROM entries ORDER BY org_id`)
	if err != nil {
		return nil, fmt.Errorf("audit store: orgs: %w", err)
	}
	orgs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("audit store: orgs: %w", err)
	}
	return orgs, nil
}

// ErrNotRetentionRole is returned by PruneThrough when the database refuses
// the retention role (it does not exist, or the service user may not
// assume it).
var ErrNotRetentionRole = errors.New("audit store: cannot act as role audit_retention")

// PruneThrough deletes org's projected entries and checkpoints with an
// index up to through, as the retention role, and returns how many entries
// it deleted. The caller records the prune on the stream first
// (events.AuditRetentionApplied), so that verification knows where the
// projection now starts. The stream keeps every entry.
func (s *Store) PruneThrough(ctx context.Context, org string, through uint64) (int64, error) {
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("audit store: prune %s: %w", org, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `SET LOCAL ROLE audit_retention`); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrNotRetentionRole, err)
	}
	tag, err := tx.Exec(ctx, `DELETE FROM entries WHERE org_id = $1 AND entry_index <= $2`, org, int64(through))
	if err != nil {
		return 0, fmt.Errorf("audit store: prune %s through %d: %w", org, through, err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM checkpoints WHERE org_id = $1 AND checkpoint_index <= $2`, org, int64(through)); err != nil {
		return 0, fmt.Errorf("audit store: prune checkpoints of %s through %d: %w", org, through, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("audit store: prune %s: %w", org, err)
	}
	return tag.RowsAffected(), nil
}

// CanPrune reports (nil) whether this session may act as the retention
// role, without deleting anything: the retention job checks it before it
// records a pruning on the stream.
func (s *Store) CanPrune(ctx context.Context) error {
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("audit store: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `SET LOCAL ROLE audit_retention`); err != nil {
		return fmt.Errorf("%w: %w", ErrNotRetentionRole, err)
	}
	return nil
}
