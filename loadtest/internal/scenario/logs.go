package scenario

import (
	"context"
	"flag"
	"fmt"
	"sync"
	"time"

	"github.com/infrapilot/infrapilot/loadtest/internal/harness"
	"github.com/infrapilot/infrapilot/loadtest/internal/target"
)

// logsGoal is the end-to-end target of issue 8, in lines per second.
const logsGoal = 100_000

// logsConfig is the logs scenario's flags.
type logsConfig struct {
	agents, containers     int
	ratePerAgent           float64
	lineBytes              int
	batchLines, batchBytes int
	flush                  time.Duration
	inflight               int
	samples                float64
	poll, queryDeadline    time.Duration
	drain, ackTimeout      time.Duration
	maxBacklog             int64
	enrollPar              int
	hubPID                 int
}

func init() {
	Register(Scenario{
		Name:    "logs",
		Summary: "simulated agents stream log lines through the leaf node; lines stored/s and publish→queryable latency",
		Description: `N simulated agents (real enrollment, real scoped credentials; simulated:
they speak the leafnode protocol directly, see loadtest/internal/simagent)
each stream --rate-per-agent lines/s from --containers containers, on an
open-loop schedule, batched as the real agent batches (--batch-lines lines or
--batch-bytes bytes, or --flush after a batch's first line) and published
into the hub's LOGS stream with Nats-Msg-Id, one batch in flight per agent
like the real forwarder (--inflight), PubAck awaited, failures retried.

Measured, never computed from the configured rate:
  lines stored/s   the log-ingest service's own counter of rows written to the
                   store (gateway /metrics), from the first line until the
                   last one was stored (the load stops after --duration; the
                   backlog drains for at most --drain)
  publish→queryable  --samples lines/s carry a unique marker; GET /logs?q=
                   polls (every --poll) until a query returns the line:
                   p50/p95/p99 from the batch's publish, and from the line's
                   own time (which adds the agent's batching delay)
Compared with the raw ClickHouse batch insert of the baseline. Targets:
≥ 100k lines/s end to end and ≥ 0.25× raw ClickHouse insert.`,
		Order: 40,
		Flags: func(fs *flag.FlagSet) Runner {
			var c logsConfig
			fs.IntVar(&c.agents, "agents", 10, "simulated agents (--short: 4)")
			fs.Float64Var(&c.ratePerAgent, "rate-per-agent", 0, "lines per second per agent (0: 100000/agents; --short: 5000)")
			fs.IntVar(&c.containers, "containers", 2, "containers logging per agent (one batch stream each)")
			fs.IntVar(&c.lineBytes, "line-bytes", 100, "approximate bytes per line")
			fs.IntVar(&c.batchLines, "batch-lines", 1000, "lines per batch at most (the real agent's MaxLines)")
			fs.IntVar(&c.batchBytes, "batch-bytes", 256<<10, "bytes of text per batch at most (the real agent's MaxBytes)")
			fs.DurationVar(&c.flush, "flush", time.Second, "a batch is sent at most this long after its first line (the real agent's FlushInterval)")
			fs.IntVar(&c.inflight, "inflight", 1, "batches in flight per agent (the real forwarder: 1)")
			fs.Float64Var(&c.samples, "samples", 2, "marked lines per second whose publish→queryable delay is measured")
			fs.DurationVar(&c.poll, "poll", 100*time.Millisecond, "interval of the GET /logs polls looking for a marked line")
			fs.DurationVar(&c.queryDeadline, "query-deadline", 60*time.Second, "a marked line not queryable this long after its publish counts as an error")
			fs.DurationVar(&c.drain, "drain", 90*time.Second, "how long to wait, after the load, for the backlog to be stored")
			fs.DurationVar(&c.ackTimeout, "ack-timeout", 10*time.Second, "a publish without a PubAck this long is retried")
			fs.Int64Var(&c.maxBacklog, "max-backlog", 64<<20, "bytes an agent's in-memory outbox may hold; beyond, batches are dropped and counted as errors")
			fs.IntVar(&c.enrollPar, "enroll-parallel", 8, "concurrent enrollments")
			fs.IntVar(&c.hubPID, "hub-pid", 0, hubPIDUsage)
			return func(ctx context.Context, t *target.Target, env Env) (*harness.Result, error) {
				cfg := c
				cfg.agents = fleetPick(env, "agents", c.agents, 4)
				cfg.ratePerAgent = fleetPick(env, "rate-per-agent", c.ratePerAgent, 5000)
				if cfg.ratePerAgent <= 0 {
					cfg.ratePerAgent = logsGoal / float64(max(cfg.agents, 1))
				}
				return runLogs(ctx, t, env, cfg)
			}
		},
	})
}

