package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
	"github.com/infrapilot/infrapilot/services/logingest/internal/store"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultDays is the retention of each plan, in days.
var DefaultDays = map[string]int{"free": 3, "pro": 30, "enterprise": 365}

// Config configures the job. Zero fields take defaults.
type Config struct {
	// Days is the retention per plan (default DefaultDays); DefaultPlan
	// (default "free") applies to an org whose plan is unknown or not in
	// Days.
	Days        map[string]int
	DefaultPlan string
	// Interval is the time between runs (default 1h); the first run is
	// Interval/10 after start.
	Interval time.Duration
	// RunTimeout bounds one run (default 30m).
	RunTimeout time.Duration
}

func (c *Config) setDefaults() {
	if len(c.Days) == 0 {
		c.Days = DefaultDays
	}
	if c.DefaultPlan == "" {
		c.DefaultPlan = "free"
	}
	if c.Interval <= 0 {
		c.Interval = time.Hour
	}
	if c.RunTimeout <= 0 {
		c.RunTimeout = 30 * time.Minute
	}
}

// Validate reports a configuration the job cannot run with.
func (c Config) Validate() error {
	c.setDefaults()
	for plan, d := range c.Days {
		if d < 1 {
			return fmt.Errorf("retention: plan %s keeps %d days, want >= 1", plan, d)
		}
	}
	if _, ok := c.Days[c.DefaultPlan]; !ok {
		return fmt.Errorf("retention: default plan %q has no retention", c.DefaultPlan)
	}
	return nil
}

// Deps are the job's collaborators.
type Deps struct {
	Store  store.Store
	Plans  *Plans
	DB     *pgxpool.Pool
	Events *eventstore.Store
	JS     jetstream.JetStream
	Log    *slog.Logger
	Now    func() time.Time
	// Metrics registers the job's collectors; nil registers nothing.
	Metrics prometheus.Registerer
}

// Job enforces retention.
type Job struct {
	cfg     Config
	d       Deps
	deleted *prometheus.CounterVec
	runs    *prometheus.CounterVec
}

// New returns a job; Run starts it.
func New(cfg Config, d Deps) (*Job, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	j := &Job{cfg: cfg, d: d,
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "infrapilot", Subsystem: "logingest",
			Name: "retention_deleted_total", Help: "Log lines and metric samples deleted by retention."}, []string{"kind"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "infrapilot", Subsystem: "logingest",
			Name: "retention_runs_total", Help: "Retention runs by outcome (ok, skipped, failed)."}, []string{"outcome"}),
	}
	if d.Metrics != nil {
		for _, c := range []*prometheus.CounterVec{j.deleted, j.runs} {
			if err := d.Metrics.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					return nil, err
				}
			}
		}
	}
	return j, nil
}

// Days returns the retention of plan (the default plan's when unknown),
// and the plan it applied.
func (j *Job) Days(plan string) (string, int) {
	if d, ok := j.cfg.Days[plan]; ok {
		return plan, d
	}
	return j.cfg.DefaultPlan, j.cfg.Days[j.cfg.DefaultPlan]
}

// Run runs the job every Interval until ctx ends.
func (j *Job) Run(ctx context.Context) error {
	t := time.NewTimer(j.cfg.Interval / 10)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, j.cfg.RunTimeout)
		if _, err := j.RunOnce(rctx); err != nil && ctx.Err() == nil {
			j.d.Log.Error("retention run failed", "err", err)
		}
		cancel()
		t.Reset(j.cfg.Interval)
	}
}

// Result is what one run did.
type Result struct {
	// Skipped says why the run did nothing ("" when it ran).
	Skipped string
	// Dropped counts what the global floor (the longest retention of any
	// plan) removed, all orgs together.
	Dropped store.Deleted
	// Orgs counts what each org's plan retention removed.
	Orgs map[string]store.Deleted
}

// lockKey is the advisory lock that lets one replica run the job at a
// time.
const lockKey = 0x6c6f6769 // "logi"

