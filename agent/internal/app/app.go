// Package app is `infrapilot-agent run`: it wires the agent's parts —
// the outbox (embedded leaf node and its forwarder), the container engine
// client, the collectors (logs, Docker events, metrics), the command
// responder, the nginx controller and its ACME issuer (when enabled), the
// heartbeat and status.json — runs them until its context
// ends, and shuts them down in order. It is what the CLI runs and what
// the end-to-end tests drive.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/infrapilot/infrapilot/agent/internal/acme"
	"github.com/infrapilot/infrapilot/agent/internal/collect"
	"github.com/infrapilot/infrapilot/agent/internal/commands"
	"github.com/infrapilot/infrapilot/agent/internal/docker"
	"github.com/infrapilot/infrapilot/agent/internal/nginx"
	"github.com/infrapilot/infrapilot/agent/internal/outbox"
	"github.com/infrapilot/infrapilot/agent/internal/state"
	"github.com/infrapilot/infrapilot/events"
	"github.com/nats-io/nats.go"
)

// Config configures the agent.
type Config struct {
	// StateDir holds the identity, credentials, positions and outbox.
	StateDir string
	// DockerHost is the engine's address; empty means $DOCKER_HOST, then
	// the default socket.
	DockerHost string
	// MetricsInterval is the sampling period (default 10 s).
	MetricsInterval time.Duration
	// HeartbeatInterval is the heartbeat and status period (default 5 s).
	HeartbeatInterval time.Duration
	// LogFlushInterval bounds how long a log line waits to be batched
	// (default 1 s).
	LogFlushInterval time.Duration
	// OutboxMaxBytes bounds the outbox on disk (default 1 GiB).
	OutboxMaxBytes int64
	// Nginx enables nginx management; nil leaves nginx alone: its
	// operations answer "unavailable" and no desired state is requested.
	Nginx   *NginxConfig
	Version string
	Log     *slog.Logger
}

// NginxConfig is how the agent manages nginx (see package nginx).
type NginxConfig struct {
	// Dir is the directory InfraPilot owns; Root is the same directory as
	// nginx sees it (default Dir).
	Dir, Root string
	// Container names nginx's container; empty means a local nginx.
	Container string
	// Binary is the nginx executable (default "nginx").
	Binary              string
	HTTPPort, HTTPSPort int
	// CheckPort is the check server's port (0: the proxy service's default).
	CheckPort int
	// DriftInterval (default 30 s) and ResyncInterval (default 5 min):
	// see nginx.SyncConfig.
	DriftInterval, ResyncInterval time.Duration
	// CheckTimeout bounds waiting for a reload to show (default 10 s).
	CheckTimeout time.Duration
	// ACMECAFile is a PEM bundle trusted for the ACME server's HTTPS
	// (empty: the system roots).
	ACMECAFile string
}

// App is a configured agent. New checks the state directory and takes
// its lock; Run does the work; Close releases the lock.
type App struct {
	cfg  Config
	dir  state.Dir
	id   state.Identity
	lock *os.File
	log  *slog.Logger

	mu     sync.Mutex
	status state.Status
}

