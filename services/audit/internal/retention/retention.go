// Package retention is the audit service's retention job. For every org
// whose configuration keeps entries for a limited number of days, it
// prunes the oldest entries from the Postgres (and ClickHouse) projections
// — never from stream AUDIT, the chain itself, which is never pruned.
//
// One run, per org: the entries older than the cut-off form a prefix of
// the chain, 1…N (pruning by index keeps the projection a contiguous tail
// that verification can start from). Under the archive policy, entries
// base+1…N are first written as a verifiable JSONL export into the archive
// bucket; nothing is pruned unless that export is complete. Then
// audit.retention.applied {through_index: N, before, policy, archive_id}
// is appended to the org's retention aggregate — chained like any event,
// so the org's log records every pruning — and only then are the rows
// deleted, as the database role audit_retention (the one role the
// append-only triggers let delete).
//
// Every instance runs the job; a Postgres advisory lock makes one run at
// a time, and the retention aggregate's expected version makes a run that
// lost a race append nothing.
package retention

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/audit/internal/store"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Config tunes the job.
type Config struct {
	// Interval between runs (default 1h).
	Interval time.Duration
	// FirstRun is the delay before the first run after start (default
	// 1 min), so that a starting fleet does not prune all at once.
	FirstRun time.Duration
}

// Archiver writes an org's entries with index in [from, to] to a
// verifiable archive and returns it once complete.
type Archiver interface {
	Archive(ctx context.Context, org string, from, to uint64) (events.AuditExport, error)
}

// Pruner deletes an org's entries older than before from a secondary
// projection (ClickHouse).
type Pruner interface {
	Prune(ctx context.Context, org string, before time.Time) error
}

// Deps are the job's collaborators. Analytics returns the ClickHouse
// projection when it runs, nil otherwise.
type Deps struct {
	DB        *pgxpool.Pool
	Store     *store.Store
	Events    *eventstore.Store
	Archiver  Archiver
	Analytics func() Pruner
	Log       *slog.Logger
	Now       func() time.Time
}

// Job is the retention job.
type Job struct {
	cfg Config
	d   Deps
	log *slog.Logger
}

// New returns the job; Run runs it.
func New(cfg Config, d Deps) *Job {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Hour
	}
	if cfg.FirstRun <= 0 {
		cfg.FirstRun = time.Minute
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Analytics == nil {
		d.Analytics = func() Pruner { return nil }
	}
	return &Job{cfg: cfg, d: d, log: d.Log.With("component", "audit_retention")}
}

// Run runs the job every Interval until ctx ends.
func (j *Job) Run(ctx context.Context) error {
	t := time.NewTimer(j.cfg.FirstRun)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if _, err := j.RunOnce(ctx); err != nil && ctx.Err() == nil {
			j.log.Error("audit retention run failed", "err", err)
		}
		t.Reset(j.cfg.Interval)
	}
}

// Applied is one pruning a run did.
type Applied struct {
	OrgID string
	events.AuditRetentionApplied
	Deleted int64
}

// lockKey is the advisory lock one run holds (an arbitrary constant).
const lockKey = 0x61756469745f7274 // "audit_rt"

// RunOnce prunes every org whose retention period has entries to prune,
// and returns what it did. It does nothing when another instance holds
// the lock.
func (j *Job) RunOnce(ctx context.Context) ([]Applied, error) {
	conn, err := j.d.DB.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, int64(lockKey)).Scan(&locked); err != nil {
		return nil, fmt.Errorf("audit retention: lock: %w", err)
	}
	if !locked {
		return nil, nil
	}
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(lockKey)) }()
	orgs, err := j.d.Store.ConfiguredOrgs(ctx)
	if err != nil {
		return nil, err
	}
	var out []Applied
	var errs []error
	for org, c := range orgs {
		if c.RetentionDays <= 0 {
			continue
		}
		a, ok, err := j.apply(ctx, org, c)
		if err != nil {
			errs = append(errs, fmt.Errorf("org %s: %w", org, err))
			continue
		}
		if ok {
			out = append(out, a)
		}
	}
	return out, errors.Join(errs...)
}

