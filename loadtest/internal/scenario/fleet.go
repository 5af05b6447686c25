package scenario

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/loadtest/internal/harness"
	"github.com/infrapilot/infrapilot/loadtest/internal/target"
)

// fleetGoal is issue 8's fleet size on one hub.
const fleetGoal = 10_000

// fleetConfig is the fleet scenario's flags.
type fleetConfig struct {
	agents, containers       int
	interval, presenceTO     time.Duration
	listEvery                time.Duration
	stopShare                float64
	enrollPar, connPar, hubP int
	workers, perToken        int
}

func init() {
	Register(Scenario{
		Name:    "fleet",
		Summary: "up to 10,000 simulated agents on one hub: heartbeats and metrics, hub CPU and memory, presence accuracy",
		Description: `Enrolls --agents simulated agents through the API (the org is moved to the
enterprise plan first; real enrollment, real scoped credentials), connects
each to the hub's leafnode port (simulated: one TCP connection and one
goroutine per agent, no nats-server; see loadtest/internal/simagent), and has
every agent send a heartbeat (core NATS) and a metrics sample (JetStream,
PubAck awaited) every --interval at a random phase, for --duration (at least
three intervals). Then it stops --stop-share of the agents and watches the
registry.

Measured: enrollment and connection rate and latency; heartbeats and
samples the hub delivered to its services' account (a service-credential
subscription counts them) beside what the agents sent; the hub's CPU and
RSS (the infrapilot process, from /proc; with --hub-pid or self-hosted,
else only the machine's CPU) and its RSS per connected agent; presence
accuracy through GET /agents: the share of the fleet reported online while
heartbeats flow, and that exactly the stopped agents go offline within the
presence timeout (--presence-timeout, the hub's --agent-offline-after)
plus one interval, with no running agent reported offline.
Target: 10,000 agents on one hub.`,
		Order: 60,
		Flags: func(fs *flag.FlagSet) Runner {
			var c fleetConfig
			fs.IntVar(&c.agents, "agents", 1000, "simulated agents (up to 10000; --short: 200)")
			fs.DurationVar(&c.interval, "interval", 10*time.Second, "period of each agent's heartbeat and metrics sample (--short: 5s)")
			fs.DurationVar(&c.presenceTO, "presence-timeout", 20*time.Second, "the hub's --agent-offline-after: how long a silent agent stays online")
			fs.DurationVar(&c.listEvery, "list-every", 3*time.Second, "period of the GET /agents polls that check presence")
			fs.Float64Var(&c.stopShare, "stop-share", 0.1, "share of the agents stopped to check they, and only they, go offline")
			fs.IntVar(&c.containers, "containers", 4, "synthetic containers per agent (size of the metrics samples)")
			fs.IntVar(&c.enrollPar, "enroll-parallel", 16, "concurrent enrollments")
			fs.IntVar(&c.perToken, "agents-per-token", defaultPerToken, "machines per enrollment token (0: one token for the whole fleet, which enrolls ever more slowly: each use is an event its next use replays)")
			fs.IntVar(&c.connPar, "connect-parallel", 64, "concurrent leaf handshakes")
			fs.IntVar(&c.workers, "senders", 4, "scheduler goroutines sending the fleet's telemetry")
			fs.IntVar(&c.hubP, "hub-pid", 0, hubPIDUsage)
			return func(ctx context.Context, t *target.Target, env Env) (*harness.Result, error) {
				cfg := c
				cfg.agents = fleetPick(env, "agents", c.agents, 200)
				cfg.interval = fleetPick(env, "interval", c.interval, 5*time.Second)
				return runFleet(ctx, t, env, cfg)
			}
		},
	})
}

