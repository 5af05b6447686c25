package proxy_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/servicetest"
	"github.com/nats-io/nats.go"
)

// fakeAgent is a SCRIPTED STAND-IN for infrapilot-agent: a subscriber on
// the agent's command subjects that records every command it gets and
// answers as the agent's contract (events/api_nginx.go, api_agent.go)
// says, with outcomes the test sets. It runs no nginx and no ACME: the
// real agent applying real configurations to a real nginx and obtaining
// certificates from a real pebble is exercised end to end elsewhere (the
// agent's own tests and the infrapilot end-to-end test).
type fakeAgent struct {
	h   *harness
	org string
	id  string

	mu    sync.Mutex
	calls []agentCall
	// failHosts makes an apply fail these hosts with nginx's message.
	failHosts map[string]string
	// applyError fails a whole apply (Applied false, Error set).
	applyError string
	// publish also reports applies as nginx.applied events on
	// AGENT_EVENTS, as the real agent does through its outbox.
	publish bool
	// certError makes cert.issue fail with this reason.
	certError string
	// certValid is the lifetime of issued certificates (90 days).
	certValid time.Duration
	// info is what the agent reports about its nginx in apply results.
	info     events.NginxAgentInfo
	networks []events.Network
}

// agentCall is one command the stand-in received.
type agentCall struct {
	Op   string
	Data []byte
}

// agent enrolls a stand-in agent in org (in the stand-in tenancy) and
// starts answering its commands.
func (h *harness) agent(org string) *fakeAgent {
	h.t.Helper()
	a := &fakeAgent{h: h, org: org, id: newID(), failHosts: map[string]string{}, certValid: 90 * 24 * time.Hour,
		info: events.NginxAgentInfo{Enabled: true, Kind: events.NginxKindLocal, Root: "/var/lib/infrapilot-nginx", Version: "1.22.1"}}
	h.tenancy.add(org, a.id)
	prefix := strings.TrimSuffix(events.AgentCommands(org, a.id), ">")
	sub, err := h.nc.Subscribe(events.AgentCommands(org, a.id), func(m *nats.Msg) {
		a.serve(strings.TrimPrefix(m.Subject, prefix), m)
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = sub.Unsubscribe() })
	return a
}

func (a *fakeAgent) serve(op string, m *nats.Msg) {
	a.mu.Lock()
	a.calls = append(a.calls, agentCall{Op: op, Data: append([]byte(nil), m.Data...)})
	a.mu.Unlock()
	switch op {
	case events.OpAgentNginxApply:
		var d events.NginxDesired
		if err := json.Unmarshal(m.Data, &d); err != nil {
			a.fail(m, events.Invalid("bad desired state: %v", err))
			return
		}
		res := a.apply(d)
		if a.publishing() {
			a.h.publishEvent(a.org, a.id, events.AgentNginxEvent{V: 1, Kind: events.AgentEventKindNginxApplied, Time: time.Now(), Result: &res})
		}
		a.reply(m, res)
	case events.OpAgentNginxTest:
		a.reply(m, events.NginxTestResult{OK: true, Output: "nginx: configuration file test is successful"})
	case events.OpAgentCertIssue:
		var req events.CertIssueRequest
		_ = json.Unmarshal(m.Data, &req)
		a.mu.Lock()
		reason, valid := a.certError, a.certValid
		a.mu.Unlock()
		if reason != "" {
			a.fail(m, events.Errorf(events.CodeUnavailable, "%s", reason))
			return
		}
		// The CA's clock is the test's: a certificate issued after the
		// clock moved on is valid from then.
		now := a.h.clock.Now().UTC().Truncate(time.Second)
		a.reply(m, events.CertIssued{HostID: req.HostID, Domains: req.Domains, NotBefore: now, NotAfter: now.Add(valid),
			Issuer: "Pebble Intermediate CA 1a2b3c", Serial: "0a1b2c"})
	case events.OpAgentNetworksList:
		a.mu.Lock()
		nets := append([]events.Network{}, a.networks...)
		a.mu.Unlock()
		a.reply(m, events.List[events.Network]{Items: nets})
	case events.OpAgentNetworkConnect, events.OpAgentNetworkDisconnect:
		a.reply(m, events.Empty{})
	default:
		a.fail(m, events.NotFound("unknown command %s", op))
	}
}