// apply prunes one org's projections if its period has entries to prune.
func (j *Job) apply(ctx context.Context, org string, c events.AuditConfig) (Applied, bool, error) {
	cutoff := j.d.Now().UTC().Add(-time.Duration(c.RetentionDays) * 24 * time.Hour)
	r := eventstore.Ref{OrgID: org, Type: events.AuditAggRetention, ID: org}
	evs, version, err := j.d.Events.Load(ctx, r)
	if err != nil {
		return Applied{}, false, err
	}
	base := throughOf(evs)
	through, err := j.prunable(ctx, org, cutoff)
	if err != nil || through <= base {
		return Applied{}, false, err
	}
	if err := j.d.Store.CanPrune(ctx); err != nil {
		return Applied{}, false, err
	}
	p := events.AuditRetentionApplied{ThroughIndex: through, Before: cutoff.Format(time.RFC3339Nano), Policy: c.RetentionPolicy}
	if c.RetentionPolicy != events.RetentionDelete {
		a, err := j.d.Archiver.Archive(ctx, org, base+1, through)
		if err != nil {
			return Applied{}, false, fmt.Errorf("archive before pruning (nothing pruned): %w", err)
		}
		p.ArchiveID = a.ID
	}
	env, err := events.New(p, events.Aggregate{Type: r.Type, ID: r.ID}, events.Meta{OrgID: org, Actor: events.SystemActor("audit.retention")})
	if err != nil {
		return Applied{}, false, err
	}
	if _, err := j.d.Events.Append(ctx, r, version, env); err != nil {
		if errors.Is(err, eventstore.ErrConflict) {
			return Applied{}, false, nil // another run got there first
		}
		return Applied{}, false, err
	}
	n, err := j.d.Store.PruneThrough(ctx, org, through)
	if err != nil {
		return Applied{}, false, err
	}
	if ch := j.d.Analytics(); ch != nil {
		if err := ch.Prune(ctx, org, cutoff); err != nil {
			j.log.Warn("audit retention: prune ClickHouse", "org_id", org, "err", err)
		}
	}
	j.log.Info("audit retention applied", "org_id", org, "through_index", through, "deleted", n, "policy", p.Policy, "archive_id", p.ArchiveID)
	return Applied{OrgID: org, AuditRetentionApplied: p, Deleted: n}, true, nil
}

// prunable is the highest index N such that entries 1…N are all older than
// cutoff (0 when none is).
func (j *Job) prunable(ctx context.Context, org string, cutoff time.Time) (uint64, error) {
	var kept, last *int64
	err := j.d.DB.QueryRow(ctx, `SELECT (SELECT min(entry_index) FROM entries WHERE org_id = $1 AND at >= $2),
		(SELECT max(entry_index) FROM entries WHERE org_id = $1)`, org, cutoff).Scan(&kept, &last)
	if err != nil {
		return 0, fmt.Errorf("audit retention: bounds of %s: %w", org, err)
	}
	switch {
	case kept != nil:
		return uint64(*kept - 1), nil
	case last != nil:
		return uint64(*last), nil
	}
	return 0, nil
}

// throughOf is the index the projections were last pruned through.
func throughOf(evs []events.Envelope) uint64 {
	var through uint64
	for _, env := range evs {
		var p events.AuditRetentionApplied
		if env.Type == p.EventType() && json.Unmarshal(env.Data, &p) == nil {
			through = max(through, p.ThroughIndex)
		}
	}
	return through
}

// Status returns the last pruning of org's projections, nil when none.
func Status(ctx context.Context, es *eventstore.Store, org string) (*events.AuditRetentionStatus, error) {
	evs, _, err := es.Load(ctx, eventstore.Ref{OrgID: org, Type: events.AuditAggRetention, ID: org})
	if err != nil {
		return nil, err
	}
	var out *events.AuditRetentionStatus
	for _, env := range evs {
		var p events.AuditRetentionApplied
		if env.Type == p.EventType() && json.Unmarshal(env.Data, &p) == nil {
			out = &events.AuditRetentionStatus{ThroughIndex: p.ThroughIndex, Before: p.Before, Policy: p.Policy,
				ArchiveID: p.ArchiveID, AppliedAt: env.Time.UTC().Format(time.RFC3339Nano)}
		}
	}
	return out, nil
}
