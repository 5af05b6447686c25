package routes_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/go-chi/chi/v5"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway/internal/natstest"
	"github.com/infrapilot/infrapilot/gateway/internal/reqctx"
	"github.com/infrapilot/infrapilot/gateway/internal/routes"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// The agent routes are tested here against STAND-INS on a real embedded
// NATS server: the tenancy service's agent registry (svc.tenancy.*), the
// log store (svc.logingest.*) and agents answering on
// agent.<org>.<id>.cmd.* with scripted replies and sessions. The gateway
// must not import the services or the agent; the real agent and the real
// tenancy service are tested end to end in services/cmd/infrapilot.
//
// The world: orgA has agent a1 (connected) and a2 (registered but not
// connected); orgB has agent b1 (connected, and never to be reached from
// orgA).

// agentCmd is one message a stand-in agent received.
type agentCmd struct {
	org, agent, op string
	data           []byte
}

type agentWorld struct {
	srv *httptest.Server
	r   chi.Router
	nc  *nats.Conn // the stand-ins' connection

	mu        sync.Mutex
	tenancy   []seen
	cmds      []agentCmd
	queries   []events.LogsQueryRequest
	queryOrgs []string
	metrics   int
	seqs      map[string]uint64 // per session
	storeSize int
}

// registry is the stand-in registry's content: org → agent ids.
var registry = map[string][]string{"orgA": {"a1", "a2"}, "orgB": {"b1"}}

func agentsServer(t *testing.T) *agentWorld {
	t.Helper()
	s := natstest.Run(t)
	w := &agentWorld{nc: natstest.Connect(t, s), seqs: map[string]uint64{}, storeSize: 2500}
	w.startTenancy(t)
	w.startLogStore(t)
	for org, ids := range registry {
		for _, id := range ids {
			if id != "a2" {
				w.startAgent(t, org, id)
			}
		}
	}

	// The gateway has a connection of its own: the stand-ins' subscriptions
	// must have reached the server before it asks.
	if err := w.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
			if id := req.Header.Get("X-Test-User"); id != "" {
				req = req.WithContext(reqctx.WithPrincipal(req.Context(), reqctx.Principal{
					ID: id, Kind: events.ActorUser, OrgID: req.Header.Get("X-Test-Org"), Role: req.Header.Get("X-Test-Role")}))
			}
			next.ServeHTTP(rw, req)
		})
	})
	routes.MountAgents(r, routes.Deps{NC: natstest.Connect(t, s), Log: slog.New(slog.DiscardHandler)})
	w.srv, w.r = httptest.NewServer(r), r
	t.Cleanup(w.srv.Close)
	return w
}

func microError(r micro.Request, code events.Code, format string, args ...any) {
	e := events.Errorf(code, format, args...)
	body, _ := json.Marshal(e)
	_ = r.Error(string(code), e.Message, body)
}

func (w *agentWorld) startTenancy(t *testing.T) {
	ops := map[string]micro.HandlerFunc{}
	for _, op := range []string{events.OpTenancyEnrollAgent, events.OpTenancyEnrollStatus, events.OpTenancyListAgents,
		events.OpTenancyGetAgent, events.OpTenancyDeleteAgent} {
		ops[op] = func(r micro.Request) {
			var body map[string]any
			_ = json.Unmarshal(r.Data(), &body)
			h := r.Headers()
			org := h.Get(events.HeaderOrgID)
			w.mu.Lock()
			w.tenancy = append(w.tenancy, seen{op: op, org: org, actor: h.Get(events.HeaderActorID), role: h.Get(events.HeaderRole), body: body, header: h})
			w.mu.Unlock()
			switch op {
			case events.OpTenancyEnrollAgent:
				_ = r.RespondJSON(events.AgentEnrollment{AgentID: "a9", OrgID: "orgA", NATSURL: "nats://hub:7422", Credentials: "-----BEGIN NATS USER JWT-----"})
			case events.OpTenancyEnrollStatus:
				_ = r.RespondJSON(events.EnrollStatus{Enrolled: true, AgentID: "a1", Status: events.AgentOnline})
			case events.OpTenancyListAgents:
				list := events.List[events.Agent]{Items: []events.Agent{}}
				for _, id := range registry[org] {
					list.Items = append(list.Items, events.Agent{ID: id, OrgID: org, Status: events.AgentOnline})
				}
				_ = r.RespondJSON(list)
			case events.OpTenancyGetAgent, events.OpTenancyDeleteAgent:
				id, _ := body["id"].(string)
				for _, known := range registry[org] {
					if known == id {
						_ = r.RespondJSON(events.Agent{ID: id, OrgID: org, Status: events.AgentOnline})
						return
					}
				}
				microError(r, events.CodeNotFound, "agent %s not found", id)
			}
		}
	}
	natstest.Service(t, w.nc, "tenancy", ops)
}