func runFleet(ctx context.Context, t *target.Target, env Env, cfg fleetConfig) (*harness.Result, error) {
	if cfg.agents < 1 || cfg.interval <= 0 || cfg.stopShare < 0 || cfg.stopShare >= 1 {
		return nil, errors.New("fleet: --agents and --interval must be positive, --stop-share within [0, 1)")
	}
	if nc, err := t.NATS(ctx); err != nil {
		return nil, fmt.Errorf("fleet: counting what the hub delivers needs the hub's NATS URL and service credentials: %w", err)
	} else {
		nc.Close()
	}
	run := fleetRunID()
	steady := max(env.Duration, 3*cfg.interval)
	res := &harness.Result{Scenario: "fleet", Started: time.Now().UTC(), Machine: harness.ThisMachine(), Params: map[string]string{
		"agents": fmt.Sprint(cfg.agents), "interval": cfg.interval.String(), "steady": steady.String(),
		"presence_timeout": cfg.presenceTO.String(), "stop_share": fmt.Sprint(cfg.stopShare), "run": run}}
	began := time.Now()
	defer func() { res.Duration = time.Since(began) }()

	pid, dataDir := hubProcess(cfg.hubP, t)
	proc := startProcSampler(ctx, pid, dataDir, time.Second)
	defer proc.Stop()
	fleet, err := setupFleet(ctx, t, env, "fleet", run, fleetSpec{Agents: cfg.agents, Containers: cfg.containers,
		EnrollParallel: cfg.enrollPar, ConnectParallel: cfg.connPar, PerToken: cfg.perToken})
	if fleet != nil {
		defer func() { closeFleet(fleet.Agents) }()
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
	agents := fleet.Agents
	connectedAt := time.Now()
	afterConnect := proc.Summary(connectedAt.Add(-2*time.Second), connectedAt.Add(time.Second))

	// Telemetry, and what the hub delivers of it.
	T0 := time.Now()
	sentHB := harness.NewRecorder("heartbeats sent (lateness)", T0)
	sentMS := harness.NewRecorder("metrics published (PubAck)", T0)
	seenHB := harness.NewRecorder("heartbeats delivered by the hub", T0)
	seenMS := harness.NewRecorder("metrics delivered by the hub", T0)
	obs, err := observeHub(ctx, t, agents[0].OrgID, agents, seenHB, seenMS)
	if err != nil {
		return res, fmt.Errorf("fleet: observing the hub: %w", err)
	}
	defer obs.close()
	bctx, stopBeats := context.WithCancel(ctx)
	defer stopBeats()
	beats := startBeater(bctx, agents, cfg.interval, cfg.workers, sentHB, sentMS)
	stopProgress := fleetProgress(ctx, env, "fleet", sentHB, seenHB, sentMS, seenMS)
	profiled := HubProfile(ctx, t, env, "fleet", steady)

	ours := map[string]bool{}
	for _, a := range agents {
		ours[a.AgentID] = true
	}
	// Presence while heartbeats flow: poll until all are online (at most
	// the steady phase), then once more at its end.
	var allOnlineAfter time.Duration
	var listErrs int
	var lastListErr string
	steadyEnd := T0.Add(steady)
	for ctx.Err() == nil && time.Now().Before(steadyEnd) {
		st, err := presenceOf(ctx, t, ours)
		if err != nil {
			listErrs++
			lastListErr = err.Error()
		} else if countStatus(st, ours, events.AgentOnline) == len(ours) {
			allOnlineAfter = time.Since(T0)
			break
		}
		fleetSleep(ctx, cfg.listEvery)
	}
	fleetSleep(ctx, time.Until(steadyEnd))
	steadyStatus, err := presenceOf(ctx, t, ours)
	if err != nil {
		listErrs++
		lastListErr = err.Error()
	}
	onlineSteady := countStatus(steadyStatus, ours, events.AgentOnline)
	if allOnlineAfter == 0 && err == nil && onlineSteady == len(ours) {
		allOnlineAfter = time.Since(T0) // first seen at the steady phase's last listing
	}
	// The steady window starts once every agent has had one full interval.
	steadyFrom := T0.Add(cfg.interval)
	steadyTo := time.Now()
	hbs, mss := sentHB.Snapshot(), sentMS.Snapshot()
	hbSeen, msSeen := seenHB.Snapshot(), seenMS.Snapshot()
	steadySum := proc.Summary(steadyFrom, steadyTo)
	sentRate := windowRate(hbs, T0, steadyFrom, steadyTo)
	seenRate := windowRate(hbSeen, T0, steadyFrom, steadyTo)
	msRate := windowRate(mss, T0, steadyFrom, steadyTo)
	msSeenRate := windowRate(msSeen, T0, steadyFrom, steadyTo)

	// Stop a known subset; exactly those must go offline.
	k := int(math.Ceil(cfg.stopShare * float64(len(agents))))
	var pc presenceCheck
	if k > 0 {
		stopped, running := map[string]bool{}, map[string]bool{}
		for i, a := range agents {
			if i >= len(agents)-k {
				stopped[a.AgentID] = true
				beats.stop(a.AgentID)
				a.Close()
			} else {
				running[a.AgentID] = true
			}
		}
		stopAt := time.Now()
		fmt.Fprintf(env.Out, "[fleet] stopped %d agents; watching the registry…\n", k)
		pc = watchOffline(ctx, t, stopped, running, stopAt, cfg.listEvery, stopAt.Add(cfg.presenceTO+cfg.interval+45*time.Second))
	}
	stopBeats()
	beats.wait()
	stopProgress()
	proc.Stop()

	res.Recorders = append(res.Recorders, sentHB.Snapshot(), seenHB.Snapshot(), sentMS.Snapshot(), seenMS.Snapshot())
	res.Metrics = append(res.Metrics, fleetMetrics(cfg, fleet, len(agents), onlineSteady, allOnlineAfter, pc, k,
		sentRate, seenRate, msRate, msSeenRate, mss)...)
	const mib = 1 << 20
	if proc.HubKnown() {
		res.Metrics = append(res.Metrics, harness.Metric{Name: "hub RSS before the fleet", Unit: "MiB", Value: float64(proc.OriginRSS()) / mib})
		// RSS is what the Go runtime holds, not what it uses: after an
		// earlier load it may shrink while the fleet connects, and the
		// difference then says nothing per agent.
		if grown := max(afterConnect.HubRSSMax, steadySum.HubRSSMax) - proc.OriginRSS(); grown > 0 {
			res.Metrics = append(res.Metrics, harness.Metric{Name: "hub RSS growth per connected agent", Unit: "KiB",
				Value: float64(grown) / float64(len(agents)) / 1024})
		} else {
			res.Notes = append(res.Notes, "the hub's RSS did not grow with the fleet (it held memory from earlier load); run on a fresh hub for the per-agent figure")
		}
	}
	res.Metrics = append(res.Metrics, procMetrics(steadySum, proc.HubKnown())...)
	if allOnlineAfter == 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("the registry never reported every agent online during the %s of telemetry", steady))
	}
	res.Notes = append(res.Notes,
		fmt.Sprintf("steady window for rates and CPU: %s → %s after the telemetry started (every agent had one full interval)",
			steadyFrom.Sub(T0).Round(time.Second), steadyTo.Sub(T0).Round(time.Second)),
		fmt.Sprintf("the hub heard from %d of %d agents; the observer's own subscriptions dropped %d messages", obs.distinct(), len(agents), obs.dropped()),
		fmt.Sprintf("presence polls: GET /agents every %s; offline check: %d polls, %d failed %s; steady listing errors %d %s",
			cfg.listEvery, pc.Polls, pc.Errors, pc.LastErr, listErrs, lastListErr),
		"simulated agents (loadtest/internal/simagent): one leaf TCP connection and one reader goroutine each; the real agent's footprint is BenchmarkAgentFootprint's")
	if !proc.HubKnown() {
		res.Notes = append(res.Notes, "hub process unknown (pass --hub-pid or self-host): CPU figures are the whole machine's, load generator included")
	}
	if n := profiled(); n != "" {
		res.Notes = append(res.Notes, n)
	}
	return res, ctx.Err()
}