// apply answers an apply: every host file applied, except the scripted
// failures.
func (a *fakeAgent) apply(d events.NginxDesired) events.NginxApplyResult {
	a.mu.Lock()
	defer a.mu.Unlock()
	res := events.NginxApplyResult{V: 1, Revision: d.Revision, Applied: a.applyError == "", Error: a.applyError,
		Nginx: a.info, AppliedAt: time.Now().UTC(), Hosts: []events.NginxHostResult{}}
	if a.applyError != "" {
		return res
	}
	for _, f := range d.Files {
		if f.HostID == "" {
			continue
		}
		hr := events.NginxHostResult{HostID: f.HostID, Status: events.NginxHostApplied}
		if msg, ok := a.failHosts[f.HostID]; ok {
			hr.Status, hr.Error = events.NginxHostFailed, msg
		}
		res.Hosts = append(res.Hosts, hr)
	}
	return res
}

func (a *fakeAgent) publishing() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.publish
}

func (a *fakeAgent) reply(m *nats.Msg, v any) {
	b, _ := json.Marshal(v)
	_ = m.Respond(b)
}

// fail answers with an agent's error reply (micro style).
func (a *fakeAgent) fail(m *nats.Msg, e *events.Error) {
	r := nats.NewMsg(m.Reply)
	r.Header.Set(events.HeaderServiceErrorCode, string(e.Code))
	r.Header.Set(events.HeaderServiceError, e.Message)
	r.Data, _ = json.Marshal(e)
	_ = m.RespondMsg(r)
}

// set changes the stand-in's script.
func (a *fakeAgent) set(fn func(a *fakeAgent)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fn(a)
}

// got returns the commands received with op, in order.
func (a *fakeAgent) got(op string) []agentCall {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []agentCall
	for _, c := range a.calls {
		if c.Op == op {
			out = append(out, c)
		}
	}
	return out
}

// applies decodes the desired states pushed to the agent.
func (a *fakeAgent) applies() []events.NginxDesired {
	var out []events.NginxDesired
	for _, c := range a.got(events.OpAgentNginxApply) {
		var d events.NginxDesired
		_ = json.Unmarshal(c.Data, &d)
		out = append(out, d)
	}
	return out
}

// ask sends the agent's desired-state request, as the agent does when it
// (re)connects, on the subject of org (normally its own).
func (a *fakeAgent) ask(org string, info events.NginxAgentInfo) (events.NginxDesired, *events.Error) {
	a.h.t.Helper()
	if org == a.org {
		// What it reports in apply results from now on, like a real agent.
		a.set(func(a *fakeAgent) { a.info = info })
	}
	b, _ := json.Marshal(info)
	// The service subscribes when it runs, just after the host is ready:
	// like the agent, retry while nobody answers yet.
	var reply *nats.Msg
	checkFor(a.h.t, func() error {
		var err error
		reply, err = a.h.nc.Request(events.AgentDesiredRequest(org, a.id), b, 20*time.Second)
		return err
	})
	var d events.NginxDesired
	e := servicetest.Decode(a.h.t, "desired", reply, &d)
	return d, e
}

// publishEvent publishes an agent's nginx event on AGENT_EVENTS, as the
// agent's outbox does.
func (h *harness) publishEvent(org, agent string, ev events.AgentNginxEvent) {
	h.publishRaw(org, agent, ev)
}

// publishRaw publishes any agent event (a Docker event, say).
func (h *harness) publishRaw(org, agent string, ev any) {
	b, _ := json.Marshal(ev)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := h.js.Publish(ctx, events.AgentEvents(org, agent), b); err != nil {
		h.t.Errorf("publish agent event: %v", err)
	}
}
