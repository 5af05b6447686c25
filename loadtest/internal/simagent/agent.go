// Package simagent is a SIMULATED InfraPilot agent for load tests: it
// enrolls for real (an enrollment token, POST /agents/enroll, real scoped
// NATS credentials) and then speaks the leafnode protocol to the hub
// directly over one TCP connection, with one reader goroutine, instead of
// running an embedded nats-server, a JetStream outbox and a container
// engine as the real agent (agent/) does. That is what lets 10,000 of
// them fit in one process and measures the hub, not the agents.
//
// What it sends is what the real agent sends, on the same subjects with
// the same bodies and headers: heartbeats (core NATS), metrics and log
// batches (JetStream publishes with a Nats-Msg-Id and a reply subject on
// the agent's private inbox, where the hub's PubAck arrives from domain
// "hub"), and it answers commands with the services' reply convention.
// Its containers are synthetic; a restart answers at once.
//
// The real agent's own cost (RSS, CPU per MiB/s of logs) is measured
// separately, by BenchmarkAgentFootprint in agent/internal/app.
package simagent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/infrapilot/infrapilot/events"
)

// Version is the agent version simulated agents report.
const Version = "loadtest-sim"

// Agent is one enrolled simulated agent and, once Connect succeeded, its
// link to the hub.
type Agent struct {
	Identity

	containers []events.Container
	listAll    []byte // JSON of List[Container] with stopped ones
	listUp     []byte // running ones only
	started    time.Time

	mu   sync.Mutex
	conn *Conn

	// Commands counts the commands this agent answered.
	Commands atomic.Int64
}

// New prepares a simulated agent for an enrolled identity, with
// containers synthetic containers (at least one).
func New(id Identity, containers int) *Agent {
	a := &Agent{Identity: id, started: time.Now().UTC()}
	if containers < 1 {
		containers = 1
	}
	created := a.started.Add(-time.Hour)
	for i := range containers {
		state, status := "running", "Up About an hour"
		if i%5 == 4 {
			state, status = "exited", "Exited (0) 5 minutes ago"
		}
		stack := fmt.Sprintf("stack%d", i/3)
		a.containers = append(a.containers, events.Container{
			ID:   containerID(id.AgentID, i),
			Name: fmt.Sprintf("%s-svc%d-1", stack, i%3), Image: "registry.example.com/app:1." + fmt.Sprint(i),
			Command: "/app/server --port 8080", State: state, Status: status, Created: created,
			Labels: map[string]string{"com.docker.compose.project": stack, "com.docker.compose.service": fmt.Sprintf("svc%d", i%3)},
			Stack:  stack, Service: fmt.Sprintf("svc%d", i%3),
			Ports: []events.Port{{PrivatePort: 8080, Type: "tcp"}}, Networks: []string{stack + "_default"},
		})
	}
	var up []events.Container
	for _, c := range a.containers {
		if c.State == "running" {
			up = append(up, c)
		}
	}
	a.listAll, _ = json.Marshal(events.List[events.Container]{Items: a.containers})
	a.listUp, _ = json.Marshal(events.List[events.Container]{Items: up})
	return a
}

// containerID is a stable 64-hex-digit id, like an engine's.
func containerID(agent string, i int) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s/%d", agent, i))
	return hex.EncodeToString(h[:])
}

// Containers are the agent's synthetic containers.
func (a *Agent) Containers() []events.Container { return a.containers }

// Connect dials the hub's leafnode port with the agent's credentials;
// leafURL overrides the enrollment's (empty: the enrollment's).
func (a *Agent) Connect(ctx context.Context, leafURL string) error {
	if leafURL == "" {
		leafURL = a.LeafURL
	}
	c, err := Dial(ctx, leafURL, a.OrgID, a.AgentID, a.Creds, DialOptions{Name: "sim-" + a.AgentID, Handler: a.command})
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.conn = c
	a.mu.Unlock()
	return nil
}

// Conn is the agent's link (nil before Connect).
func (a *Agent) Conn() *Conn {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.conn
}

// Close disconnects the agent.
func (a *Agent) Close() {
	if c := a.Conn(); c != nil {
		_ = c.Close()
	}
}

// Info is what the agent reports about itself.
func (a *Agent) Info() events.AgentInfo {
	return events.AgentInfo{AgentID: a.AgentID, Version: Version, Hostname: a.Hostname, OS: "linux", Arch: runtime.GOARCH,
		StartedAt: a.started, Engine: "simulated 1.0"}
}

// Heartbeat publishes one heartbeat (core NATS, as the real agent does:
// a stale heartbeat is worthless, so it is not queued anywhere).
func (a *Agent) Heartbeat(now time.Time) error {
	c := a.Conn()
	if c == nil {
		return ErrClosed
	}
	b, err := json.Marshal(events.AgentHeartbeatMessage{V: events.TelemetryVersion, Time: now.UTC(), AgentInfo: a.Info()})
	if err != nil {
		return err
	}
	return c.Publish(events.AgentHeartbeat(a.OrgID, a.AgentID), "", nil, b)
}