// RunOnce runs the job now. It does nothing (Result.Skipped) while the
// plan projection has not caught up with the TENANCY stream, because an
// org whose plan is not known yet would be treated as on the default plan
// and lose logs its real plan keeps; and while another replica runs it.
func (j *Job) RunOnce(ctx context.Context) (Result, error) {
	var res Result
	if behind, err := j.plansBehind(ctx); err != nil {
		j.runs.WithLabelValues("failed").Inc()
		return res, err
	} else if behind > 0 {
		res.Skipped = fmt.Sprintf("the plan projection is %d events behind", behind)
		j.d.Log.Info("retention skipped", "reason", res.Skipped)
		j.runs.WithLabelValues("skipped").Inc()
		return res, nil
	}
	conn, err := j.d.DB.Acquire(ctx)
	if err != nil {
		return res, fmt.Errorf("retention: %w", err)
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, lockKey).Scan(&locked); err != nil {
		return res, fmt.Errorf("retention: lock: %w", err)
	}
	if !locked {
		res.Skipped = "another replica is running retention"
		j.runs.WithLabelValues("skipped").Inc()
		return res, nil
	}
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, lockKey) }()

	res, err = j.run(ctx)
	if err != nil {
		j.runs.WithLabelValues("failed").Inc()
		return res, err
	}
	j.runs.WithLabelValues("ok").Inc()
	return res, nil
}

func (j *Job) run(ctx context.Context) (Result, error) {
	now := j.d.Now().UTC()
	var res Result
	longest, shortest := 0, 1<<30
	for _, d := range j.cfg.Days {
		longest, shortest = max(longest, d), min(shortest, d)
	}
	day := 24 * time.Hour
	// Nothing is kept longer than the longest plan: whole days go at
	// once (partitions, on ClickHouse), whatever the org.
	floor := now.Add(-time.Duration(longest+1) * day).Truncate(day)
	dropped, err := j.d.Store.DropBefore(ctx, floor)
	if err != nil {
		return res, fmt.Errorf("retention: drop before %s: %w", floor.Format(time.DateOnly), err)
	}
	res.Dropped = dropped
	j.count(dropped)

	orgs, err := j.d.Store.ExpiredOrgs(ctx, now.Add(-time.Duration(shortest)*day))
	if err != nil {
		return res, fmt.Errorf("retention: %w", err)
	}
	plans, err := j.d.Plans.Of(ctx, orgs)
	if err != nil {
		return res, err
	}
	// One delete per distinct cutoff (per plan), not per org: a ClickHouse
	// mutation rewrites the parts it touches, however few rows.
	type group struct {
		plan string
		days int
	}
	groups := map[group][]string{}
	for _, o := range orgs {
		plan, days := j.Days(plans[o])
		groups[group{plan, days}] = append(groups[group{plan, days}], o)
	}
	keys := make([]group, 0, len(groups))
	for g := range groups {
		keys = append(keys, g)
	}
	slices.SortFunc(keys, func(a, b group) int { return a.days - b.days })
	res.Orgs = map[string]store.Deleted{}
	for _, g := range keys {
		cutoff := now.Add(-time.Duration(g.days) * day)
		del, err := j.d.Store.DeleteBefore(ctx, groups[g], cutoff)
		if err != nil {
			return res, fmt.Errorf("retention: plan %s: %w", g.plan, err)
		}
		for org, d := range del {
			res.Orgs[org] = d
			j.count(d)
			if err := j.record(ctx, org, g.plan, g.days, cutoff, now, d); err != nil {
				return res, err
			}
		}
	}
	if err := j.recordRun(ctx, now, res); err != nil {
		return res, err
	}
	total := store.Total(res.Orgs)
	j.d.Log.Info("retention applied", "orgs", len(res.Orgs), "lines_deleted", total.Lines, "samples_deleted", total.Samples,
		"floor", floor.Format(time.DateOnly), "floor_lines", dropped.Lines, "floor_samples", dropped.Samples)
	return res, nil
}

func (j *Job) count(d store.Deleted) {
	j.deleted.WithLabelValues("lines").Add(float64(d.Lines))
	j.deleted.WithLabelValues("samples").Add(float64(d.Samples))
}

