package commands_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/network"
	"github.com/infrapilot/infrapilot/agent/internal/commands"
	"github.com/infrapilot/infrapilot/agent/internal/docker"
	"github.com/infrapilot/infrapilot/agent/internal/dockertest"
	"github.com/infrapilot/infrapilot/agent/internal/hubtest"
	"github.com/infrapilot/infrapilot/agent/internal/outbox"
	"github.com/infrapilot/infrapilot/events"
	"github.com/nats-io/nats.go"
)

const org, agent = "org1", "agent1"

// setup runs an agent's leaf node and command responder against a hub
// and returns a hub connection to call it with, as the gateway does.
func setup(t *testing.T, cfg commands.Config) *nats.Conn {
	t.Helper()
	h := hubtest.Start(t)
	ob, err := outbox.Open(outbox.Config{StateDir: t.TempDir(), Name: "agent-" + agent,
		InboxPrefix: events.AgentInbox(org, agent), Leaf: outbox.LeafConfig{HubURL: h.LeafURL()}})
	if err != nil {
		t.Fatal(err)
	}
	lnc, err := ob.Connect("commands")
	if err != nil {
		t.Fatal(err)
	}
	dc, err := docker.New(dockertest.Host(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.OrgID, cfg.AgentID = org, agent
	cfg.Info = events.AgentInfo{AgentID: agent, Version: "test"}
	r, err := commands.New(cfg, lnc, dc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; lnc.Close(); ob.Close(); dc.Close() })
	nc := h.Connect()
	dockertest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		_, err := call[events.AgentInfo](nc, events.OpAgentPing, events.Empty{})
		return err
	})
	return nc
}

// call is the gateway's request: JSON out, JSON or an error reply back.
func call[Resp any](nc *nats.Conn, op string, req any) (Resp, error) {
	var resp Resp
	data, err := json.Marshal(req)
	if err != nil {
		return resp, err
	}
	if raw, ok := req.(rawBody); ok {
		data = raw
	}
	msg := nats.NewMsg(events.AgentCommand(org, agent, op))
	msg.Data = data
	msg.Header.Set(events.HeaderDeadline, time.Now().Add(30*time.Second).UTC().Format(time.RFC3339Nano))
	reply, err := nc.RequestMsg(msg, 30*time.Second)
	if err != nil {
		return resp, err
	}
	if code := reply.Header.Get(events.HeaderServiceErrorCode); code != "" {
		var e events.Error
		if err := json.Unmarshal(reply.Data, &e); err != nil || string(e.Code) != code || e.Message != reply.Header.Get(events.HeaderServiceError) {
			return resp, fmt.Errorf("malformed error reply %q %q", code, reply.Data)
		}
		return resp, &e
	}
	return resp, json.Unmarshal(reply.Data, &resp)
}

type rawBody []byte