// startLogStore serves storeSize lines of container web of a2, newest
// first ("line 0" is the newest), cursor = offset.
func (w *agentWorld) startLogStore(t *testing.T) {
	base := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	natstest.Service(t, w.nc, "logingest", map[string]micro.HandlerFunc{
		events.OpLogsQuery: func(r micro.Request) {
			var q events.LogsQueryRequest
			_ = json.Unmarshal(r.Data(), &q)
			w.mu.Lock()
			w.queries, w.queryOrgs = append(w.queries, q), append(w.queryOrgs, r.Headers().Get(events.HeaderOrgID))
			w.mu.Unlock()
			off, _ := strconv.Atoi(q.Cursor)
			page := events.LogsPage{Items: []events.LogEntry{}}
			for i := off; i < w.storeSize && len(page.Items) < q.Limit; i++ {
				page.Items = append(page.Items, events.LogEntry{ID: strconv.Itoa(i), Time: base.Add(-time.Duration(i) * time.Second),
					AgentID: q.AgentID, Source: events.LogSourceContainer, Container: q.Container, Stream: events.StreamStdout, Line: fmt.Sprintf("line %d", i)})
			}
			if next := off + len(page.Items); next < w.storeSize {
				page.NextCursor = strconv.Itoa(next)
			}
			_ = r.RespondJSON(page)
		},
		events.OpLogsMetrics: func(r micro.Request) {
			w.mu.Lock()
			w.metrics++
			w.mu.Unlock()
			_ = r.RespondJSON(events.AgentMetricsReply{AgentID: "a1", StepSeconds: 60})
		},
	})
}

