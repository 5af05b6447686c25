package scenario

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/infrapilot/infrapilot/loadtest/internal/harness"
	"github.com/infrapilot/infrapilot/loadtest/internal/simagent"
	"github.com/infrapilot/infrapilot/loadtest/internal/target"
)

// What the fleet scenarios (logs, commands, fleet) share: a run id, and
// a fleet of simulated agents enrolled through the API and connected to
// the hub's leafnode port. The agents are simagent's simulated agents,
// not the real agent (whose own footprint BenchmarkAgentFootprint in
// agent/internal/app measures).

// fleetRunID names one run: enrollment fingerprints, host names and log
// markers carry it, so runs never collide.
func fleetRunID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "lt" + hex.EncodeToString(b[:])
}

// defaultPerToken is how many simulated machines share an enrollment
// token unless a flag says otherwise.
const defaultPerToken = 100

// fleetSetup is what setting up a fleet measured.
type fleetSetup struct {
	Agents     []*simagent.Agent
	Enroll     *harness.Recorder
	Connect    *harness.Recorder
	EnrollTook time.Duration
	ConnTook   time.Duration
	Connected  int
	Notes      []string
}

// fleetSpec sizes a fleet.
type fleetSpec struct {
	Agents, Containers int
	// EnrollParallel and ConnectParallel bound concurrent enrollments and
	// leaf handshakes; PerToken is how many machines share an
	// enrollment token (simagent.EnrollOptions).
	EnrollParallel, ConnectParallel, PerToken int
}

// setupFleet moves the org to the enterprise plan (unlimited agents;
// through the tenancy service with the target's service credentials),
// enrolls n simulated agents through the API and connects them, with
// progress lines. Agents that failed to connect are dropped from Agents
// (and counted as connect errors). The caller closes the agents.
func setupFleet(ctx context.Context, t *target.Target, env Env, name, run string, spec fleetSpec) (*fleetSetup, error) {
	n := spec.Agents
	fs := &fleetSetup{}
	if err := t.SetPlan(ctx, t.OrgID, "enterprise"); err != nil {
		// Without service credentials the org stays on its plan, whose
		// agent limit may refuse the fleet; enrollment then says so.
		fs.Notes = append(fs.Notes, fmt.Sprintf("could not move the org to the enterprise plan (%v); the plan's agent limit applies", err))
	}
	start := time.Now()
	fs.Enroll = harness.NewRecorder("enroll", start)
	pctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		harness.Progress(pctx, env.Out, name+" enroll", env.ProgressInterval, fs.Enroll)
	}()
	ids, err := simagent.EnrollMany(ctx, t, n, simagent.EnrollOptions{Run: run, Parallel: spec.EnrollParallel,
		PerToken: spec.PerToken, Rec: fs.Enroll})
	fs.EnrollTook = time.Since(start)
	stop()
	<-done
	if err != nil {
		return fs, err
	}
	fmt.Fprintf(env.Out, "[%s] enrolled %d agents in %s (%s/s)\n", name, n, fs.EnrollTook.Round(time.Millisecond),
		harness.FormatValue(float64(n)/fs.EnrollTook.Seconds()))

	agents := make([]*simagent.Agent, n)
	for i, id := range ids {
		agents[i] = simagent.New(id, spec.Containers)
	}
	start = time.Now()
	fs.Connect = harness.NewRecorder("connect", start)
	pctx, stop = context.WithCancel(ctx)
	done = make(chan struct{})
	go func() {
		defer close(done)
		harness.Progress(pctx, env.Out, name+" connect", env.ProgressInterval, fs.Connect)
	}()
	fs.Connected = simagent.ConnectMany(ctx, agents, simagent.ConnectOptions{LeafURL: t.LeafURL, Parallel: spec.ConnectParallel,
		Retries: 5, Rec: fs.Connect})
	fs.ConnTook = time.Since(start)
	stop()
	<-done
	for _, a := range agents {
		if a.Conn() != nil {
			fs.Agents = append(fs.Agents, a)
		}
	}
	fmt.Fprintf(env.Out, "[%s] connected %d of %d agents to the hub's leafnode port in %s (%s/s)\n", name, fs.Connected, n,
		fs.ConnTook.Round(time.Millisecond), harness.FormatValue(float64(fs.Connected)/fs.ConnTook.Seconds()))
	if fs.Connected == 0 {
		s := fs.Connect.Snapshot()
		return fs, fmt.Errorf("no simulated agent could connect to the hub (last error: %s)", s.LastError)
	}
	return fs, ctx.Err()
}

// closeFleet disconnects every agent.
func closeFleet(agents []*simagent.Agent) {
	for _, a := range agents {
		a.Close()
	}
}

// pick returns the setting a run uses: the flag's value when given, the
// short value under --short, else the flag's default.
func fleetPick[T any](env Env, flag string, value, short T) T {
	if env.Short && !env.IsSet(flag) {
		return short
	}
	return value
}

// fleetProgress prints progress lines for recs until the returned stop is
// called.
func fleetProgress(ctx context.Context, env Env, name string, recs ...*harness.Recorder) (stop func()) {
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); harness.Progress(pctx, env.Out, name, env.ProgressInterval, recs...) }()
	return func() { cancel(); <-done }
}

// fleetSleep waits d or until ctx ends (pacing, not waiting for an effect).
func fleetSleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
