package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
)

// buildAgent builds the real infrapilot-agent binary once per test run.
var buildAgent = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "infrapilot-agent-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "infrapilot-agent")
	out, err := exec.Command("go", "build", "-o", bin, "../../../agent/cmd/infrapilot-agent").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build agent: %v\n%s", err, out)
	}
	return bin, nil
})

// agentProc is a running `infrapilot-agent run`.
type agentProc struct {
	cmd *exec.Cmd
	out *syncBuffer
}

func startAgent(t *testing.T, bin, stateDir, dockerHost string) *agentProc {
	t.Helper()
	p := &agentProc{out: &syncBuffer{}}
	p.cmd = exec.Command(bin, "run", "--state-dir", stateDir, "--docker-host", dockerHost,
		"--metrics-interval", "1s", "--log-format", "json")
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.stop(t) })
	return p
}

func (p *agentProc) stop(t *testing.T) {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("agent exited with %v:\n%s", err, p.out.String())
		}
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
		t.Errorf("agent did not stop on SIGTERM:\n%s", p.out.String())
	}
}

// agentStatus reads the agent's status.json.
func agentStatus(t *testing.T, stateDir string) map[string]any {
	t.Helper()
	var st map[string]any
	b, err := os.ReadFile(filepath.Join(stateDir, "status.json"))
	if err == nil {
		_ = json.Unmarshal(b, &st)
	}
	return st
}