// record keeps the org's latest retention result (for OpLogsRetention)
// and appends logingest.retention.applied for it.
func (j *Job) record(ctx context.Context, org, plan string, days int, cutoff, now time.Time, d store.Deleted) error {
	if _, err := j.d.DB.Exec(ctx, `INSERT INTO retention_status (org_id, plan, retention_days, cutoff, run_at, lines_deleted, samples_deleted)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (org_id) DO UPDATE SET plan = EXCLUDED.plan, retention_days = EXCLUDED.retention_days, cutoff = EXCLUDED.cutoff,
			run_at = EXCLUDED.run_at, lines_deleted = EXCLUDED.lines_deleted, samples_deleted = EXCLUDED.samples_deleted`,
		org, plan, days, cutoff, now, d.Lines, d.Samples); err != nil {
		return fmt.Errorf("retention: record: %w", err)
	}
	run, err := uuid.NewV7()
	if err != nil {
		return err
	}
	env, err := events.New(events.RetentionApplied{Plan: plan, RetentionDays: days, Cutoff: cutoff.Truncate(time.Microsecond),
		LinesDeleted: d.Lines, SamplesDeleted: d.Samples},
		events.Aggregate{Type: events.LogingestAggRetentionRun, ID: run.String()},
		events.Meta{OrgID: org, Actor: events.SystemActor("logingest.retention")})
	if err != nil {
		return err
	}
	// Each run of each org is an aggregate of its own: no history to
	// replay, nothing to conflict with.
	if _, err := j.d.Events.Append(ctx, eventstore.Ref{OrgID: org, Type: events.LogingestAggRetentionRun, ID: run.String()}, 0, env); err != nil {
		return fmt.Errorf("retention: event: %w", err)
	}
	j.d.Log.Info("retention applied to org", "org_id", org, "plan", plan, "retention_days", days,
		"cutoff", cutoff.Format(time.RFC3339), "lines_deleted", d.Lines, "samples_deleted", d.Samples)
	return nil
}

// runKey is the retention_status row of the job's own last run.
const runKey = "*"

func (j *Job) recordRun(ctx context.Context, now time.Time, res Result) error {
	t := store.Total(res.Orgs).Add(res.Dropped)
	_, err := j.d.DB.Exec(ctx, `INSERT INTO retention_status (org_id, plan, retention_days, cutoff, run_at, lines_deleted, samples_deleted)
		VALUES ($1, '', 0, $2, $2, $3, $4)
		ON CONFLICT (org_id) DO UPDATE SET run_at = EXCLUDED.run_at, cutoff = EXCLUDED.cutoff,
			lines_deleted = EXCLUDED.lines_deleted, samples_deleted = EXCLUDED.samples_deleted`, runKey, now, t.Lines, t.Samples)
	if err != nil {
		return fmt.Errorf("retention: record run: %w", err)
	}
	return nil
}

// plansBehind is how many TENANCY events the plan projection has yet to
// handle (0 before its consumer exists: nothing to wait for then is
// wrong, so that counts as behind too).
func (j *Job) plansBehind(ctx context.Context) (uint64, error) {
	c, err := j.d.JS.Consumer(ctx, events.DomainStream("tenancy"), PlansConsumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return 1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("retention: plan projection: %w", err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("retention: plan projection: %w", err)
	}
	return info.NumPending + uint64(info.NumAckPending), nil
}

// Status answers events.OpLogsRetention for org.
func (j *Job) Status(ctx context.Context, org string) (events.LogsRetentionStatus, error) {
	plan, _, err := j.d.Plans.Plan(ctx, org)
	if err != nil {
		return events.LogsRetentionStatus{}, err
	}
	plan, days := j.Days(plan)
	now := j.d.Now().UTC()
	st := events.LogsRetentionStatus{Plan: plan, RetentionDays: days, Cutoff: now.Add(-time.Duration(days) * 24 * time.Hour)}
	var (
		runAt          time.Time
		lines, samples int64
	)
	err = j.d.DB.QueryRow(ctx, `SELECT run_at, lines_deleted, samples_deleted FROM retention_status WHERE org_id = $1`, org).
		Scan(&runAt, &lines, &samples)
	switch {
	case err == nil:
		st.LastRun, st.LinesDeleted, st.SamplesDeleted = &runAt, lines, samples
	case errors.Is(err, pgx.ErrNoRows):
		// Nothing was ever deleted for this org: report the job's last run.
		if err := j.d.DB.QueryRow(ctx, `SELECT run_at FROM retention_status WHERE org_id = $1`, runKey).Scan(&runAt); err == nil {
			st.LastRun = &runAt
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return st, err
		}
	default:
		return st, err
	}
	return st, nil
}