func runLogs(ctx context.Context, t *target.Target, env Env, cfg logsConfig) (*harness.Result, error) {
	if cfg.agents < 1 || cfg.containers < 1 || cfg.ratePerAgent <= 0 {
		return nil, fmt.Errorf("logs: --agents, --containers and the rate must be positive")
	}
	run := fleetRunID()
	res := &harness.Result{Scenario: "logs", Started: time.Now().UTC(), Machine: harness.ThisMachine(), Params: map[string]string{
		"agents": fmt.Sprint(cfg.agents), "rate_per_agent": harness.FormatValue(cfg.ratePerAgent),
		"offered_total": harness.FormatValue(cfg.ratePerAgent * float64(cfg.agents)), "containers": fmt.Sprint(cfg.containers),
		"line_bytes": fmt.Sprint(cfg.lineBytes), "batch_lines": fmt.Sprint(cfg.batchLines), "flush": cfg.flush.String(),
		"inflight": fmt.Sprint(cfg.inflight), "duration": env.Duration.String(), "run": run}}
	began := time.Now()
	defer func() { res.Duration = time.Since(began) }()

	// The raw capacity first, while nothing else loads the machine.
	base, notes := NeedBaseline(ctx, t, env, PartClickHouse)
	res.Notes = append(res.Notes, notes...)
	if t.ClickHouseURL == "" {
		res.Notes = append(res.Notes, "the target has no ClickHouse URL: if it stores logs in Postgres, the ratio to raw ClickHouse insert compares unlike stores")
	}

	fleet, err := setupFleet(ctx, t, env, "logs", run, fleetSpec{Agents: cfg.agents, Containers: cfg.containers,
		EnrollParallel: cfg.enrollPar, ConnectParallel: 32, PerToken: defaultPerToken})
	if fleet != nil {
		defer closeFleet(fleet.Agents)
		res.Notes = append(res.Notes, fleet.Notes...)
		if fleet.Enroll != nil {
			res.Recorders = append(res.Recorders, fleet.Enroll.Snapshot())
		}
		if fleet.Connect != nil {
			res.Recorders = append(res.Recorders, fleet.Connect.Snapshot())
		}
	}
	if err != nil {
		return res, err
	}

	counter := newStoredCounter(t)
	start := time.Now().Add(200 * time.Millisecond).Truncate(time.Millisecond)
	sh := &logsShared{cfg: cfg, run: run, start: start, end: start.Add(env.Duration),
		markEvery: int64(float64(time.Second) / max(cfg.samples, 0.001)),
		offered:   harness.NewRecorder("lines offered", start), accepted: harness.NewRecorder("lines accepted by the hub", start),
		batches: harness.NewRecorder("batch publish (PubAck)", start)}
	sh.nextMark.Store(start.UnixNano())
	storedRec := harness.NewRecorder("lines stored", start)
	fromSend := harness.NewRecorder("publish→queryable", start)
	fromLine := harness.NewRecorder("line→queryable", start)
	watch, err := newStoredWatch(ctx, counter, storedRec)
	if err != nil {
		return res, fmt.Errorf("logs: reading the log-ingest counter at %s: %w", counter.url, err)
	}
	poller := newMarkerPoller(t, fromSend, fromLine, cfg.poll, cfg.queryDeadline, 16)
	sh.markers = poller.add

	pid, dataDir := hubProcess(cfg.hubPID, t)
	proc := startProcSampler(ctx, pid, dataDir, time.Second)
	defer proc.Stop()
	stopProgress := fleetProgress(ctx, env, "logs", sh.offered, sh.accepted, storedRec, fromSend)
	wctx, stopWatch := context.WithCancel(ctx)
	go watch.run(wctx, 500*time.Millisecond)
	pctx, stopPoll := context.WithCancel(ctx)
	poller.start(pctx, 16)

	// The load: every agent generates and sends until the end; the senders
	// then drain their outboxes (bounded by --drain).
	dctx, cancelDrain := context.WithDeadline(ctx, sh.end.Add(cfg.drain))
	defer cancelDrain()
	profiled := HubProfile(ctx, t, env, "logs", time.Until(sh.end))
	var wg sync.WaitGroup
	for _, a := range fleet.Agents {
		la := newLogAgent(sh, a)
		wg.Add(2)
		go func() { defer wg.Done(); la.generate(ctx, cfg.ratePerAgent) }()
		go func() { defer wg.Done(); la.send(dctx) }()
	}
	fleetSleep(ctx, time.Until(sh.end))
	loadEnd := time.Now()
	storedAtEnd, _ := watch.stored()
	wg.Wait()
	// Every accepted line is in JetStream; wait until the store has them.
	for ctx.Err() == nil && dctx.Err() == nil {
		watch.poll(ctx)
		if n, _ := watch.stored(); n >= sh.acked.Load() {
			break
		}
		fleetSleep(dctx, 250*time.Millisecond)
	}
	watch.poll(ctx)
	stopWatch()
	// Markers published late still get their chance to be found.
	waitMarkers := time.Now().Add(min(cfg.queryDeadline, 30*time.Second))
	for fromSend.Snapshot().Samples+fromSend.Snapshot().Errors < int64(sh.markSeq.Load())-poller.skipped.Load() && time.Now().Before(waitMarkers) {
		fleetSleep(ctx, 200*time.Millisecond)
	}
	stopPoll()
	poller.close()
	stopProgress()
	proc.Stop()

	stored, lastStored := watch.stored()
	res.Recorders = append(res.Recorders, sh.offered.Snapshot(), sh.accepted.Snapshot(), sh.batches.Snapshot(),
		storedRec.Snapshot(), fromSend.Snapshot(), fromLine.Snapshot())
	res.Metrics = append(res.Metrics, logsMetrics(cfg, sh, base, stored, storedAtEnd, lastStored, loadEnd, fromSend, fromLine)...)
	res.Metrics = append(res.Metrics, procMetrics(proc.Summary(sh.start, loadEnd), proc.HubKnown())...)
	res.Notes = append(res.Notes, logsNotes(cfg, sh, watch, poller, stored, proc.HubKnown())...)
	if n := profiled(); n != "" {
		res.Notes = append(res.Notes, n)
	}
	return res, ctx.Err()
}

