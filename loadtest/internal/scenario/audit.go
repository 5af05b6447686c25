package scenario

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/loadtest/internal/harness"
	"github.com/infrapilot/infrapilot/loadtest/internal/target"
)

// The audit scenario: mutating API calls across K orgs, and the audit hash
// chain they produce, observed on stream AUDIT.

// auditTargetRatio is the goal of the issue: chained entries per second at
// least a quarter of raw JetStream async publish.
const auditTargetRatio = 0.25

func init() {
	Register(Scenario{
		Name:    "audit",
		Summary: "mutating API calls across K orgs; chained audit entries/s and event→chained latency",
		Description: `Creates --orgs organisations owned by the target's user (through the
tenancy service, with the service credentials), each with its own API key,
then sends mutating API calls open-loop at --rate across them (POST
/orgs/{org}/enrollment-tokens: each appends one domain event, which the audit
service links into the org's hash chain). It observes every org's chain
(audit.chain.<org> on stream AUDIT) with an ordered consumer and measures:
  chained entries/s   entries of the load (event time after its start)
                      over the time from the start to the last one chained
  event→chained       stream time of the chain entry − the event's time
                      (both from the server's clock), p50/p95/p99
  API calls           the open-loop calls' latency and errors
After the load it waits up to --settle for the chain to catch up; entries
still missing then are reported. The orgs are deleted afterwards.

Compared with raw JetStream async publish of the same machine (the baseline
scenario's, or measured inline). Target: ≥ 0.25× raw. Needs the hub's NATS
URL and service credentials (self-hosted: automatic).`,
		Order: 30,
		Flags: func(fs *flag.FlagSet) Runner {
			rate := fs.Float64("rate", 200, "mutating API calls per second, over all orgs")
			orgs := fs.Int("orgs", 10, "organisations the calls are spread over")
			settle := fs.Duration("settle", 30*time.Second, "how long to wait after the load for the chain to catch up")
			maxInFlight := fs.Int("max-in-flight", 2048, "calls pending at once before a due one counts as a backlog error")
			inject := fs.Bool("inject", false, "also measure the chain's capacity with events published straight onto stream "+events.DomainStream(injectService)+" (default: on when self-hosted; it adds synthetic entries to the scratch orgs' chains)")
			injectFor := fs.Duration("inject-duration", 10*time.Second, "how long the chain-capacity phase publishes (at most)")
			injectMax := fs.Int64("inject-max", 300_000, "events the chain-capacity phase publishes at most")
			return func(ctx context.Context, t *target.Target, env Env) (*harness.Result, error) {
				c := auditConfig{rate: *rate, orgs: *orgs, settle: *settle, maxInFlight: *maxInFlight,
					inject: *inject || (t.SelfHosted && !env.IsSet("inject")), injectFor: min(*injectFor, env.Duration), injectMax: *injectMax}
				if env.Short {
					if !env.IsSet("orgs") {
						c.orgs = 4
					}
					if !env.IsSet("settle") {
						c.settle = 15 * time.Second
					}
					if !env.IsSet("inject-max") {
						c.injectMax = 100_000
					}
				}
				return runAudit(ctx, t, env, c)
			}
		},
	})
}

type auditConfig struct {
	rate        float64
	orgs        int
	settle      time.Duration
	maxInFlight int
	inject      bool
	injectFor   time.Duration
	injectMax   int64
}

// auditOrg is one org of the run with its API key.
type auditOrg struct {
	id, key string
}

// setupAuditOrgs creates n orgs owned by the target's user, each with an
// owner API key, 8 at a time.
func setupAuditOrgs(ctx context.Context, t *target.Target, n int) ([]auditOrg, error) {
	if t.UserID == "" {
		return nil, fmt.Errorf("audit: the token's user is unknown (an API key needs the owner or admin role to list keys)")
	}
	owner := events.Actor{Kind: events.ActorUser, ID: t.UserID}
	orgs := make([]auditOrg, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	stamp := time.Now().UTC().Format("150405")
	for i := range orgs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			var org events.OrgSummary
			if err := t.ServiceRequest(ctx, "tenancy", events.OpTenancyCreateOrg, "",
				events.CreateOrgRequest{Name: fmt.Sprintf("loadtest audit %s-%d", stamp, i), OwnerUserID: t.UserID}, &org); err != nil {
				errs <- fmt.Errorf("create org: %w", err)
				return
			}
			var key events.NewAPIKey
			if err := t.ServiceRequestAs(ctx, "auth", events.OpAuthAPIKeyCreate, org.ID, owner, events.RoleOwner,
				events.APIKeyCreateRequest{Name: "infrapilot-loadtest audit", Role: events.RoleOwner}, &key); err != nil {
				errs <- fmt.Errorf("create API key in org %s: %w", org.ID, err)
				return
			}
			orgs[i] = auditOrg{id: org.ID, key: key.Key}
		}(i)
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return orgs, err
	}
	return orgs, nil
}