// startAgent runs a stand-in agent: scripted replies to the container
// operations, an echoing exec session (input comes back as output,
// "exit" ends it with code 7), and a log follow session whose second
// line is lost on the way.
func (w *agentWorld) startAgent(t *testing.T, org, agent string) {
	prefix := events.AgentCommand(org, agent, "")
	sub, err := w.nc.Subscribe(events.AgentCommands(org, agent), func(m *nats.Msg) {
		op := strings.TrimPrefix(m.Subject, prefix)
		w.mu.Lock()
		w.cmds = append(w.cmds, agentCmd{org: org, agent: agent, op: op, data: append([]byte(nil), m.Data...)})
		w.mu.Unlock()
		var ref events.ContainerRef
		_ = json.Unmarshal(m.Data, &ref)
		reply := func(v any) { b, _ := json.Marshal(v); _ = m.Respond(b) }
		switch op {
		case events.OpAgentContainersList:
			reply(events.List[events.Container]{Items: []events.Container{{ID: "c1", Name: "web", State: "running"}}})
		case events.OpAgentContainerInspect:
			if ref.ID != "web" {
				body, _ := json.Marshal(events.NotFound("no container %s", ref.ID))
				out := nats.NewMsg(m.Reply)
				out.Header.Set(events.HeaderServiceErrorCode, string(events.CodeNotFound))
				out.Data = body
				_ = m.RespondMsg(out)
				return
			}
			reply(events.ContainerDetail{Container: events.Container{ID: "c1", Name: "web", State: "running"}, RestartCount: 2})
		case events.OpAgentContainerStart, events.OpAgentContainerStop, events.OpAgentContainerRestart:
			reply(events.Container{ID: "c1", Name: ref.ID, State: "running"})
		case events.OpAgentContainerLogs:
			reply(events.ContainerLogsReply{Lines: []events.LogLine{{Stream: "stdout", Text: "from the agent"}}})
		case events.OpAgentStacksList:
			reply(events.List[events.Stack]{}) // items: null, as a careless agent might send
		case events.OpAgentNetworksList:
			reply(events.List[events.Network]{Items: []events.Network{{ID: "n1", Name: "bridge"}}})
		case events.OpAgentContainerNetworks:
			reply(events.List[events.ContainerNetwork]{Items: []events.ContainerNetwork{{NetworkID: "n1", Name: "bridge"}}})
		case events.OpAgentExecOpen:
			var req events.ExecOpenRequest
			_ = json.Unmarshal(m.Data, &req)
			reply(events.SessionOpened{Session: req.Session, Output: events.AgentSessionOutput(org, agent, req.Session)})
		case events.OpAgentLogsFollow:
			var req events.LogsFollowRequest
			_ = json.Unmarshal(m.Data, &req)
			reply(events.SessionOpened{Session: req.Session, Output: events.AgentSessionOutput(org, agent, req.Session)})
			out := events.AgentSessionOutput(org, agent, req.Session)
			w.emit(out, 1, []byte(`{"time":"2026-11-29T10:00:00Z","stream":"stdout","text":"first"}`), nil)
			w.emit(out, 3, []byte(`{"time":"2026-11-29T10:00:02Z","stream":"stderr","text":"third"}`), nil) // 2 never arrives
			w.emit(out, 4, nil, map[string]string{events.HeaderSessionExit: "0"})
		default:
			w.sessionMessage(org, agent, op, m)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
}

// sessionMessage is the stand-in agent's side of "session.<id>.<verb>".
func (w *agentWorld) sessionMessage(org, agent, op string, m *nats.Msg) {
	parts := strings.Split(op, ".")
	if len(parts) != 3 || parts[0] != "session" || parts[2] != "input" || len(m.Data) == 0 {
		return // resize and close are recorded only; an empty input is a keepalive
	}
	out := events.AgentSessionOutput(org, agent, parts[1])
	w.mu.Lock()
	w.seqs[parts[1]]++
	seq := w.seqs[parts[1]]
	w.mu.Unlock()
	if string(m.Data) == "exit" {
		w.emit(out, seq, nil, map[string]string{events.HeaderSessionExit: "7", events.HeaderSessionError: "bye"})
		return
	}
	w.emit(out, seq, m.Data, nil)
}

func (w *agentWorld) emit(subject string, seq uint64, data []byte, hdr map[string]string) {
	msg := nats.NewMsg(subject)
	msg.Data = data
	msg.Header.Set(events.HeaderSessionSeq, strconv.FormatUint(seq, 10))
	for k, v := range hdr {
		msg.Header.Set(k, v)
	}
	_ = w.nc.PublishMsg(msg)
}

// sent returns the commands an agent received, in order.
func (w *agentWorld) sent(org, agent string) []agentCmd {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []agentCmd
	for _, c := range w.cmds {
		if c.org == org && c.agent == agent {
			out = append(out, c)
		}
	}
	return out
}

func (w *agentWorld) lastTenancy(t *testing.T) seen {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.tenancy) == 0 {
		t.Fatal("the tenancy service was not called")
	}
	return w.tenancy[len(w.tenancy)-1]
}

// call sends a request as c (no X-Test-* headers for the zero caller).
func (w *agentWorld) call(t *testing.T, c caller, method, path, reqBody string) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if reqBody != "" {
		rd = strings.NewReader(reqBody)
	}
	req, err := http.NewRequest(method, w.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"X-Test-User": c.user, "X-Test-Org": c.org, "X-Test-Role": c.role} {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// dial opens a WebSocket as c; on a refused handshake it returns the
// response instead.
func (w *agentWorld) dial(t *testing.T, c caller, path string, hdr http.Header) (*websocket.Conn, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if hdr == nil {
		hdr = http.Header{}
	}
	hdr.Set("X-Test-User", c.user)
	hdr.Set("X-Test-Org", c.org)
	hdr.Set("X-Test-Role", c.role)
	conn, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(w.srv.URL, "http")+path, &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		if resp == nil {
			t.Fatal(err)
		}
		return nil, resp
	}
	t.Cleanup(func() { conn.CloseNow() })
	return conn, resp
}

// next reads one frame.
func next(t *testing.T, c *websocket.Conn) (websocket.MessageType, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	typ, data, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return typ, string(data)
}

// closed reads until the socket closes and returns its close status.
func closed(t *testing.T, c *websocket.Conn) websocket.StatusCode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, data, err := c.Read(ctx)
	if err == nil {
		t.Fatalf("a frame instead of the close: %s", data)
	}
	return websocket.CloseStatus(err)
}

func send(t *testing.T, c *websocket.Conn, typ websocket.MessageType, data string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, typ, []byte(data)); err != nil {
		t.Fatal(err)
	}
}