func code(err error) events.Code {
	var e *events.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func TestContainerOperations(t *testing.T) {
	t.Parallel()
	nc := setup(t, commands.Config{})
	raw := dockertest.Client(t)
	name := dockertest.Name(t, "web")
	id := dockertest.Run(t, raw, dockertest.Spec{Name: name, Labels: map[string]string{docker.LabelComposeProject: "shop"},
		Cmd: []string{"sh", "-c", "i=0; while true; do echo line $i; i=$((i+1)); usleep 100000; done"}})

	info, err := call[events.AgentInfo](nc, events.OpAgentPing, events.Empty{})
	if err != nil || info.AgentID != agent || info.Engine == "" {
		t.Fatalf("ping: %+v %v", info, err)
	}
	list, err := call[events.List[events.Container]](nc, events.OpAgentContainersList, events.ContainersListRequest{})
	if err != nil || !slices.ContainsFunc(list.Items, func(c events.Container) bool { return c.ID == id && c.Stack == "shop" }) {
		t.Fatalf("list: %+v %v", list, err)
	}
	d, err := call[events.ContainerDetail](nc, events.OpAgentContainerInspect, events.ContainerRef{ID: name})
	if err != nil || d.ID != id || d.State != "running" {
		t.Fatalf("inspect: %+v %v", d, err)
	}
	zero := 0
	for _, step := range []struct {
		op    string
		state string
	}{{events.OpAgentContainerStop, "exited"}, {events.OpAgentContainerStart, "running"}, {events.OpAgentContainerRestart, "running"}} {
		c, err := call[events.Container](nc, step.op, events.ContainerStopRequest{ID: id, Timeout: &zero})
		if step.op == events.OpAgentContainerStart {
			c, err = call[events.Container](nc, step.op, events.ContainerRef{ID: id})
		}
		if err != nil || c.State != step.state {
			t.Fatalf("%s: %+v %v", step.op, c, err)
		}
	}
	dockertest.CheckFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		logs, err := call[events.ContainerLogsReply](nc, events.OpAgentContainerLogs, events.ContainerLogsRequest{ID: id, Tail: 3})
		if err != nil {
			return err
		}
		if len(logs.Lines) != 3 || !strings.HasPrefix(logs.Lines[2].Text, "line ") {
			return fmt.Errorf("logs %+v", logs)
		}
		return nil
	})
	stacks, err := call[events.List[events.Stack]](nc, events.OpAgentStacksList, events.Empty{})
	if err != nil || !slices.ContainsFunc(stacks.Items, func(s events.Stack) bool { return s.Name == "shop" && s.Running >= 1 }) {
		t.Fatalf("stacks: %+v %v", stacks, err)
	}

	// Networks: list, a container's, attach and detach.
	nets, err := call[events.List[events.Network]](nc, events.OpAgentNetworksList, events.Empty{})
	if err != nil || !slices.ContainsFunc(nets.Items, func(n events.Network) bool { return n.Name == "bridge" }) {
		t.Fatalf("networks: %+v %v", nets, err)
	}
	netName := dockertest.Name(t, "n")
	if _, err := raw.NetworkCreate(context.Background(), netName, network.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.NetworkRemove(context.Background(), netName) })
	if _, err := call[events.Empty](nc, events.OpAgentNetworkConnect, events.NetworkConnectRequest{Network: netName, Container: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := call[events.Empty](nc, events.OpAgentNetworkConnect, events.NetworkConnectRequest{Network: netName, Container: id}); code(err) != events.CodeConflict {
		t.Fatalf("second connect: %v", err)
	}
	cn, err := call[events.List[events.ContainerNetwork]](nc, events.OpAgentContainerNetworks, events.ContainerRef{ID: id})
	if err != nil || len(cn.Items) != 2 || cn.Items[0].Name != "bridge" || cn.Items[1].Name != netName {
		t.Fatalf("container networks: %+v %v", cn, err)
	}
	if _, err := call[events.Empty](nc, events.OpAgentNetworkDisconnect, events.NetworkConnectRequest{Network: netName, Container: id}); err != nil {
		t.Fatal(err)
	}
}

func TestErrorReplies(t *testing.T) {
	t.Parallel()
	nc := setup(t, commands.Config{})
	for _, tc := range []struct {
		name string
		op   string
		req  any
		want events.Code
	}{
		{"unknown op", "containers.delete_everything", events.Empty{}, events.CodeNotFound},
		{"unknown container", events.OpAgentContainerInspect, events.ContainerRef{ID: "no-such"}, events.CodeNotFound},
		{"path in id", events.OpAgentContainerStart, events.ContainerRef{ID: "../../images/json"}, events.CodeInvalid},
		{"unknown field", events.OpAgentContainersList, rawBody(`{"all":true,"evil":1}`), events.CodeInvalid},
		{"malformed", events.OpAgentContainersList, rawBody(`{"all":`), events.CodeInvalid},
		{"trailing", events.OpAgentContainersList, rawBody(`{} {}`), events.CodeInvalid},
		{"bad tail", events.OpAgentContainerLogs, events.ContainerLogsRequest{ID: "x", Tail: -1}, events.CodeInvalid},
		{"bad session", events.OpAgentExecOpen, events.ExecOpenRequest{Session: "a.b", Container: "x"}, events.CodeInvalid},
		{"exec unknown container", events.OpAgentExecOpen, events.ExecOpenRequest{Session: "s1", Container: "no-such"}, events.CodeNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := call[json.RawMessage](nc, tc.op, tc.req)
			if code(err) != tc.want {
				t.Fatalf("got %v, want %s", err, tc.want)
			}
		})
	}
	// Session traffic for an unknown session.
	m, err := nc.Request(events.AgentSessionClose(org, agent, "nope"), nil, 10*time.Second)
	if err != nil || m.Header.Get(events.HeaderServiceErrorCode) != string(events.CodeNotFound) {
		t.Fatalf("unknown session: %v %v", m, err)
	}
}

