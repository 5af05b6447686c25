package scenario

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/loadtest/internal/harness"
	"github.com/infrapilot/infrapilot/loadtest/internal/simagent"
	"github.com/infrapilot/infrapilot/loadtest/internal/target"
	"github.com/nats-io/nats.go"
)

// commandsGoalP99 is issue 8's target for a command round trip.
const commandsGoalP99 = 25.0 // ms

// commandsConfig is the commands scenario's flags.
type commandsConfig struct {
	agents, containers int
	rate, restartShare float64
	baselineDuration   time.Duration
	enrollPar, hubPID  int
}

func init() {
	Register(Scenario{
		Name:    "commands",
		Summary: "gateway→agent→reply round trips through the leaf node (container list, restart); p50/p99",
		Description: `Connects --agents simulated agents (real enrollment; simulated: they answer
from synthetic containers at once, see loadtest/internal/simagent) and sends,
open-loop at --rate requests/s for --duration, through the gateway:
  GET  /agents/{id}/containers                  (share 1 - --restart-share)
  POST /agents/{id}/containers/{cid}/restart    (share --restart-share)
spread over the agents. Each is a gateway request that resolves the agent
(tenancy), sends the command on the agent's subject, crosses the hub's
account import and the leaf connection, and returns the agent's reply.
Latency from each request's scheduled time (no coordinated omission).

Baseline: the same command as a raw NATS request from a service connection
(APP account) to the agent's command subject, through the same hub and leaf
connection, open-loop at the same rate for --baseline-duration: the leaf hop
without the gateway and the registry lookup. Target: p99 < 25 ms.`,
		Order: 50,
		Flags: func(fs *flag.FlagSet) Runner {
			var c commandsConfig
			fs.IntVar(&c.agents, "agents", 10, "simulated agents the commands are spread over (--short: 4)")
			fs.IntVar(&c.containers, "containers", 8, "synthetic containers per agent")
			fs.Float64Var(&c.rate, "rate", 200, "requests per second through the gateway (--short: 100)")
			fs.Float64Var(&c.restartShare, "restart-share", 0.2, "share of the requests that are restarts (the rest list containers)")
			fs.DurationVar(&c.baselineDuration, "baseline-duration", 0, "length of the raw NATS baseline (0: --duration, at most 10s)")
			fs.IntVar(&c.enrollPar, "enroll-parallel", 8, "concurrent enrollments")
			fs.IntVar(&c.hubPID, "hub-pid", 0, hubPIDUsage)
			return func(ctx context.Context, t *target.Target, env Env) (*harness.Result, error) {
				cfg := c
				cfg.agents = fleetPick(env, "agents", c.agents, 4)
				cfg.rate = fleetPick(env, "rate", c.rate, 100)
				if cfg.baselineDuration <= 0 {
					cfg.baselineDuration = min(env.Duration, 10*time.Second)
				}
				return runCommands(ctx, t, env, cfg)
			}
		},
	})
}