var (
	viewerA   = caller{user: "u1", org: "orgA", role: "viewer"}
	operatorA = caller{user: "u2", org: "orgA", role: "operator"}
	adminA    = caller{user: "u3", org: "orgA", role: "admin"}
)

func TestAgentRoutesAreAllMounted(t *testing.T) {
	w := agentsServer(t)
	want := []string{
		"POST /agents/enroll", "GET /agents/enroll/status", "GET /agents", "GET /agents/{id}", "DELETE /agents/{id}",
		"GET /agents/{id}/metrics", "GET /agents/{id}/containers", "GET /agents/{id}/containers/{cid}",
		"POST /agents/{id}/containers/{cid}/start", "POST /agents/{id}/containers/{cid}/stop", "POST /agents/{id}/containers/{cid}/restart",
		"GET /agents/{id}/containers/{cid}/logs", "GET /agents/{id}/containers/{cid}/logs/stream", "GET /agents/{id}/containers/{cid}/exec",
		"GET /agents/{id}/containers/{cid}/networks", "GET /agents/{id}/stacks", "GET /agents/{id}/networks",
	}
	var got []string
	_ = chi.Walk(w.r, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		got = append(got, method+" "+route)
		return nil
	})
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("routes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestAgentEnrollNeedsNoBearer: the token in the body is the only
// credential; the tenancy service gets no org or actor, even when the
// caller sent a bearer anyway.
func TestAgentEnrollNeedsNoBearer(t *testing.T) {
	w := agentsServer(t)
	for _, c := range []caller{{}, operatorA} {
		resp, b := w.call(t, c, "POST", "/agents/enroll", `{"token":"ipe_x","fingerprint":"fp1","hostname":"h","os":"linux","arch":"amd64","version":"1.0.0"}`)
		var got events.AgentEnrollment
		if resp.StatusCode != 200 || json.Unmarshal([]byte(b), &got) != nil || got.AgentID != "a9" || got.Credentials == "" {
			t.Fatalf("enroll as %+v: %d %s", c, resp.StatusCode, b)
		}
		if resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("credentials may be cached: %v", resp.Header)
		}
		s := w.lastTenancy(t)
		if s.op != events.OpTenancyEnrollAgent || s.org != "" || s.actor != "" || s.body["token"] != "ipe_x" || s.body["fingerprint"] != "fp1" {
			t.Fatalf("tenancy got %+v", s)
		}
	}
	if resp, b := w.call(t, caller{}, "POST", "/agents/enroll", `{"token":"x","org_id":"orgB"}`); resp.StatusCode != 400 {
		t.Fatalf("unknown field: %d %s", resp.StatusCode, b)
	}
}

func TestAgentRegistryRoutes(t *testing.T) {
	w := agentsServer(t)
	for _, c := range []struct {
		who          caller
		method, path string
		status       int
		want         string
	}{
		{caller{}, "GET", "/agents", 401, ""},
		{viewerA, "GET", "/agents?limit=0", 400, `"field":"limit"`},
		{viewerA, "GET", "/agents?limit=5", 200, `"id":"a2"`},
		{viewerA, "GET", "/agents/a1", 200, `"id":"a1"`},
		{viewerA, "GET", "/agents/b1", 404, "not found"},
		{viewerA, "GET", "/agents/enroll/status", 400, `"field":"fingerprint"`},
		{viewerA, "GET", "/agents/enroll/status?fingerprint=fp1", 200, `"enrolled":true`},
		{operatorA, "DELETE", "/agents/a1", 403, ""},
		{adminA, "DELETE", "/agents/b1", 404, ""},
		{adminA, "DELETE", "/agents/a1", 204, ""},
	} {
		resp, b := w.call(t, c.who, c.method, c.path, "")
		if resp.StatusCode != c.status || !strings.Contains(b, c.want) {
			t.Errorf("%s %s as %+v: %d %s", c.method, c.path, c.who, resp.StatusCode, b)
		}
	}
	if s := w.lastTenancy(t); s.op != events.OpTenancyDeleteAgent || s.body["id"] != "a1" || s.org != "orgA" {
		t.Fatalf("delete: %+v", s)
	}
}