// logsMetrics are the headline figures.
func logsMetrics(cfg logsConfig, sh *logsShared, base *Baseline, stored, storedAtEnd int64, lastStored, loadEnd time.Time,
	fromSend, fromLine *harness.Recorder) []harness.Metric {
	var rate float64
	if stored > 0 && lastStored.After(sh.start) {
		rate = float64(stored) / lastStored.Sub(sh.start).Seconds()
	}
	load := loadEnd.Sub(sh.start).Seconds()
	off := sh.offered.Snapshot()
	acc := sh.accepted.Snapshot()
	storedM := harness.Metric{Name: "lines stored/s (end to end)", Unit: "lines/s", Value: rate}
	if base != nil && base.ClickHouseInsert > 0 {
		storedM = storedM.WithBaseline("raw ClickHouse insert", base.ClickHouseInsert)
	}
	// The target is a capacity: only a run offering at least that much
	// can show it (a --short run offers less, and is not judged).
	if offeredRate := float64(off.Items) / load; offeredRate >= 0.99*logsGoal {
		if storedM.BaselineValue > 0 {
			storedM = storedM.WithTarget("≥ 100k/s and ≥ 0.25× raw", rate >= logsGoal && storedM.Ratio >= 0.25)
		} else {
			storedM = storedM.WithTarget("≥ 100k/s", rate >= logsGoal)
		}
	}
	s, l := fromSend.Snapshot(), fromLine.Snapshot()
	ms := []harness.Metric{
		storedM,
		{Name: "lines offered/s (generated)", Unit: "lines/s", Value: float64(off.Items) / load},
		{Name: "lines accepted/s by the hub (PubAck) during the load", Unit: "lines/s", Value: windowRate(acc, sh.start, sh.start, loadEnd)},
		{Name: "lines stored/s during the load", Unit: "lines/s", Value: float64(storedAtEnd) / load},
		{Name: "backlog when the load stopped", Unit: "lines", Value: float64(max(sh.acked.Load()-storedAtEnd, 0))},
		{Name: "lines lost (dropped or unacknowledged)", Unit: "lines", Value: float64(sh.dropped.Load() + sh.lost.Load())},
		{Name: "publish→queryable p50", Unit: "ms", Value: s.P50},
		{Name: "publish→queryable p95", Unit: "ms", Value: s.P95},
		{Name: "publish→queryable p99", Unit: "ms", Value: s.P99},
		{Name: "line→queryable p99 (with agent batching)", Unit: "ms", Value: l.P99},
	}
	return ms
}