// deleteAuditOrgs deletes the run's orgs (their tokens go with them).
func deleteAuditOrgs(ctx context.Context, t *target.Target, orgs []auditOrg) int {
	failed := 0
	for _, o := range orgs {
		if o.id == "" {
			continue
		}
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := t.DoAs(dctx, o.key, o.id, http.MethodDelete, "/orgs/"+o.id, nil, nil); err != nil {
			failed++
		}
		cancel()
	}
	return failed
}

func runAudit(ctx context.Context, t *target.Target, env Env, c auditConfig) (*harness.Result, error) {
	if c.orgs < 1 {
		return nil, fmt.Errorf("audit: --orgs must be at least 1")
	}
	if t.NATSURL == "" {
		return nil, fmt.Errorf("audit: %w", target.ErrNoNATS)
	}
	base, notes := NeedBaseline(ctx, t, env, PartJSAsync)
	res := &harness.Result{Scenario: "audit", Started: time.Now().UTC(), Machine: harness.ThisMachine(), Notes: notes,
		Params: map[string]string{"rate": fmt.Sprint(c.rate), "orgs": fmt.Sprint(c.orgs), "duration": env.Duration.String(),
			"settle": c.settle.String(), "call": "POST /orgs/{org}/enrollment-tokens"}}
	start := time.Now()
	fmt.Fprintf(env.Out, "[audit] creating %d orgs with an API key each…\n", c.orgs)
	orgs, err := setupAuditOrgs(ctx, t, c.orgs)
	defer func() {
		if n := deleteAuditOrgs(context.WithoutCancel(ctx), t, orgs); n > 0 {
			fmt.Fprintf(env.Out, "[audit] %d orgs could not be deleted\n", n)
		}
	}()
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	for _, o := range orgs {
		// The first call of each key warms the gateway's caches, and
		// proves the setup before load is put on it.
		if err := t.DoAs(ctx, o.key, o.id, http.MethodGet, "/orgs/"+o.id, nil, nil); err != nil {
			return nil, fmt.Errorf("audit: GET /orgs/%s with its key: %w", o.id, err)
		}
	}

	loadStart := time.Now()
	calls := harness.NewRecorder("api calls", loadStart)
	chained := harness.NewRecorder("chained entries", loadStart)
	lag := harness.NewRecorder("event→chained", loadStart)
	obs, err := observeChains(ctx, t, orgs, loadStart, chained, lag)
	if err != nil {
		return nil, fmt.Errorf("audit: observe AUDIT: %w", err)
	}
	defer obs.stop()

	svcBefore := snapshotEndpoints(ctx, t, hubServices...)
	pctx, stopProgress := context.WithCancel(ctx)
	go harness.Progress(pctx, env.Out, "audit", env.ProgressInterval, calls, chained)
	cpu := harness.StartCPU(CPUGroupsOf(t))
	profiled := HubProfile(ctx, t, env, "audit", env.Duration)
	loop := harness.OpenLoop{Rate: c.rate, Duration: env.Duration, MaxInFlight: c.maxInFlight, Timeout: 10 * time.Second}
	loop.Run(ctx, calls, func(ctx context.Context, i int64) error {
		o := orgs[i%int64(len(orgs))]
		return t.DoAs(ctx, o.key, o.id, http.MethodPost, "/orgs/"+o.id+"/enrollment-tokens",
			map[string]any{"name": fmt.Sprintf("loadtest audit %d", i), "max_uses": 1, "expires_in": "1h"}, nil)
	})
	loadEnd := time.Now()
	uses := cpu.Stop()
	svcNote := endpointNotes(svcBefore, snapshotEndpoints(ctx, t, hubServices...), loadEnd.Sub(loadStart), 4)
	// Wait for the chain to catch up with every successful call.
	want := calls.Snapshot().OK
	settleEnd := time.Now().Add(c.settle)
	for obs.count() < want && time.Now().Before(settleEnd) && ctx.Err() == nil {
		// Polling the observer's count: the chain's progress is the
		// effect being waited for.
		time.Sleep(100 * time.Millisecond)
	}
	stopProgress()
	obs.stop()

	cs, ch, ls := calls.Snapshot(), chained.Snapshot(), lag.Snapshot()
	res.Recorders = []harness.Stats{cs, ch, ls}
	res.Duration = time.Since(start)
	n, last := obs.result()
	var rate float64
	if n > 0 && last.After(loadStart) {
		rate = float64(n) / last.Sub(loadStart).Seconds()
	}
	res.Metrics = append(res.Metrics, chainMetric("chained entries (API path, bounded by the offered call rate)", rate, base, false),
		harness.Metric{Name: "api calls completed", Unit: "req/s", Value: cs.Rate(loadEnd.Sub(loadStart))}.WithBaseline("req/s offered", c.rate),
		harness.Metric{Name: "event→chained p50", Unit: "ms", Value: ls.P50},
		harness.Metric{Name: "event→chained p99", Unit: "ms", Value: ls.P99},
		harness.Metric{Name: "api call p99", Unit: "ms", Value: cs.P99},
		harness.Metric{Name: "api call errors", Value: float64(cs.Errors)},
	)
	// Calls that timed out on the client may still have been carried out:
	// entries are compared with every call sent (backlogged ones never were).
	if sent := cs.OK + cs.Errors - cs.ByKind["backlog"]; sent > 0 {
		res.Metrics = append(res.Metrics, harness.Metric{Name: "entries per call sent", Value: float64(n) / float64(sent)})
	}
	if n < cs.OK {
		res.Notes = append(res.Notes, fmt.Sprintf("%d successful calls had no chain entry %s after the load ended", cs.OK-n, c.settle))
	}
	if note := harness.CPUNote(uses); note != "" {
		res.Notes = append(res.Notes, "API path: "+note)
	}
	if note := profiled(); note != "" {
		res.Notes = append(res.Notes, "API path: "+note)
	}
	if svcNote != "" {
		res.Notes = append(res.Notes, "API path: "+svcNote)
	}
	if c.inject && ctx.Err() == nil {
		fmt.Fprintf(env.Out, "[audit] chain capacity: publishing events straight onto %s for %s (at most %d)…\n", events.DomainStream(injectService), c.injectFor, c.injectMax)
		stats, crate, notes, err := chainCapacity(ctx, t, env, orgs, c.injectFor, c.settle, c.injectMax)
		if err != nil {
			res.Notes = append(res.Notes, fmt.Sprintf("chain capacity phase failed: %v", err))
		} else {
			res.Recorders = append(res.Recorders, stats...)
			res.Metrics = append(res.Metrics, chainMetric("chained entries (chain capacity)", crate, base, true),
				harness.Metric{Name: "event→chained p99 (chain capacity, incl. queueing)", Unit: "ms", Value: stats[2].P99})
			res.Notes = append(res.Notes, notes...)
		}
	} else if !c.inject {
		res.Notes = append(res.Notes, "chain capacity phase not run (--inject: it is on by default only for a self-hosted target)")
	}
	res.Duration = time.Since(start)
	return res, ctx.Err()
}

// chainMetric is a chained-entries rate beside raw async publish; judge
// adds the target, which only a capacity measurement can be held
// to (the API path chains exactly what the offered call rate produces).
func chainMetric(name string, rate float64, base *Baseline, judge bool) harness.Metric {
	m := harness.Metric{Name: name, Unit: "entries/s", Value: rate}
	if base.JSAsyncPublish > 0 {
		m = m.WithBaseline("msg/s jetstream async publish", base.JSAsyncPublish)
	}
	if base.JSAsyncPublish > 0 && judge {
		m = m.WithTarget(fmt.Sprintf("≥ %.2f× raw", auditTargetRatio), m.Ratio >= auditTargetRatio)
	}
	return m
}