// TestAgentContainerRoutes: each route's role and the command it sends.
func TestAgentContainerRoutes(t *testing.T) {
	w := agentsServer(t)
	for _, c := range []struct {
		who          caller
		method, path string
		status       int
		want         string // in the reply
		op, cmd      string // the command the agent got, when one is expected
	}{
		{caller{}, "GET", "/agents/a1/containers", 401, "", "", ""},
		{viewerA, "GET", "/agents/a1/containers", 200, `"items":[{"id":"c1"`, events.OpAgentContainersList, `{}`},
		{viewerA, "GET", "/agents/a1/containers?all=true", 200, `"name":"web"`, events.OpAgentContainersList, `{"all":true}`},
		{viewerA, "GET", "/agents/a1/containers?all=maybe", 400, `"field":"all"`, "", ""},
		{viewerA, "GET", "/agents/a1/containers/web", 200, `"restart_count":2`, events.OpAgentContainerInspect, `{"id":"web"}`},
		{viewerA, "GET", "/agents/a1/containers/db", 404, "no container db", events.OpAgentContainerInspect, `{"id":"db"}`},
		{viewerA, "GET", "/agents/a1/containers/-x", 404, "not found", "", ""},
		{viewerA, "GET", "/agents/a1/containers/web/networks", 200, `"network_id":"n1"`, events.OpAgentContainerNetworks, `{"id":"web"}`},
		{viewerA, "GET", "/agents/a1/stacks", 200, `{"items":[]}`, events.OpAgentStacksList, `{}`},
		{viewerA, "GET", "/agents/a1/networks", 200, `"name":"bridge"`, events.OpAgentNetworksList, `{}`},
		{viewerA, "GET", "/agents/a1/containers/web/logs?tail=5", 200, `"source":"agent"`, events.OpAgentContainerLogs, `{"id":"web","tail":5}`},
		{viewerA, "GET", "/agents/a1/containers/web/logs", 200, `"from the agent"`, events.OpAgentContainerLogs, `{"id":"web","tail":100}`},
		{viewerA, "GET", "/agents/a1/containers/web/logs?tail=10001", 400, `"field":"tail"`, "", ""},
		{viewerA, "POST", "/agents/a1/containers/web/start", 403, "", "", ""},
		{viewerA, "POST", "/agents/a1/containers/web/stop", 403, "", "", ""},
		{operatorA, "POST", "/agents/a1/containers/web/start", 200, `"state":"running"`, events.OpAgentContainerStart, `{"id":"web"}`},
		{operatorA, "POST", "/agents/a1/containers/web/stop", 200, `"id":"c1"`, events.OpAgentContainerStop, `{"id":"web"}`},
		{operatorA, "POST", "/agents/a1/containers/web/stop?timeout=5", 200, "", events.OpAgentContainerStop, `{"id":"web","timeout":5}`},
		{operatorA, "POST", "/agents/a1/containers/web/restart?timeout=0", 200, "", events.OpAgentContainerRestart, `{"id":"web","timeout":0}`},
		{operatorA, "POST", "/agents/a1/containers/web/restart?timeout=-1", 400, `"field":"timeout"`, "", ""},
		{viewerA, "GET", "/agents/a1/metrics", 200, `"step_seconds":60`, "", ""},
	} {
		before := len(w.sent("orgA", "a1"))
		resp, b := w.call(t, c.who, c.method, c.path, "")
		if resp.StatusCode != c.status || !strings.Contains(b, c.want) {
			t.Errorf("%s %s as %+v: %d %s", c.method, c.path, c.who, resp.StatusCode, b)
			continue
		}
		cmds := w.sent("orgA", "a1")
		switch {
		case c.op == "" && len(cmds) != before:
			t.Errorf("%s %s as %+v: sent %s", c.method, c.path, c.who, cmds[len(cmds)-1].op)
		case c.op != "" && (len(cmds) != before+1 || cmds[before].op != c.op || string(cmds[before].data) != c.cmd):
			t.Errorf("%s %s as %+v: sent %+v, want %s %s", c.method, c.path, c.who, cmds[before:], c.op, c.cmd)
		}
	}
	// A viewer may not open a shell; no session is opened for it.
	if conn, resp := w.dial(t, viewerA, "/agents/a1/containers/web/exec", nil); conn != nil || resp.StatusCode != 403 {
		t.Fatalf("viewer exec: %v", resp.Status)
	}
	for _, c := range w.sent("orgA", "a1") {
		if c.op == events.OpAgentExecOpen {
			t.Fatal("exec.open sent for a viewer")
		}
	}
}