// New opens the state directory (creating it 0700), reads the agent's
// identity and locks the directory against a second agent.
func New(cfg Config) (*App, error) {
	if cfg.MetricsInterval <= 0 {
		cfg.MetricsInterval = 10 * time.Second
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 5 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	dir, err := state.Open(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	id, err := dir.Identity()
	if err != nil {
		return nil, err
	}
	if !events.ValidToken(id.OrgID) || !events.ValidToken(id.AgentID) {
		return nil, fmt.Errorf("app: identity has an invalid org %q or agent %q", id.OrgID, id.AgentID)
	}
	lock, err := dir.Lock()
	if err != nil {
		return nil, err
	}
	return &App{cfg: cfg, dir: dir, id: id, lock: lock,
		log: cfg.Log.With("org_id", id.OrgID, "agent_id", id.AgentID)}, nil
}

// Close releases the state directory.
func (a *App) Close() error { return a.lock.Close() }

// Run runs the agent until ctx ends. It fails only when the agent cannot
// start (the outbox cannot open); a missing engine or hub is reported in
// the status and retried.
func (a *App) Run(ctx context.Context) error {
	org, agentID := a.id.OrgID, a.id.AgentID
	ob, err := outbox.Open(outbox.Config{
		StateDir: a.dir.Path(), Name: "agent-" + agentID, InboxPrefix: events.AgentInbox(org, agentID),
		Leaf:     outbox.LeafConfig{HubURL: a.id.NATSURL, CredsFile: a.dir.CredsPath()},
		MaxBytes: a.cfg.OutboxMaxBytes, Log: a.log,
	})
	if err != nil {
		return err
	}
	defer ob.Close()
	dc, err := docker.New(a.cfg.DockerHost)
	if err != nil {
		return err
	}
	defer dc.Close()
	nc, err := ob.Connect("agent")
	if err != nil {
		return err
	}
	defer nc.Close()

	info := a.info()
	logs, err := collect.NewLogs(collect.LogsConfig{Subject: events.AgentLogs(org, agentID),
		FlushInterval: a.cfg.LogFlushInterval, Log: a.log}, dc, ob, a.dir)
	if err != nil {
		return err
	}
	evs, err := collect.NewEvents(collect.EventsConfig{Subject: events.AgentEvents(org, agentID), Log: a.log}, dc, ob, a.dir)
	if err != nil {
		return err
	}
	metrics, err := collect.NewMetrics(collect.MetricsConfig{Subject: events.AgentMetrics(org, agentID),
		Interval: a.cfg.MetricsInterval, Log: a.log}, dc, ob)
	if err != nil {
		return err
	}
	proxy, err := a.nginx(nc, ob, dc)
	if err != nil {
		return err
	}
	issuer, err := a.acme()
	if err != nil {
		return err
	}
	responder, err := commands.New(commands.Config{OrgID: org, AgentID: agentID, Info: info, Log: a.log,
		Extra: proxyOps(proxy, issuer)}, nc, dc)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.status = state.Status{PID: os.Getpid(), Version: a.cfg.Version, AgentID: agentID, OrgID: org, StartedAt: info.StartedAt}
	a.mu.Unlock()

	// The forwarder outlives the producers: it is stopped last, so what
	// they stored while stopping is forwarded if the link is up.
	fwdCtx, stopFwd := context.WithCancel(context.Background())
	fwdDone := make(chan struct{})
	go func() {
		defer close(fwdDone)
		_ = ob.Run(fwdCtx)
	}()
	var wg sync.WaitGroup
	run := func(name string, fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx); err != nil {
				a.log.Error("agent part stopped", "part", name, "err", err)
			}
		}()
	}
	run("logs", logs.Run)
	run("events", evs.Run)
	run("metrics", metrics.Run)
	run("commands", responder.Run)
	if proxy != nil {
		run("nginx", proxy.Run)
	}
	run("heartbeat", func(ctx context.Context) error {
		a.heartbeat(ctx, nc, ob, dc, logs, info)
		return nil
	})
	a.log.Info("agent running", "hub", a.id.NATSURL, "state_dir", a.dir.Path())
	<-ctx.Done()
	wg.Wait()
	stopFwd()
	<-fwdDone
	a.writeStatus(context.Background(), ob, dc, logs, true)
	a.log.Info("agent stopped")
	return nil
}

// nginx builds the nginx controller and its desired-state sync; nil when
// nginx management is not enabled.
func (a *App) nginx(nc *nats.Conn, ob *outbox.Outbox, dc *docker.Client) (*nginx.Syncer, error) {
	n := a.cfg.Nginx
	if n == nil {
		return nil, nil
	}
	cfg := nginx.Config{Dir: n.Dir, Root: n.Root, Kind: events.NginxKindLocal, Binary: n.Binary,
		HTTPPort: n.HTTPPort, HTTPSPort: n.HTTPSPort, CheckPort: n.CheckPort, CheckTimeout: n.CheckTimeout, Log: a.log.With("part", "nginx")}
	if n.Container != "" {
		cfg.Kind, cfg.Container = events.NginxKindContainer, n.Container
		cfg.Exec = nginx.NewContainerExec(dc, n.Container, n.Binary)
	}
	ctrl, err := nginx.New(cfg)
	if err != nil {
		return nil, err
	}
	return nginx.NewSyncer(nginx.SyncConfig{OrgID: a.id.OrgID, AgentID: a.id.AgentID, LinkUp: ob.LinkUp,
		DriftInterval: n.DriftInterval, ResyncInterval: n.ResyncInterval, Log: cfg.Log}, ctrl, nc, ob)
}

