package scenario

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/infrapilot/infrapilot/loadtest/internal/harness"
	"github.com/infrapilot/infrapilot/loadtest/internal/target"
)

// basePart is one raw-capacity measurement of the baseline.
type basePart struct {
	key  string
	name string // metric and recorder name
	unit string
	// ref is the figure measured on the reference machine (INFRA.md), to
	// show how noisy this run's machine is; 0: none.
	ref float64
	// skip says why the part cannot run against t ("" when it can).
	skip func(t *target.Target) string
	run  func(ctx context.Context, t *target.Target, d time.Duration, rec *harness.Recorder) error
	// set stores the measured rate (and p99) in a Baseline.
	set func(b *Baseline, rate float64, s harness.Stats)
	get func(b *Baseline) float64
}

func needNATS(t *target.Target) string {
	if t.NATSURL == "" {
		return "no NATS URL (--nats-url, --nats-creds)"
	}
	return ""
}

var baseParts = []basePart{
	{key: PartJSSync, name: "jetstream sync publish", unit: "msg/s", ref: 21_000, skip: needNATS, run: measureJSSync,
		set: func(b *Baseline, r float64, s harness.Stats) { b.JSSyncPublish, b.JSSyncP99 = r, s.P99 }, get: func(b *Baseline) float64 { return b.JSSyncPublish }},
	{key: PartJSAsync, name: "jetstream async publish", unit: "msg/s", ref: 210_000, skip: needNATS, run: measureJSAsync,
		set: func(b *Baseline, r float64, _ harness.Stats) { b.JSAsyncPublish = r }, get: func(b *Baseline) float64 { return b.JSAsyncPublish }},
	{key: PartNATSEcho, name: "nats request-reply echo", unit: "req/s", skip: needNATS, run: measureNATSEcho,
		set: func(b *Baseline, r float64, s harness.Stats) { b.NATSEcho, b.NATSEchoP99 = r, s.P99 }, get: func(b *Baseline) float64 { return b.NATSEcho }},
	{key: PartClickHouse, name: "clickhouse batch insert", unit: "rows/s", ref: 575_000,
		skip: func(t *target.Target) string {
			if t.ClickHouseURL == "" {
				return "no ClickHouse URL (--clickhouse-url; self-hosted: clickhouse-server not installed)"
			}
			return ""
		},
		run: func(ctx context.Context, t *target.Target, d time.Duration, rec *harness.Recorder) error {
			return measureClickHouse(ctx, t.ClickHouseURL, d, rec)
		},
		set: func(b *Baseline, r float64, _ harness.Stats) { b.ClickHouseInsert = r }, get: func(b *Baseline) float64 { return b.ClickHouseInsert }},
	{key: PartPGCopy, name: "postgres copy from", unit: "rows/s", skip: needPG,
		run: func(ctx context.Context, t *target.Target, d time.Duration, rec *harness.Recorder) error {
			return measurePGCopy(ctx, t.PostgresURL, d, rec)
		},
		set: func(b *Baseline, r float64, _ harness.Stats) { b.PGCopyFrom = r }, get: func(b *Baseline) float64 { return b.PGCopyFrom }},
	{key: PartPGInsert, name: "postgres insert commit", unit: "req/s", skip: needPG,
		run: func(ctx context.Context, t *target.Target, d time.Duration, rec *harness.Recorder) error {
			return measurePGInsert(ctx, t.PostgresURL, d, rec)
		},
		set: func(b *Baseline, r float64, s harness.Stats) { b.PGInsert, b.PGInsertP99 = r, s.P99 }, get: func(b *Baseline) float64 { return b.PGInsert }},
	{key: PartPGSelect, name: "postgres select $1", unit: "req/s", ref: 17_500, skip: needPG,
		run: func(ctx context.Context, t *target.Target, d time.Duration, rec *harness.Recorder) error {
			return measurePGSelect(ctx, t.PostgresURL, d, rec)
		},
		set: func(b *Baseline, r float64, s harness.Stats) { b.PGSelect, b.PGSelectP99 = r, s.P99 }, get: func(b *Baseline) float64 { return b.PGSelect }},
}

func needPG(t *target.Target) string {
	if t.PostgresURL == "" {
		return "no Postgres URL (--pg-url)"
	}
	return ""
}

// refName labels the reference figures of INFRA.md in the table.
const refName = "ref. machine"

func init() {
	Register(Scenario{
		Name:    "baseline",
		Summary: "raw capacity of this machine: JetStream publish, NATS echo, ClickHouse insert, Postgres COPY and SELECT $1",
		Description: `Measures the raw capacity of the same machine in the same run, the
ceilings every other scenario is compared with. Each part runs closed-loop
(one client, as fast as it goes) for --duration:
  jetstream sync publish   256 B messages, each awaiting its ack, into the
                           scratch file stream LOADTEST_BASELINE (deleted after)
  jetstream async publish  the same pipelined (4096 acks pending at most);
                           counted when acked
  nats request-reply echo  core NATS round trips to an echo responder
  clickhouse batch insert  100k-row batches of 6 columns into a MergeTree table
                           of a scratch database (dropped after)
  postgres copy from       100k-row COPY batches of 6 columns into a scratch
                           schema (dropped after)
  postgres insert commit   single-row INSERTs, each its own transaction (commit
                           with the server's fsync setting), one connection
  postgres select $1       round trips on one connection
A part without its URL (no ClickHouse, no Postgres URL) is skipped and the
skip is noted in the result. The "baseline" column shows the figure of the
reference machine of docs/benchmarks.md, to show how this machine compares.`,
		Order: 0,
		Flags: func(fs *flag.FlagSet) Runner {
			parts := fs.String("parts", "all", "comma-separated parts to measure: "+partKeys()+" or all")
			return func(ctx context.Context, t *target.Target, env Env) (*harness.Result, error) {
				return runBaseline(ctx, t, env, *parts)
			}
		},
	})
}