// session is the gateway's side of a session: it subscribes to the
// output first, then opens.
type session struct {
	t    *testing.T
	nc   *nats.Conn
	id   string
	msgs chan *nats.Msg
}

func openSession(t *testing.T, nc *nats.Conn, id, op string, req any) (*session, error) {
	s := &session{t: t, nc: nc, id: id, msgs: make(chan *nats.Msg, 1024)}
	sub, err := nc.ChanSubscribe(events.AgentSessionOutput(org, agent, id), s.msgs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	opened, err := call[events.SessionOpened](nc, op, req)
	if err != nil {
		return nil, err
	}
	if opened.Session != id || opened.Output != events.AgentSessionOutput(org, agent, id) {
		t.Fatalf("opened %+v", opened)
	}
	return s, nil
}

// readUntil collects output until it contains want, checking sequence
// numbers; it returns the output and the exit code (-2 if none yet).
func (s *session) readUntil(want string, seq *int) (string, int) {
	s.t.Helper()
	var out bytes.Buffer
	timeout := time.After(20 * time.Second)
	for {
		select {
		case m := <-s.msgs:
			*seq++
			if got := m.Header.Get(events.HeaderSessionSeq); got != strconv.Itoa(*seq) {
				s.t.Fatalf("seq %s, want %d", got, *seq)
			}
			out.Write(m.Data)
			if exit := m.Header.Get(events.HeaderSessionExit); exit != "" {
				code, _ := strconv.Atoi(exit)
				return out.String(), code
			}
			if want != "" && strings.Contains(out.String(), want) {
				return out.String(), -2
			}
		case <-timeout:
			s.t.Fatalf("waiting for %q, got %q", want, out.String())
		}
	}
}

func (s *session) send(subject string, data []byte) {
	s.t.Helper()
	if _, err := s.nc.Request(subject, data, 10*time.Second); err != nil {
		s.t.Fatalf("%s: %v", subject, err)
	}
}

func TestExecSession(t *testing.T) {
	t.Parallel()
	nc := setup(t, commands.Config{})
	raw := dockertest.Client(t)
	id := dockertest.Run(t, raw, dockertest.Spec{Name: dockertest.Name(t, "exec"), Cmd: []string{"sleep", "600"}})

	s, err := openSession(t, nc, "sess-1", events.OpAgentExecOpen,
		events.ExecOpenRequest{Session: "sess-1", Container: id, Cmd: []string{"sh"}, TTY: true, Rows: 24, Cols: 80})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openSession(t, nc, "sess-1", events.OpAgentExecOpen,
		events.ExecOpenRequest{Session: "sess-1", Container: id}); code(err) != events.CodeConflict {
		t.Fatalf("duplicate session: %v", err)
	}
	seq := 0
	s.send(events.AgentSessionResize(org, agent, "sess-1"), []byte(`{"rows":33,"cols":120}`))
	s.send(events.AgentSessionInput(org, agent, "sess-1"), nil) // keepalive
	s.send(events.AgentSessionInput(org, agent, "sess-1"), []byte("stty size; echo hel''lo\n"))
	out, _ := s.readUntil("hello\r\n", &seq)
	if !strings.Contains(out, "33 120\r\n") {
		t.Fatalf("output %q", out)
	}
	s.send(events.AgentSessionInput(org, agent, "sess-1"), []byte("exit 7\n"))
	if _, exit := s.readUntil("", &seq); exit != 7 {
		t.Fatalf("exit %d", exit)
	}

	// Closing a live shell ends it (its process is hung up) and the
	// last message says so.
	s, err = openSession(t, nc, "sess-2", events.OpAgentExecOpen,
		events.ExecOpenRequest{Session: "sess-2", Container: id, TTY: true, Rows: 24, Cols: 80})
	if err != nil {
		t.Fatal(err)
	}
	seq = 0
	s.send(events.AgentSessionClose(org, agent, "sess-2"), nil)
	if _, exit := s.readUntil("", &seq); exit == -2 {
		t.Fatal("no end")
	}
	// The session is gone.
	m, err := nc.Request(events.AgentSessionInput(org, agent, "sess-2"), []byte("x"), 10*time.Second)
	if err != nil || m.Header.Get(events.HeaderServiceErrorCode) != string(events.CodeNotFound) {
		t.Fatalf("closed session: %v %v", m, err)
	}
}

func TestSessionIdleTimeout(t *testing.T) {
	t.Parallel()
	nc := setup(t, commands.Config{IdleTimeout: 500 * time.Millisecond})
	raw := dockertest.Client(t)
	id := dockertest.Run(t, raw, dockertest.Spec{Name: dockertest.Name(t, "idle"), Cmd: []string{"sleep", "600"}})
	s, err := openSession(t, nc, "idle-1", events.OpAgentExecOpen,
		events.ExecOpenRequest{Session: "idle-1", Container: id, Cmd: []string{"sh"}})
	if err != nil {
		t.Fatal(err)
	}
	seq := 0
	if _, exit := s.readUntil("", &seq); exit == -2 {
		t.Fatal("no end")
	}
}

func TestLogsFollowSession(t *testing.T) {
	t.Parallel()
	nc := setup(t, commands.Config{})
	raw := dockertest.Client(t)
	id := dockertest.Run(t, raw, dockertest.Spec{Name: dockertest.Name(t, "tail"),
		Cmd: []string{"sh", "-c", "i=0; while [ $i -lt 10 ]; do echo line $i; i=$((i+1)); usleep 100000; done"}})
	s, err := openSession(t, nc, "tail-1", events.OpAgentLogsFollow, events.LogsFollowRequest{Session: "tail-1", Container: id, Tail: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	timeout := time.After(20 * time.Second)
	for {
		select {
		case m := <-s.msgs:
			if m.Header.Get(events.HeaderSessionExit) != "" {
				if len(got) != 10 || got[0] != "line 0" || got[9] != "line 9" {
					t.Fatalf("lines %v", got)
				}
				return
			}
			var l events.LogLine
			if err := json.Unmarshal(m.Data, &l); err != nil {
				t.Fatal(err)
			}
			got = append(got, l.Text)
		case <-timeout:
			t.Fatalf("lines so far %v", got)
		}
	}
}

// Operations registered from outside the package (the nginx controller's)
// are served like the built-in ones: typed bodies, strict decoding, error
// codes kept; a name served already is refused.
func TestExtraOperations(t *testing.T) {
	t.Parallel()
	extra := map[string]commands.Handler{
		events.OpAgentNginxTest: commands.Handle(func(_ context.Context, d events.NginxDesired) (events.NginxTestResult, error) {
			return events.NginxTestResult{OK: true, Output: fmt.Sprintf("revision %d", d.Revision)}, nil
		}),
		events.OpAgentNginxApply: commands.Handle(func(context.Context, events.NginxDesired) (events.NginxApplyResult, error) {
			return events.NginxApplyResult{}, events.Errorf(events.CodeUnavailable, "nginx management is not enabled on this agent")
		}),
	}
	nc := setup(t, commands.Config{Extra: extra})
	res, err := call[events.NginxTestResult](nc, events.OpAgentNginxTest, events.NginxDesired{Revision: 7})
	if err != nil || !res.OK || res.Output != "revision 7" {
		t.Fatalf("extra op: %+v %v", res, err)
	}
	if _, err := call[events.NginxTestResult](nc, events.OpAgentNginxTest, rawBody(`{"revision":1,"bogus":2}`)); code(err) != events.CodeInvalid {
		t.Fatalf("unknown field: %v", err)
	}
	if _, err := call[events.NginxApplyResult](nc, events.OpAgentNginxApply, events.NginxDesired{}); code(err) != events.CodeUnavailable ||
		!strings.Contains(err.Error(), "not enabled") {
		t.Fatalf("error code: %v", err)
	}

	dup := map[string]commands.Handler{events.OpAgentPing: commands.Handle(func(context.Context, events.Empty) (events.Empty, error) {
		return events.Empty{}, nil
	})}
	if _, err := commands.New(commands.Config{OrgID: org, AgentID: agent, Extra: dup}, nc, nil); err == nil {
		t.Fatal("an extra op shadowing a built-in one was accepted")
	}
}