// Metrics publishes one metrics sample into the hub's METRICS stream
// (JetStream, with the real agent's Nats-Msg-Id scheme); cb gets the
// PubAck or the error.
func (a *Agent) Metrics(now time.Time, cb func(PubAck, error)) {
	c := a.Conn()
	if c == nil {
		cb(PubAck{}, ErrClosed)
		return
	}
	now = now.UTC()
	m := events.AgentMetricsMessage{V: events.TelemetryVersion, Time: now, Host: events.HostMetrics{
		CPUPercent: 12.5, CPUs: 4, Load1: 0.4, Load5: 0.3, Load15: 0.2, MemTotal: 8 << 30, MemUsed: 3 << 30, MemPercent: 37.5,
		Disks:      []events.DiskUsage{{Path: "/", FSType: "ext4", Total: 100 << 30, Used: 40 << 30, Percent: 40}},
		NetRxBytes: uint64(now.Unix()) * 1000, NetTxBytes: uint64(now.Unix()) * 800, NetRxRate: 1000, NetTxRate: 800,
		UptimeSeconds: uint64(time.Since(a.started).Seconds()),
	}, Containers: []events.ContainerStats{}}
	for _, ct := range a.containers {
		if ct.State != "running" {
			continue
		}
		m.Containers = append(m.Containers, events.ContainerStats{ID: ct.ID, Name: ct.Name, CPUPercent: 1.5, MemUsage: 64 << 20,
			MemLimit: 8 << 30, MemPercent: 0.8, NetRxBytes: 1 << 20, NetTxBytes: 1 << 19, PIDs: 7})
	}
	b, err := json.Marshal(m)
	if err != nil {
		cb(PubAck{}, err)
		return
	}
	subject := events.AgentMetrics(a.OrgID, a.AgentID)
	c.PublishJS(subject, MetricsID(subject, now), b, cb)
}

// command answers one command on the reader goroutine (every answer is
// synthetic and immediate, so nothing blocks the link).
func (a *Agent) command(c *Conn, m Msg) {
	a.Commands.Add(1)
	op := strings.TrimPrefix(m.Subject, events.AgentCommand(a.OrgID, a.AgentID, ""))
	resp, err := a.answer(op, m.Data)
	_ = c.Reply(m, resp, err)
}

func (a *Agent) answer(op string, body []byte) (any, error) {
	switch op {
	case events.OpAgentPing:
		return a.Info(), nil
	case events.OpAgentContainersList:
		var req events.ContainersListRequest
		if err := decodeStrict(body, &req); err != nil {
			return nil, err
		}
		if req.All {
			return a.listAll, nil
		}
		return a.listUp, nil
	case events.OpAgentContainerInspect:
		var req events.ContainerRef
		if err := decodeStrict(body, &req); err != nil {
			return nil, err
		}
		ct, err := a.find(req.ID)
		if err != nil {
			return nil, err
		}
		return events.ContainerDetail{Container: ct, RestartCount: 0, PID: 4242}, nil
	case events.OpAgentContainerStart, events.OpAgentContainerStop, events.OpAgentContainerRestart:
		var req events.ContainerStopRequest
		if err := decodeStrict(body, &req); err != nil {
			return nil, err
		}
		if req.Timeout != nil && (*req.Timeout < 0 || *req.Timeout > 600) {
			return nil, events.Invalid("timeout must be between 0 and 600 seconds").
				WithFields(events.FieldError{Field: "timeout", Message: "between 0 and 600"})
		}
		ct, err := a.find(req.ID)
		if err != nil {
			return nil, err
		}
		if op == events.OpAgentContainerStop {
			ct.State, ct.Status = "exited", "Exited (0) Less than a second ago"
		} else {
			ct.State, ct.Status = "running", "Up Less than a second"
		}
		return ct, nil
	}
	return nil, events.NotFound("unknown operation %q", op)
}

// find resolves a container by id, unique id prefix or name, as the real
// agent does.
func (a *Agent) find(ref string) (events.Container, error) {
	var found []events.Container
	for _, c := range a.containers {
		if c.ID == ref || c.Name == ref {
			return c, nil
		}
		if ref != "" && strings.HasPrefix(c.ID, ref) {
			found = append(found, c)
		}
	}
	if len(found) == 1 {
		return found[0], nil
	}
	return events.Container{}, events.NotFound("container %q not found", ref)
}

// decodeStrict decodes a request as the real responder does: unknown
// fields and trailing data are rejected, an empty body is the zero value.
func decodeStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return events.Invalid("malformed request body: %v", err)
	}
	if dec.More() {
		return events.Invalid("malformed request body: trailing data")
	}
	return nil
}