// TestAgentOfAnotherOrgIs404: an agent of another org, an unknown one
// and a malformed id all answer 404 on every route below /agents/{id}/,
// whatever the caller's role, and nothing is sent to any agent or read
// from the log store.
func TestAgentOfAnotherOrgIs404(t *testing.T) {
	w := agentsServer(t)
	for _, id := range []string{"b1", "nope", "a1.b1"} {
		for _, c := range []struct {
			who          caller
			method, path string
		}{
			{viewerA, "GET", "/containers"},
			{viewerA, "GET", "/containers/web"},
			{viewerA, "POST", "/containers/web/start"},
			{operatorA, "POST", "/containers/web/restart?timeout=1"},
			{viewerA, "GET", "/containers/web/logs"},
			{viewerA, "GET", "/containers/web/networks"},
			{viewerA, "GET", "/stacks"},
			{viewerA, "GET", "/networks"},
			{viewerA, "GET", "/metrics"},
			{viewerA, "GET", "/containers/web/exec"},
			{operatorA, "GET", "/containers/web/exec"},
			{operatorA, "GET", "/containers/web/logs/stream"},
		} {
			resp, b := w.call(t, c.who, c.method, "/agents/"+id+c.path, "")
			if resp.StatusCode != 404 {
				t.Errorf("%s /agents/%s%s as %s: %d %s", c.method, id, c.path, c.who.role, resp.StatusCode, b)
			}
		}
		if conn, resp := w.dial(t, operatorA, "/agents/"+id+"/containers/web/exec", nil); conn != nil || resp.StatusCode != 404 {
			t.Errorf("exec on %s: %v", id, resp.Status)
		}
	}
	if cmds := w.sent("orgB", "b1"); len(cmds) != 0 {
		t.Fatalf("orgB's agent got %+v", cmds)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.cmds) != 0 || len(w.queries) != 0 || w.metrics != 0 {
		t.Fatalf("commands %+v, log queries %+v, metrics %d", w.cmds, w.queries, w.metrics)
	}
}

// TestAgentOffline: an agent that is registered but not connected answers
// 503, on the REST routes and as the close of a session's socket.
func TestAgentOffline(t *testing.T) {
	w := agentsServer(t)
	for _, c := range []struct {
		who          caller
		method, path string
	}{
		{viewerA, "GET", "/agents/a2/containers"},
		{viewerA, "GET", "/agents/a2/containers/web"},
		{operatorA, "POST", "/agents/a2/containers/web/stop"},
	} {
		resp, b := w.call(t, c.who, c.method, c.path, "")
		if resp.StatusCode != 503 || !strings.Contains(b, "agent a2 is offline") {
			t.Errorf("%s %s: %d %s", c.method, c.path, resp.StatusCode, b)
		}
	}
	conn, _ := w.dial(t, operatorA, "/agents/a2/containers/web/exec", nil)
	if conn == nil {
		t.Fatal("exec on an offline agent: handshake refused")
	}
	var end struct {
		Exit  int    `json:"exit"`
		Error string `json:"error"`
		Code  string `json:"code"`
	}
	if typ, m := next(t, conn); typ != websocket.MessageText || json.Unmarshal([]byte(m), &end) != nil ||
		end.Exit != -1 || end.Code != "unavailable" || !strings.Contains(end.Error, "agent a2 is offline") {
		t.Fatalf("first frame: %s", m)
	}
	if st := closed(t, conn); st != 4503 {
		t.Fatalf("close status %d", st)
	}
}

