package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/infrapilot/infrapilot/agent/internal/nginx/nginxtest"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/agent/internal/app"
	"github.com/infrapilot/infrapilot/agent/internal/dockertest"
	"github.com/infrapilot/infrapilot/agent/internal/hubtest"
	"github.com/infrapilot/infrapilot/agent/internal/state"
	"github.com/infrapilot/infrapilot/events"
	"github.com/nats-io/nats.go"
)

// runAgent runs an agent with cfg on a fresh enrolled state directory.
func runAgent(t *testing.T, h *hubtest.Hub, cfg app.Config) {
	t.Helper()
	dir, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := dir.SaveIdentity(state.Identity{OrgID: org, AgentID: agentID, NATSURL: h.LeafURL()}); err != nil {
		t.Fatal(err)
	}
	cfg.StateDir, cfg.DockerHost, cfg.Version = dir.Path(), dockertest.Host(t), "test"
	a, err := app.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; a.Close() })
}

// command calls an agent operation through the hub and returns the
// reply's body, or the error code and message.
func command(nc *nats.Conn, op string, req any) ([]byte, error) {
	b, _ := json.Marshal(req)
	m, err := nc.Request(events.AgentCommand(org, agentID, op), b, 30*time.Second)
	if err != nil {
		return nil, err
	}
	if code := m.Header.Get(events.HeaderServiceErrorCode); code != "" {
		return nil, fmt.Errorf("%s: %s", code, m.Header.Get(events.HeaderServiceError))
	}
	return m.Data, nil
}

// Without --nginx-dir the nginx and certificate operations answer
// "unavailable", and the agent does not ask for a desired state.
func TestNginxDisabled(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	nc := h.Connect()
	var asked atomic.Int32
	if _, err := nc.Subscribe(events.AgentDesiredRequest(org, agentID), func(*nats.Msg) { asked.Add(1) }); err != nil {
		t.Fatal(err)
	}
	runAgent(t, h, app.Config{HeartbeatInterval: 100 * time.Millisecond})
	dockertest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		_, err := command(nc, events.OpAgentPing, events.Empty{})
		return err
	})
	for _, op := range []string{events.OpAgentNginxApply, events.OpAgentNginxTest, events.OpAgentCertIssue} {
		_, err := command(nc, op, struct{}{})
		if err == nil || err.Error() != "unavailable: nginx management is not enabled on this agent" {
			t.Fatalf("%s: %v", op, err)
		}
	}
	if n := asked.Load(); n != 0 {
		t.Fatalf("the agent asked for a desired state %d times", n)
	}
}

// With --nginx-dir the agent asks for its desired state and applies it on
// a real nginx, publishes the result, and applies what nginx.apply sends.
func TestNginxManaged(t *testing.T) {
	t.Parallel()
	bin := os.Getenv("INFRAPILOT_TEST_NGINX")
	if bin == "" {
		t.Fatal("INFRAPILOT_TEST_NGINX is unset: `export $(deploy/test/acme.sh start | tr '\\n' ' ')`")
	}
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		_ = os.Chmod(d, 0o755)
	}
	t.Cleanup(func() { nginxtest.Stop(t, filepath.Join(dir, "run", "nginx.pid")) })
	check, port := freePort(t), freePort(t)
	one, two := upstreamServer(t, "one"), upstreamServer(t, "two")
	desired := func(rev uint64, up string) events.NginxDesired {
		return events.NginxDesired{V: 1, Revision: rev, Mode: events.ProxyModeManaged, CheckPort: check, Files: []events.NginxFile{
			{Path: "nginx.conf", Content: fmt.Sprintf(`pid %[1]s/run/nginx.pid;
error_log %[1]s/logs/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %[1]s/run/body; proxy_temp_path %[1]s/run/proxy; fastcgi_temp_path %[1]s/run/fcgi;
  uwsgi_temp_path %[1]s/run/uwsgi; scgi_temp_path %[1]s/run/scgi;
  server { listen 127.0.0.1:%[2]d; location = /infrapilot-revision { return 200 "%[3]d"; } }
  include hosts/*.conf;
}
`, dir, check, rev)},
			{Path: "hosts/h1.conf", HostID: "h1", Content: fmt.Sprintf("server { listen 127.0.0.1:%d; location / { proxy_pass %s; } }\n", port, up)},
		}}
	}

	h := hubtest.Start(t)
	nc := h.Connect()
	if _, err := nc.Subscribe(events.AgentDesiredRequest(org, agentID), func(m *nats.Msg) {
		b, _ := json.Marshal(desired(1, one))
		_ = m.Respond(b)
	}); err != nil {
		t.Fatal(err)
	}
	runAgent(t, h, app.Config{Nginx: &app.NginxConfig{Dir: dir, Binary: bin, DriftInterval: time.Second}})
	serves(t, port, "one")
	dockertest.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		msgs, err := h.Messages(events.StreamAgentEvents, events.AgentEvents(org, agentID))
		if err != nil {
			return err
		}
		for _, m := range msgs {
			var ev events.AgentNginxEvent
			if json.Unmarshal(m.Data, &ev) == nil && ev.Kind == events.AgentEventKindNginxApplied && ev.Result != nil && ev.Result.Applied {
				return nil
			}
		}
		return fmt.Errorf("no nginx.applied event among %d", len(msgs))
	})

	body, err := command(nc, events.OpAgentNginxApply, desired(2, two))
	var res events.NginxApplyResult
	if err != nil || json.Unmarshal(body, &res) != nil || !res.Applied || res.Revision != 2 {
		t.Fatalf("nginx.apply: %s %v", body, err)
	}
	serves(t, port, "two")
	bad := desired(3, "http://nope.invalid")
	body, err = command(nc, events.OpAgentNginxTest, bad)
	var tr events.NginxTestResult
	if err != nil || json.Unmarshal(body, &tr) != nil || tr.OK || !strings.Contains(tr.Output, "host not found in upstream") {
		t.Fatalf("nginx.test: %s %v", body, err)
	}
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func upstreamServer(t *testing.T, body string) string {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, body) }))
	t.Cleanup(s.Close)
	return s.URL
}

func serves(t *testing.T, port int, want string) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	dockertest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if string(b) != want {
			return fmt.Errorf("got %q, want %q", b, want)
		}
		return nil
	})
}