// windowRate is the completions per second of s between from and to
// (whole seconds of its per-second series, which starts at origin).
func windowRate(s harness.Stats, origin, from, to time.Time) float64 {
	a, b := int(from.Sub(origin)/time.Second), int(to.Sub(origin)/time.Second)
	if b > len(s.PerSecond) {
		b = len(s.PerSecond)
	}
	if b <= a {
		return 0
	}
	var n int64
	for _, v := range s.PerSecond[a:b] {
		n += v
	}
	return float64(n) / float64(b-a)
}

func fleetMetrics(cfg fleetConfig, fleet *fleetSetup, connected, onlineSteady int, allOnlineAfter time.Duration, pc presenceCheck, k int,
	sentRate, seenRate, msRate, msSeenRate float64, mss harness.Stats) []harness.Metric {
	es, cs := fleet.Enroll.Snapshot(), fleet.Connect.Snapshot()
	online := float64(onlineSteady) / float64(max(connected, 1))
	ms := []harness.Metric{
		harness.Metric{Name: "agents connected to one hub", Unit: "agents", Value: float64(connected)}.
			WithTarget("10,000 agents, all online", connected >= fleetGoal && onlineSteady == connected),
		{Name: "enrollments/s (API)", Unit: "agents/s", Value: float64(es.OK) / fleet.EnrollTook.Seconds()},
		{Name: "enrollment p99", Unit: "ms", Value: es.P99},
		{Name: "leaf connections/s", Unit: "agents/s", Value: float64(cs.OK) / fleet.ConnTook.Seconds()},
		{Name: "leaf handshake p99", Unit: "ms", Value: cs.P99},
		harness.Metric{Name: "heartbeats/s delivered by the hub", Unit: "msg/s", Value: seenRate}.WithBaseline("sent by the agents", sentRate),
		harness.Metric{Name: "metrics samples/s delivered by the hub", Unit: "msg/s", Value: msSeenRate}.WithBaseline("published by the agents", msRate),
		{Name: "metrics PubAck p99 (from due time)", Unit: "ms", Value: mss.P99},
		harness.Metric{Name: "online while heartbeats flow", Unit: "share", Value: online}.WithTarget("all", onlineSteady == connected),
		{Name: "agents not online while heartbeats flow", Unit: "agents", Value: float64(connected - onlineSteady)},
	}
	if allOnlineAfter > 0 {
		ms = append(ms, harness.Metric{Name: "time until every agent was online", Unit: "s", Value: allOnlineAfter.Seconds()})
	}
	if k > 0 {
		bound := cfg.presenceTO + cfg.interval + 5*time.Second + cfg.listEvery // + the hub's sweep (timeout/4, ≤ 5 s) and our poll
		exact := pc.Detected == pc.Stopped && pc.FalseOffline == 0 && pc.AllAfter > 0 && pc.AllAfter <= bound
		ms = append(ms,
			harness.Metric{Name: "stopped agents reported offline", Unit: "agents", Value: float64(pc.Detected)}.
				WithTarget(fmt.Sprintf("exactly the %d stopped, within %s", pc.Stopped, bound), exact),
			harness.Metric{Name: "running agents reported offline (false)", Unit: "agents", Value: float64(pc.FalseOffline)},
			harness.Metric{Name: "first stopped agent offline after", Unit: "s", Value: pc.FirstAfter.Seconds()},
			harness.Metric{Name: "last stopped agent offline after", Unit: "s", Value: pc.AllAfter.Seconds()},
		)
	}
	return ms
}