// TestAgentLogsFallBackToTheStore: when the agent cannot answer, the
// container's last lines come from the log store, oldest first, marked
// as such.
func TestAgentLogsFallBackToTheStore(t *testing.T) {
	w := agentsServer(t)
	resp, b := w.call(t, viewerA, "GET", "/agents/a2/containers/web/logs?tail=3", "")
	var got struct {
		events.ContainerLogsReply
		Source string `json:"source"`
	}
	if resp.StatusCode != 200 || json.Unmarshal([]byte(b), &got) != nil {
		t.Fatalf("logs: %d %s", resp.StatusCode, b)
	}
	if resp.Header.Get(routes.HeaderLogsSource) != "store" || got.Source != "store" || len(got.Lines) != 3 ||
		got.Lines[0].Text != "line 2" || got.Lines[2].Text != "line 0" || !got.Lines[0].Time.Before(got.Lines[2].Time) {
		t.Fatalf("logs: %v %s", resp.Header, b)
	}
	w.mu.Lock()
	q, org := w.queries[0], w.queryOrgs[0]
	w.mu.Unlock()
	if org != "orgA" || q.AgentID != "a2" || q.Container != "web" || q.Limit != 3 || q.From == "" {
		t.Fatalf("store query: org %s %+v", org, q)
	}

	// More than a page: the store is read page by page.
	resp, b = w.call(t, viewerA, "GET", "/agents/a2/containers/web/logs?tail=2100", "")
	if err := json.Unmarshal([]byte(b), &got); err != nil || resp.StatusCode != 200 || len(got.Lines) != 2100 ||
		got.Lines[0].Text != "line 2099" || got.Lines[2099].Text != "line 0" {
		t.Fatalf("long tail: %d, %d lines", resp.StatusCode, len(got.Lines))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var limits []int
	for _, q := range w.queries[1:] {
		limits = append(limits, q.Limit)
	}
	if fmt.Sprint(limits) != "[1000 1000 100]" {
		t.Fatalf("page limits %v", limits)
	}
}

// TestAgentExecSession: the exec socket against the stand-in agent's
// echoing session: input (binary and JSON) comes back as output, resizes
// reach the agent, the session's end is the last frame before a normal
// close, and a client that goes away closes the session at the agent.
func TestAgentExecSession(t *testing.T) {
	w := agentsServer(t)
	if _, resp := w.dial(t, operatorA, "/agents/a1/containers/web/exec", http.Header{"Origin": {"https://evil.example"}}); resp.StatusCode != 403 {
		t.Fatalf("cross-origin exec: %v", resp.Status)
	}
	if _, resp := w.dial(t, operatorA, "/agents/a1/containers/web/exec?rows=0", nil); resp.StatusCode != 400 {
		t.Fatalf("rows=0: %v", resp.Status)
	}

	conn, _ := w.dial(t, operatorA, "/agents/a1/containers/web/exec?rows=24&cols=80&cmd=/bin/bash&cmd=-l", nil)
	if conn == nil {
		t.Fatal("handshake refused")
	}
	send(t, conn, websocket.MessageBinary, "ls\n")
	if typ, m := next(t, conn); typ != websocket.MessageBinary || m != "ls\n" {
		t.Fatalf("echo: %v %q", typ, m)
	}
	var req events.ExecOpenRequest
	_ = json.Unmarshal(w.lastOf(t, "orgA", "a1", events.OpAgentExecOpen).data, &req)
	if !events.ValidToken(req.Session) || req.Container != "web" || !req.TTY || req.Rows != 24 || req.Cols != 80 ||
		fmt.Sprint(req.Cmd) != "[/bin/bash -l]" {
		t.Fatalf("exec.open: %+v", req)
	}
	send(t, conn, websocket.MessageText, `{"type":"input","data":"pwd\n"}`)
	if typ, m := next(t, conn); typ != websocket.MessageBinary || m != "pwd\n" {
		t.Fatalf("echo: %v %q", typ, m)
	}
	send(t, conn, websocket.MessageText, `{"type":"resize","rows":50,"cols":120}`)
	send(t, conn, websocket.MessageText, `{"type":"future-thing"}`)
	resize := "session." + req.Session + ".resize"
	natstest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		for _, c := range w.sent("orgA", "a1") {
			if c.op == resize {
				if string(c.data) != `{"rows":50,"cols":120}` {
					return fmt.Errorf("resize %s", c.data)
				}
				return nil
			}
		}
		return errors.New("no resize yet")
	})
	send(t, conn, websocket.MessageBinary, "exit")
	if typ, m := next(t, conn); typ != websocket.MessageText || m != `{"exit":7,"error":"bye"}` {
		t.Fatalf("last frame: %v %s", typ, m)
	}
	if st := closed(t, conn); st != websocket.StatusNormalClosure {
		t.Fatalf("close status %d", st)
	}

	// The client goes away: the agent is told to close the session.
	conn, _ = w.dial(t, operatorA, "/agents/a1/containers/web/exec", nil)
	send(t, conn, websocket.MessageBinary, "hi")
	if _, m := next(t, conn); m != "hi" {
		t.Fatalf("echo: %q", m)
	}
	var second events.ExecOpenRequest
	_ = json.Unmarshal(w.lastOf(t, "orgA", "a1", events.OpAgentExecOpen).data, &second)
	if second.Session == req.Session || fmt.Sprint(second.Cmd) != "[/bin/sh]" || !second.TTY || second.Rows != 0 {
		t.Fatalf("second exec.open: %+v", second)
	}
	_ = conn.Close(websocket.StatusNormalClosure, "")
	natstest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		for _, c := range w.sent("orgA", "a1") {
			if c.op == "session."+second.Session+".close" {
				return nil
			}
		}
		return errors.New("no close yet")
	})
	// The session that ended by itself was not closed again.
	for _, c := range w.sent("orgA", "a1") {
		if c.op == "session."+req.Session+".close" {
			t.Fatal("close sent for a session that had ended")
		}
	}
}