// TestAgentEndToEnd runs the real control plane (`infrapilot dev`, its hub
// in operator mode), the real agent binary enrolled through the REST API,
// and containers on a real Docker-API engine (podman): enrollment,
// presence, Docker operations, exec, logs into the store, offline,
// deletion with revocation, and the enrollment token's limits.
func TestAgentEndToEnd(t *testing.T) {
	eng := newEngine(t)
	bin, err := buildAgent()
	if err != nil {
		t.Fatal(err)
	}
	httpPort := freePort(t)
	run := startDevArgs(t, dataDir(t), httpPort, freePort(t), freePort(t),
		"--admin-email", "root@example.com", "--admin-password", "root-password-123", "--auth-rate-limit", "1000",
		"--agent-offline-after", "3s")
	c := newAPIClient(t, httpPort)
	tok := login(c, "root@example.com", "root-password-123").str("access_token")
	orgs := c.must(200, "GET", api+"/orgs", tok, "", nil)
	org := orgs.Body["items"].([]any)[0].(map[string]any)["id"].(string)
	newToken := func(body map[string]any) string {
		r := c.must(201, "POST", api+"/orgs/"+org+"/enrollment-tokens", tok, org, body)
		return r.str("token")
	}

	// A container that logs steadily, in a compose stack.
	name := uniqueName("e2e-web")
	cid := eng.run(name, `i=0; while true; do i=$((i+1)); echo "line $i"; sleep 0.2; done`,
		map[string]string{"com.docker.compose.project": "e2e", "com.docker.compose.service": "web"})

	// Enroll with the real CLI.
	stateDir := filepath.Join(t.TempDir(), "agent")
	server := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	enrollOut, err := exec.Command(bin, "enroll", "--server", server, "--token", newToken(map[string]any{"name": "e2e"}),
		"--state-dir", stateDir).CombinedOutput()
	if err != nil {
		t.Fatalf("enroll: %v\n%s", err, enrollOut)
	}
	var ident struct {
		AgentID string `json:"agent_id"`
		OrgID   string `json:"org_id"`
	}
	b, err := os.ReadFile(filepath.Join(stateDir, "identity.json"))
	if err != nil || json.Unmarshal(b, &ident) != nil || ident.OrgID != org || ident.AgentID == "" {
		t.Fatalf("identity after enroll: %s %v\n%s", b, err, enrollOut)
	}
	for _, f := range []string{"identity.json", "agent.creds"} {
		if st, err := os.Stat(filepath.Join(stateDir, f)); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v mode %v", f, err, st.Mode())
		}
	}
	id := ident.AgentID

	agent := startAgent(t, bin, stateDir, eng.host)

	// Online, with facts and metrics.
	var got map[string]any
	natstest.CheckFor(t, 30*time.Second, 200*time.Millisecond, func() error {
		r := c.call("GET", api+"/agents", tok, org, nil)
		items, _ := r.Body["items"].([]any)
		if r.Status != 200 || len(items) != 1 {
			return fmt.Errorf("agents: %d %s", r.Status, r.Raw)
		}
		got = items[0].(map[string]any)
		if got["status"] != "online" || got["metrics"] == nil || got["engine"] == "" {
			return fmt.Errorf("agent not online with metrics yet: %s", r.Raw)
		}
		return nil
	})
	if got["id"] != id || got["os"] != runtime.GOOS || got["arch"] != runtime.GOARCH || got["hostname"] == "" || got["last_seen"] == nil {
		t.Fatalf("agent facts: %+v", got)
	}
	host, _ := got["metrics"].(map[string]any)
	if host["mem_total"] == nil || host["cpus"] == nil {
		t.Fatalf("agent metrics: %+v", got["metrics"])
	}

	base := api + "/agents/" + id
	t.Run("containers", func(t *testing.T) {
		r := c.must(200, "GET", base+"/containers", tok, org, nil)
		if !strings.Contains(string(r.Raw), name) {
			t.Fatalf("container list lacks %s: %s", name, r.Raw)
		}
		r = c.must(200, "GET", base+"/containers/"+cid, tok, org, nil)
		if r.str("name") != name || r.str("state") != "running" || r.str("stack") != "e2e" {
			t.Fatalf("inspect: %s", r.Raw)
		}
		r = c.must(200, "POST", base+"/containers/"+name+"/stop?timeout=1", tok, org, nil)
		if r.str("state") != "exited" {
			t.Fatalf("stop: %s", r.Raw)
		}
		r = c.must(200, "POST", base+"/containers/"+name+"/start", tok, org, nil)
		if r.str("state") != "running" {
			t.Fatalf("start: %s", r.Raw)
		}
		r = c.must(200, "POST", base+"/containers/"+name+"/restart?timeout=1", tok, org, nil)
		if r.str("state") != "running" {
			t.Fatalf("restart: %s", r.Raw)
		}
		r = c.must(200, "GET", base+"/stacks", tok, org, nil)
		if !strings.Contains(string(r.Raw), `"e2e"`) {
			t.Fatalf("stacks: %s", r.Raw)
		}
		c.must(200, "GET", base+"/networks", tok, org, nil)
		c.must(200, "GET", base+"/containers/"+cid+"/networks", tok, org, nil)
		natstest.CheckFor(t, 10*time.Second, 200*time.Millisecond, func() error {
			r := c.must(200, "GET", base+"/containers/"+cid+"/logs?tail=3", tok, org, nil)
			lines, _ := r.Body["lines"].([]any)
			if len(lines) != 3 {
				return fmt.Errorf("logs: %s", r.Raw)
			}
			return nil
		})
	})

	t.Run("exec", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		u := fmt.Sprintf("ws://127.0.0.1:%d%s/containers/%s/exec?tty=false&cmd=/bin/sh", httpPort, base, cid)
		ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: http.Header{
			"Authorization": {"Bearer " + tok}, "X-Org-ID": {org}}})
		if err != nil {
			t.Fatalf("dial exec: %v %+v", err, resp)
		}
		defer ws.CloseNow()
		if err := ws.Write(ctx, websocket.MessageBinary, []byte("echo exec-$((40+2))\nexit 3\n")); err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		for {
			typ, data, err := ws.Read(ctx)
			if err != nil {
				t.Fatalf("exec read: %v (output so far %q)", err, out.String())
			}
			if typ == websocket.MessageBinary {
				out.Write(data)
				continue
			}
			var ctl struct {
				Exit *int `json:"exit"`
			}
			if json.Unmarshal(data, &ctl) == nil && ctl.Exit != nil {
				if *ctl.Exit != 3 || !strings.Contains(out.String(), "exec-42") {
					t.Fatalf("exec: exit %d, output %q", *ctl.Exit, out.String())
				}
				return
			}
		}
	})

	t.Run("logs reach the store and the live tail, in their org only", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		auth := &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}, "X-Org-ID": {org}}}
		marker := fmt.Sprintf("marker-%d", time.Now().UnixNano())
		tail, _, err := websocket.Dial(ctx, fmt.Sprintf("ws://127.0.0.1:%d%s/logs/stream?agent_id=%s&q=%s", httpPort, api, id, marker), auth)
		if err != nil {
			t.Fatalf("live tail: %v", err)
		}
		defer tail.CloseNow()
		tailed := make(chan time.Time, 1)
		go func() {
			for {
				_, data, err := tail.Read(ctx)
				if err != nil {
					return
				}
				if strings.Contains(string(data), marker) {
					tailed <- time.Now()
					return
				}
			}
		}()

		// A marker written to the container's stdout now.
		u := fmt.Sprintf("ws://127.0.0.1:%d%s/containers/%s/exec?tty=false&cmd=/bin/sh&cmd=-c&cmd=echo+%s+>/proc/1/fd/1", httpPort, base, cid, marker)
		ws, _, err := websocket.Dial(ctx, u, auth)
		if err != nil {
			t.Fatal(err)
		}
		written := time.Now()
		for {
			if _, _, err := ws.Read(ctx); err != nil {
				break
			}
		}
		var took time.Duration
		natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
			r := c.must(200, "GET", api+"/logs?agent_id="+id+"&q="+marker, tok, org, nil)
			if !strings.Contains(string(r.Raw), marker) {
				return fmt.Errorf("marker not searchable yet")
			}
			took = time.Since(written)
			return nil
		})
		t.Logf("a container's line was searchable through the gateway %s after it was written", took.Round(time.Millisecond))
		select {
		case at := <-tailed:
			t.Logf("the live tail had it %s after it was written", at.Sub(written).Round(time.Millisecond))
		case <-ctx.Done():
			t.Fatal("the live tail never received the line")
		}

		// Another org sees none of it.
		other := register(c, "other@example.com", "Other")
		r := c.must(200, "GET", api+"/logs?q="+marker, other.access, other.orgID, nil)
		if strings.Contains(string(r.Raw), marker) {
			t.Fatalf("another org found the line: %s", r.Raw)
		}
		c.must(404, "GET", base+"/containers", other.access, other.orgID, nil)
	})

	parent := t
	t.Run("offline and back", func(t *testing.T) {
		agent.stop(t)
		waitStatus(t, c, tok, org, id, "offline", 30*time.Second)
		// While it is away its containers' logs come from the store.
		r := c.must(200, "GET", base+"/containers/"+cid+"/logs?tail=3", tok, org, nil)
		if lines, _ := r.Body["lines"].([]any); len(lines) != 3 || r.Header.Get("X-Logs-Source") != "store" {
			t.Fatalf("logs of an offline agent: %v %s", r.Header, r.Raw)
		}
		// Started on the parent test: it must outlive this subtest.
		agent = startAgent(parent, bin, stateDir, eng.host)
		waitStatus(t, c, tok, org, id, "online", 30*time.Second)
	})

	t.Run("delete revokes", func(t *testing.T) {
		natstest.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
			if up, _ := agentStatus(t, stateDir)["link_up"].(bool); !up {
				return fmt.Errorf("agent link not up yet")
			}
			return nil
		})
		c.must(http.StatusNoContent, "DELETE", base, tok, org, nil)
		c.must(http.StatusNotFound, "GET", base, tok, org, nil)
		deadline := time.Now().Add(20 * time.Second)
		for {
			if up, _ := agentStatus(t, stateDir)["link_up"].(bool); !up {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("deleted agent still linked after 20s\nagent:\n%s\ncontrol plane:\n%s", agent.out.String(), run.out.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
		// It keeps trying and is refused every time. An absence cannot be
		// polled for: watch for several of the agent's reconnect attempts.
		time.Sleep(3 * time.Second)
		if up, _ := agentStatus(t, stateDir)["link_up"].(bool); up {
			t.Fatalf("deleted agent reconnected:\n%s", agent.out.String())
		}
		r := c.must(200, "GET", api+"/agents", tok, org, nil)
		if items, _ := r.Body["items"].([]any); len(items) != 0 {
			t.Fatalf("deleted agent still listed: %s", r.Raw)
		}
	})

	t.Run("token limits", func(t *testing.T) {
		enroll := func(token, fp string) response {
			return c.call("POST", api+"/agents/enroll", "", "", map[string]any{
				"token": token, "fingerprint": fp, "hostname": "h-" + fp, "os": "linux", "arch": "amd64", "version": "test"})
		}
		expect := func(r response, status int, detail string) {
			t.Helper()
			if r.Status != status || !strings.Contains(strings.ToLower(string(r.Raw)), detail) {
				t.Fatalf("want %d %q, got %d %s", status, detail, r.Status, r.Raw)
			}
		}
		expired := newToken(map[string]any{"name": "short", "expires_in": "1s"})
		// dev runs on the real clock: let the 1 s token expire.
		time.Sleep(1200 * time.Millisecond)
		expect(enroll(expired, "fp-expired"), http.StatusConflict, "expired")

		once := newToken(map[string]any{"name": "once", "max_uses": 1})
		if r := enroll(once, "fp-a"); r.Status != 200 || r.str("credentials") == "" || r.str("agent_id") == "" {
			t.Fatalf("first use: %d %s", r.Status, r.Raw)
		}
		expect(enroll(once, "fp-b"), http.StatusConflict, "no uses left")

		revoked := c.must(201, "POST", api+"/orgs/"+org+"/enrollment-tokens", tok, org, map[string]any{"name": "revoked"})
		c.must(200, "POST", api+"/orgs/"+org+"/enrollment-tokens/"+revoked.str("id")+"/revoke", tok, org, nil)
		expect(enroll(revoked.str("token"), "fp-c"), http.StatusUnauthorized, "invalid enrollment token")
		expect(enroll("ipe_not-a-real-token", "fp-c"), http.StatusUnauthorized, "invalid enrollment token")

		// The free plan allows 2 agents: fp-a and one more.
		many := newToken(map[string]any{"name": "many"})
		if r := enroll(many, "fp-d"); r.Status != 200 {
			t.Fatalf("second agent: %d %s", r.Status, r.Raw)
		}
		expect(enroll(many, "fp-e"), http.StatusConflict, "allows 2 agents")
		// The same machine again keeps its id and is not a new agent.
		r1, r2 := enroll(many, "fp-d"), enroll(many, "fp-d")
		if r1.Status != 200 || r2.Status != 200 || r1.str("agent_id") != r2.str("agent_id") || r1.str("credentials") == r2.str("credentials") {
			t.Fatalf("re-enrollment: %s / %s", r1.Raw, r2.Raw)
		}
	})
}

func waitStatus(t *testing.T, c *apiClient, tok, org, id, want string, timeout time.Duration) {
	t.Helper()
	began := time.Now()
	natstest.CheckFor(t, timeout, 200*time.Millisecond, func() error {
		r := c.must(200, "GET", api+"/agents/"+id, tok, org, nil)
		if s := r.str("status"); s != want {
			return fmt.Errorf("status %q, want %q", s, want)
		}
		return nil
	})
	t.Logf("agent %s after %s", want, time.Since(began).Round(time.Millisecond))
}