func logsNotes(cfg logsConfig, sh *logsShared, watch *storedWatch, poller *markerPoller, stored int64, hubKnown bool) []string {
	notes := []string{}
	if total := cfg.ratePerAgent * float64(cfg.agents); total < 0.99*logsGoal {
		notes = append(notes, fmt.Sprintf("offered %s lines/s, below the 100k lines/s target: the target is not judged by this run", harness.FormatValue(total)))
	}
	notes = append(notes,
		fmt.Sprintf("lines stored is the log-ingest counter %s (all orgs; duplicates re-written after a redelivery included): %d rows stored vs %d lines acknowledged by the hub",
			storedMetric, stored, sh.acked.Load()),
		fmt.Sprintf("%d marked lines sampled, %d skipped (every poller busy), %d GET /logs queries; latency resolution is the poll interval (%s)",
			sh.markSeq.Load(), poller.skipped.Load(), poller.queries.Load(), cfg.poll),
		"simulated agents (loadtest/internal/simagent) speak the leaf protocol directly; the real agent's cost per MiB/s of logs is measured by BenchmarkAgentFootprint",
	)
	if n := watch.errs.Load(); n > 0 {
		notes = append(notes, fmt.Sprintf("%d reads of /metrics failed", n))
	}
	if !hubKnown {
		notes = append(notes, "hub process unknown (not self-hosted, no dev.json): CPU figures are the whole machine's")
	}
	return notes
}

// procMetrics are the hub's CPU and memory over a window.
func procMetrics(s procSummary, hubKnown bool) []harness.Metric {
	const mib = 1 << 20
	out := []harness.Metric{}
	if hubKnown {
		out = append(out,
			harness.Metric{Name: "hub CPU (infrapilot process), mean", Unit: "cores", Value: s.HubCPU},
			harness.Metric{Name: "hub CPU, peak second", Unit: "cores", Value: s.HubCPUMax},
			harness.Metric{Name: "hub RSS, peak", Unit: "MiB", Value: float64(s.HubRSSMax) / mib},
			harness.Metric{Name: "hub + Postgres + ClickHouse CPU, mean", Unit: "cores", Value: s.StackCPU},
			harness.Metric{Name: "hub + Postgres + ClickHouse RSS, peak", Unit: "MiB", Value: float64(s.StackRSSMax) / mib},
		)
	}
	out = append(out,
		harness.Metric{Name: "machine CPU busy, mean", Unit: "cores", Value: s.MachineCPU},
		harness.Metric{Name: "load generator CPU (this process), mean", Unit: "cores", Value: s.SelfCPU},
	)
	return out
}