func (w *agentWorld) lastOf(t *testing.T, org, agent, op string) agentCmd {
	t.Helper()
	cmds := w.sent(org, agent)
	for i := len(cmds) - 1; i >= 0; i-- {
		if cmds[i].op == op {
			return cmds[i]
		}
	}
	t.Fatalf("agent %s.%s got no %s", org, agent, op)
	return agentCmd{}
}

// TestAgentLogsStreamSession: a viewer follows a container's log; a line
// lost on the way is reported as dropped, and the session's end closes
// the socket normally.
func TestAgentLogsStreamSession(t *testing.T) {
	w := agentsServer(t)
	conn, resp := w.dial(t, viewerA, "/agents/a1/containers/web/logs/stream?tail=5", nil)
	if conn == nil {
		t.Fatalf("handshake refused: %v", resp.Status)
	}
	var frames []string
	for range 4 {
		typ, m := next(t, conn)
		if typ != websocket.MessageText {
			t.Fatalf("binary frame %q", m)
		}
		frames = append(frames, m)
	}
	want := []string{`{"time":"2026-11-29T10:00:00Z","stream":"stdout","text":"first"}`, `{"dropped":1}`,
		`{"time":"2026-11-29T10:00:02Z","stream":"stderr","text":"third"}`, `{"exit":0}`}
	if strings.Join(frames, "\n") != strings.Join(want, "\n") {
		t.Fatalf("frames:\n%s", strings.Join(frames, "\n"))
	}
	if st := closed(t, conn); st != websocket.StatusNormalClosure {
		t.Fatalf("close status %d", st)
	}
	var req events.LogsFollowRequest
	_ = json.Unmarshal(w.lastOf(t, "orgA", "a1", events.OpAgentLogsFollow).data, &req)
	if req.Container != "web" || req.Tail != 5 || !events.ValidToken(req.Session) {
		t.Fatalf("logs.follow: %+v", req)
	}
}