func runCommands(ctx context.Context, t *target.Target, env Env, cfg commandsConfig) (*harness.Result, error) {
	if cfg.agents < 1 || cfg.rate <= 0 || cfg.restartShare < 0 || cfg.restartShare > 1 {
		return nil, errors.New("commands: --agents and --rate must be positive, --restart-share within 0..1")
	}
	run := fleetRunID()
	res := &harness.Result{Scenario: "commands", Started: time.Now().UTC(), Machine: harness.ThisMachine(), Params: map[string]string{
		"agents": fmt.Sprint(cfg.agents), "rate": harness.FormatValue(cfg.rate), "restart_share": fmt.Sprint(cfg.restartShare),
		"duration": env.Duration.String(), "baseline_duration": cfg.baselineDuration.String(), "run": run}}
	began := time.Now()
	defer func() { res.Duration = time.Since(began) }()

	fleet, err := setupFleet(ctx, t, env, "commands", run, fleetSpec{Agents: cfg.agents, Containers: cfg.containers,
		EnrollParallel: cfg.enrollPar, ConnectParallel: 32, PerToken: defaultPerToken})
	if fleet != nil {
		defer closeFleet(fleet.Agents)
		res.Notes = append(res.Notes, fleet.Notes...)
	}
	if err != nil {
		return res, err
	}
	agents := fleet.Agents

	// One untimed round trip per agent: the gateway's first lookup of an
	// agent and the HTTP connections are not what is measured.
	for _, a := range agents {
		if err := t.Do(ctx, http.MethodGet, "/agents/"+a.AgentID+"/containers", nil, nil); err != nil {
			return res, fmt.Errorf("commands: warm-up GET /agents/%s/containers: %w", a.AgentID, err)
		}
	}

	pid, dataDir := hubProcess(cfg.hubPID, t)
	proc := startProcSampler(ctx, pid, dataDir, time.Second)
	defer proc.Stop()
	start := time.Now()
	list := harness.NewRecorder("GET containers", start)
	restart := harness.NewRecorder("POST restart", start)
	stop := fleetProgress(ctx, env, "commands", list, restart)
	profiled := HubProfile(ctx, t, env, "commands", env.Duration)
	var wg sync.WaitGroup
	listRate, restartRate := cfg.rate*(1-cfg.restartShare), cfg.rate*cfg.restartShare
	wg.Add(2)
	go func() {
		defer wg.Done()
		harness.OpenLoop{Rate: listRate, Duration: env.Duration}.Run(ctx, list, func(ctx context.Context, i int64) error {
			a := agents[int(i)%len(agents)]
			var out events.List[events.Container]
			if err := t.Do(ctx, http.MethodGet, "/agents/"+a.AgentID+"/containers", nil, &out); err != nil {
				return err
			}
			if len(out.Items) == 0 {
				return errors.New("empty container list")
			}
			return nil
		})
	}()
	go func() {
		defer wg.Done()
		harness.OpenLoop{Rate: restartRate, Duration: env.Duration}.Run(ctx, restart, func(ctx context.Context, i int64) error {
			a := agents[int(i)%len(agents)]
			cs := a.Containers()
			c := cs[int(i/int64(len(agents)))%len(cs)]
			var out events.Container
			if err := t.Do(ctx, http.MethodPost, "/agents/"+a.AgentID+"/containers/"+c.Name+"/restart", nil, &out); err != nil {
				return err
			}
			if out.ID != c.ID || out.State != "running" {
				return fmt.Errorf("restart answered container %q in state %q", out.ID, out.State)
			}
			return nil
		})
	}()
	wg.Wait()
	loadEnd := time.Now()
	stop()
	proc.Stop()
	ls, rs := list.Snapshot(), restart.Snapshot()
	res.Recorders = append(res.Recorders, fleet.Enroll.Snapshot(), fleet.Connect.Snapshot(), ls, rs)

	// Baseline: the leaf hop alone, from a service connection.
	raw := harness.NewRecorder("raw NATS request to the agent", time.Now())
	if err := commandsBaseline(ctx, t, env, agents, cfg, raw); err != nil {
		res.Notes = append(res.Notes, "raw NATS baseline not measured: "+err.Error())
	}
	bs := raw.Snapshot()
	res.Recorders = append(res.Recorders, bs)

	all := ls.P99
	if rs.Samples > 0 {
		all = max(ls.P99, rs.P99)
	}
	withBase := func(m harness.Metric, v float64) harness.Metric {
		if bs.Samples > 0 {
			return m.WithBaseline("raw NATS request", v)
		}
		return m
	}
	elapsed := loadEnd.Sub(start)
	res.Metrics = append(res.Metrics,
		harness.Metric{Name: "command round trips/s (ok)", Unit: "req/s", Value: float64(ls.OK+rs.OK) / elapsed.Seconds()},
		withBase(harness.Metric{Name: "GET containers p50", Unit: "ms", Value: ls.P50}, bs.P50),
		withBase(harness.Metric{Name: "GET containers p99", Unit: "ms", Value: ls.P99}, bs.P99).
			WithTarget("p99 < 25 ms", ls.Samples > 0 && ls.P99 < commandsGoalP99),
		withBase(harness.Metric{Name: "POST restart p50", Unit: "ms", Value: rs.P50}, bs.P50),
		withBase(harness.Metric{Name: "POST restart p99", Unit: "ms", Value: rs.P99}, bs.P99).
			WithTarget("p99 < 25 ms", rs.Samples > 0 && rs.P99 < commandsGoalP99),
		harness.Metric{Name: "errors", Unit: "requests", Value: float64(ls.Errors + rs.Errors)},
	)
	res.Metrics = append(res.Metrics, procMetrics(proc.Summary(start, loadEnd), proc.HubKnown())...)
	res.Notes = append(res.Notes,
		fmt.Sprintf("worst p99 of the two operations: %.2f ms (target < %.0f ms)", all, commandsGoalP99),
		"simulated agents answer from memory at once: the figures are InfraPilot's path (gateway, tenancy lookup, hub, leaf), not a container engine's restart time",
		"ratios are gateway latency ÷ raw NATS latency (above 1: what the gateway and the registry lookup add)")
	if n := profiled(); n != "" {
		res.Notes = append(res.Notes, n)
	}
	return res, ctx.Err()
}

// commandsBaseline sends containers.list as raw NATS requests from a
// service connection straight to the agents' command subjects, open-loop
// at the scenario's rate.
func commandsBaseline(ctx context.Context, t *target.Target, env Env, agents []*simagent.Agent, cfg commandsConfig, rec *harness.Recorder) error {
	nc, err := t.NATS(ctx)
	if err != nil {
		return err
	}
	defer nc.Close()
	body, _ := json.Marshal(events.ContainersListRequest{})
	for _, a := range agents { // warm-up, as for the gateway
		if _, err := nc.RequestWithContext(ctx, events.AgentCommand(a.OrgID, a.AgentID, events.OpAgentContainersList), body); err != nil {
			return fmt.Errorf("warm-up request to %s: %w", a.AgentID, err)
		}
	}
	stop := fleetProgress(ctx, env, "commands baseline", rec)
	defer stop()
	harness.OpenLoop{Rate: cfg.rate, Duration: cfg.baselineDuration}.Run(ctx, rec, func(ctx context.Context, i int64) error {
		a := agents[int(i)%len(agents)]
		m := nats.NewMsg(events.AgentCommand(a.OrgID, a.AgentID, events.OpAgentContainersList))
		m.Data = body
		if dl, ok := ctx.Deadline(); ok {
			m.Header.Set(events.HeaderDeadline, dl.UTC().Format(time.RFC3339Nano))
		}
		reply, err := nc.RequestMsgWithContext(ctx, m)
		if err != nil {
			return err
		}
		if code := reply.Header.Get(events.HeaderServiceErrorCode); code != "" {
			return fmt.Errorf("agent answered %s: %s", code, reply.Header.Get(events.HeaderServiceError))
		}
		return nil
	})
	return nil
}