// acme builds the certificate issuer: its HTTP-01 webroot is the one the
// managed nginx serves, so it exists only with nginx management.
func (a *App) acme() (*acme.Issuer, error) {
	n := a.cfg.Nginx
	if n == nil {
		return nil, nil
	}
	dir, err := filepath.Abs(n.Dir)
	if err != nil {
		return nil, err
	}
	return acme.New(acme.Config{StateDir: a.dir.Path(), Webroot: filepath.Join(dir, "acme"),
		CertsDir: filepath.Join(dir, "certs"), CAFile: n.ACMECAFile, Log: a.log.With("part", "acme")})
}

// proxyOps are the nginx and certificate operations of the responder.
// Without nginx management they answer "unavailable", so that the proxy
// service can tell such an agent from one that is down or too old.
func proxyOps(s *nginx.Syncer, iss *acme.Issuer) map[string]commands.Handler {
	disabled := func() error {
		return events.Errorf(events.CodeUnavailable, "nginx management is not enabled on this agent")
	}
	return map[string]commands.Handler{
		events.OpAgentNginxApply: commands.Handle(func(ctx context.Context, d events.NginxDesired) (events.NginxApplyResult, error) {
			if s == nil {
				return events.NginxApplyResult{}, disabled()
			}
			return s.Apply(ctx, d), nil
		}),
		events.OpAgentNginxTest: commands.Handle(func(ctx context.Context, d events.NginxDesired) (events.NginxTestResult, error) {
			if s == nil {
				return events.NginxTestResult{}, disabled()
			}
			return s.Controller().Test(ctx, d), nil
		}),
		events.OpAgentCertIssue: commands.Handle(func(ctx context.Context, req events.CertIssueRequest) (events.CertIssued, error) {
			if iss == nil {
				return events.CertIssued{}, disabled()
			}
			return iss.Issue(ctx, req)
		}),
	}
}

func (a *App) info() events.AgentInfo {
	host, _ := os.Hostname()
	return events.AgentInfo{AgentID: a.id.AgentID, Version: a.cfg.Version, Hostname: host,
		OS: runtime.GOOS, Arch: runtime.GOARCH, StartedAt: time.Now().UTC().Truncate(time.Second)}
}

// heartbeat publishes a heartbeat and refreshes status.json every
// HeartbeatInterval.
func (a *App) heartbeat(ctx context.Context, nc *nats.Conn, ob *outbox.Outbox, dc *docker.Client, logs *collect.Logs, info events.AgentInfo) {
	tick := time.NewTicker(a.cfg.HeartbeatInterval)
	defer tick.Stop()
	for {
		st := a.writeStatus(ctx, ob, dc, logs, false)
		hb := events.AgentHeartbeatMessage{V: events.TelemetryVersion, Time: time.Now().UTC(), AgentInfo: info, OutboxPending: st.Pending}
		hb.Engine = st.Engine
		if b, err := json.Marshal(hb); err == nil && st.LinkUp {
			_ = nc.Publish(events.AgentHeartbeat(a.id.OrgID, a.id.AgentID), b)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (a *App) writeStatus(ctx context.Context, ob *outbox.Outbox, dc *docker.Client, logs *collect.Logs, stopped bool) state.Status {
	s := ob.Stats(ctx)
	a.mu.Lock()
	st := a.status
	a.mu.Unlock()
	st.UpdatedAt = time.Now().UTC()
	st.LinkUp, st.Pending, st.Forwarded, st.Duplicates, st.Dead, st.LastError = s.LinkUp, s.Pending, s.Forwarded, s.Duplicates, s.Dead, s.LastError
	st.Followed = logs.Followed()
	st.Stopped = stopped
	ectx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if e, err := dc.Engine(ectx); err == nil {
		st.Engine, st.EngineErr = e.String(), ""
	} else if !errors.Is(ctx.Err(), context.Canceled) {
		st.EngineErr = events.AsError(err).Message
	}
	if err := a.dir.WriteJSON(state.StatusFile, st); err != nil {
		a.log.Warn("write status", "err", err)
	}
	return st
}