func partKeys() string {
	keys := make([]string, len(baseParts))
	for i, p := range baseParts {
		keys[i] = p.key
	}
	return strings.Join(keys, ",")
}

func selectParts(list string) ([]basePart, error) {
	if list == "" || list == "all" {
		return baseParts, nil
	}
	var out []basePart
	for _, k := range strings.Split(list, ",") {
		found := false
		for _, p := range baseParts {
			if p.key == strings.TrimSpace(k) {
				out, found = append(out, p), true
			}
		}
		if !found {
			return nil, fmt.Errorf("--parts: unknown part %q (known: %s)", k, partKeys())
		}
	}
	return out, nil
}

func runBaseline(ctx context.Context, t *target.Target, env Env, list string) (*harness.Result, error) {
	parts, err := selectParts(list)
	if err != nil {
		return nil, err
	}
	res := &harness.Result{Scenario: "baseline", Started: time.Now().UTC(), Machine: harness.ThisMachine(),
		Params: map[string]string{"duration_per_part": env.Duration.String(), "payload_bytes": "256", "batch_rows": fmt.Sprint(batchRows)}}
	start := time.Now()
	var b Baseline
	for _, p := range parts {
		stats, rate, note := measurePart(ctx, t, env, p, env.Duration)
		if note != "" {
			res.Notes = append(res.Notes, note)
		}
		if stats == nil {
			continue
		}
		res.Recorders = append(res.Recorders, *stats)
		p.set(&b, rate, *stats)
		m := harness.Metric{Name: p.name, Unit: p.unit, Value: rate}
		if p.ref > 0 {
			m = m.WithBaseline(refName, p.ref)
		}
		res.Metrics = append(res.Metrics, m)
		if p.key == PartJSSync || p.key == PartNATSEcho || p.key == PartPGSelect || p.key == PartPGInsert {
			res.Metrics = append(res.Metrics, harness.Metric{Name: p.name + " p99", Unit: "ms", Value: stats.P99})
		}
		if ctx.Err() != nil {
			break
		}
	}
	res.Duration = time.Since(start)
	return res, ctx.Err()
}

// measurePart runs one part for d with live progress. stats is nil when
// the part was skipped or could not start (note says why).
func measurePart(ctx context.Context, t *target.Target, env Env, p basePart, d time.Duration) (*harness.Stats, float64, string) {
	if why := p.skip(t); why != "" {
		return nil, 0, fmt.Sprintf("%s skipped: %s", p.name, why)
	}
	start := time.Now()
	rec := harness.NewRecorder(p.name, start)
	pctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		harness.Progress(pctx, env.Out, "baseline", env.ProgressInterval, rec)
	}()
	err := p.run(ctx, t, d, rec)
	elapsed := time.Since(start)
	stop()
	<-done
	if err != nil {
		return nil, 0, fmt.Sprintf("%s failed: %v", p.name, err)
	}
	s := rec.Snapshot()
	rate := s.Rate(elapsed)
	fmt.Fprintf(env.Out, "[baseline] %s: %s %s over %s\n", p.name, harness.FormatValue(rate), p.unit, elapsed.Round(time.Millisecond))
	return &s, rate, ""
}

// BaselineOf reads the raw capacities back from a baseline result.
func BaselineOf(r *harness.Result) *Baseline {
	if r == nil {
		return nil
	}
	var b Baseline
	for _, s := range r.Recorders {
		for _, p := range baseParts {
			if p.name != s.Name {
				continue
			}
			for _, m := range r.Metrics {
				if m.Name == p.name {
					p.set(&b, m.Value, s)
				}
			}
		}
	}
	return &b
}

// NeedBaseline returns the raw capacities a scenario compares with: those
// of env.Baseline, and the parts it lacks measured now (for a shorter time:
// --duration capped at 5 s, 2 s with --short). notes say what was measured
// inline or skipped, for the scenario's result.
func NeedBaseline(ctx context.Context, t *target.Target, env Env, parts ...string) (*Baseline, []string) {
	b := &Baseline{}
	if env.Baseline != nil {
		*b = *env.Baseline
	}
	d := min(env.Duration, 5*time.Second)
	if env.Short {
		d = min(d, 2*time.Second)
	}
	var notes []string
	for _, key := range parts {
		for _, p := range baseParts {
			if p.key != key || p.get(b) > 0 {
				continue
			}
			stats, rate, note := measurePart(ctx, t, env, p, d)
			if note != "" {
				notes = append(notes, "baseline "+note)
				continue
			}
			p.set(b, rate, *stats)
			notes = append(notes, fmt.Sprintf("baseline %s measured inline for %s (no baseline run in this process): %s %s",
				p.name, d, harness.FormatValue(rate), p.unit))
		}
	}
	return b, notes
}
