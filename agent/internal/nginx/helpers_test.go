package nginx_test

import (
	"context"
	"fmt"
	"github.com/infrapilot/infrapilot/agent/internal/dockertest"
	"github.com/infrapilot/infrapilot/agent/internal/nginx/nginxtest"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/agent/internal/nginx"
	"github.com/infrapilot/infrapilot/events"
)

// EnvNginx names the nginx binary the tests run.
const EnvNginx = "INFRAPILOT_TEST_NGINX"

func nginxBin(t testing.TB) string {
	t.Helper()
	b := os.Getenv(EnvNginx)
	if b == "" {
		t.Fatalf("%s is unset: `export $(deploy/test/acme.sh start | tr '\\n' ' ')` (or %s=/usr/sbin/nginx)", EnvNginx, EnvNginx)
	}
	return b
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// upstream is a real HTTP server on 127.0.0.1 answering body.
func upstream(t testing.TB, body string) int {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, body) }))
	t.Cleanup(s.Close)
	return s.Listener.Addr().(*net.TCPAddr).Port
}

// get fetches http://127.0.0.1:port/ (no keep-alive: each request sees
// the configuration of the moment).
func get(port int) (string, error) { return getURL(fmt.Sprintf("http://127.0.0.1:%d/", port)) }

func getURL(url string) (string, error) {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return string(b), err
}

// serves waits until a request through nginx on port answers want.
func serves(t testing.TB, port int, want string) {
	t.Helper()
	dockertest.CheckFor(t, 10*time.Second, 25*time.Millisecond, func() error {
		got, err := get(port)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("port %d answers %q, want %q", port, got, want)
		}
		return nil
	})
}

// gone waits until nothing answers on port.
func gone(t testing.TB, port int) {
	t.Helper()
	dockertest.CheckFor(t, 10*time.Second, 25*time.Millisecond, func() error {
		if body, err := get(port); err == nil {
			return fmt.Errorf("port %d still answers %q", port, body)
		}
		return nil
	})
}

// rig is a controller on a fresh directory with a local nginx that is
// killed when the test ends.
type rig struct {
	t         testing.TB
	dir       string
	checkPort int
	c         *nginx.Controller
}

func newRig(t testing.TB) *rig {
	t.Helper()
	dir := t.TempDir()
	// nginx's workers run as nobody when the tests run as root: they
	// must be able to reach the directory.
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		_ = os.Chmod(d, 0o755)
	}
	r := &rig{t: t, dir: dir, checkPort: freePort(t)}
	r.c = r.controller()
	t.Cleanup(func() { nginxtest.Stop(t, filepath.Join(dir, "run", "nginx.pid")) })
	return r
}

// controller is a new Controller on the rig's directory (as after an
// agent restart).
func (r *rig) controller() *nginx.Controller {
	r.t.Helper()
	c, err := nginx.New(nginx.Config{Dir: r.dir, Binary: nginxBin(r.t), CheckTimeout: 5 * time.Second})
	if err != nil {
		r.t.Fatal(err)
	}
	return c
}

// mainConf is a hand-made nginx.conf of the shape the proxy service
// renders: pid, temp paths and error log under root, a check server
// answering the revision, the hosts included relatively.
func mainConf(root string, checkPort int, rev uint64, listen string, extra string) string {
	if listen == "" {
		listen = "127.0.0.1"
	}
	return fmt.Sprintf(`pid %[1]s/run/nginx.pid;
error_log %[1]s/logs/error.log;
worker_processes 1;
%[5]s
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %[1]s/run/client_body;
  proxy_temp_path %[1]s/run/proxy;
  fastcgi_temp_path %[1]s/run/fastcgi;
  uwsgi_temp_path %[1]s/run/uwsgi;
  scgi_temp_path %[1]s/run/scgi;
  server {
    listen %[4]s:%[2]d;
    location = /infrapilot-revision { return 200 "%[3]d"; }
  }
  include hosts/*.conf;
}
`, root, checkPort, rev, listen, extra)
}

// hostConf proxies 127.0.0.1:port to upstream (a URL).
func hostConf(port int, upstream string) string {
	return fmt.Sprintf("server {\n  listen 127.0.0.1:%d;\n  location / {\n    proxy_pass %s;\n  }\n}\n", port, upstream)
}

func local(port int) string { return fmt.Sprintf("http://127.0.0.1:%d", port) }

// host is one host of a desired state.
type host struct {
	id, conf string
	requires []string
}

func (r *rig) desired(rev uint64, hosts ...host) events.NginxDesired {
	return desiredAt(r.dir, r.checkPort, rev, "", hosts...)
}

func desiredAt(root string, checkPort int, rev uint64, listen string, hosts ...host) events.NginxDesired {
	d := events.NginxDesired{V: 1, Revision: rev, Mode: events.ProxyModeManaged, CheckPort: checkPort,
		Files: []events.NginxFile{{Path: nginx.MainFile, Content: mainConf(root, checkPort, rev, listen, "")}}}
	for _, h := range hosts {
		d.Files = append(d.Files, events.NginxFile{Path: "hosts/" + h.id + ".conf", Content: h.conf, HostID: h.id, Requires: h.requires})
	}
	return d
}

func (r *rig) apply(d events.NginxDesired) events.NginxApplyResult {
	r.t.Helper()
	start := time.Now()
	res := r.c.Apply(context.Background(), d)
	r.t.Logf("apply revision %d: applied=%v error=%q hosts=%+v in %s", d.Revision, res.Applied, res.Error, res.Hosts, time.Since(start))
	return res
}

// live reads a file of the live generation.
func (r *rig) live(rel string) string {
	b, err := os.ReadFile(filepath.Join(r.dir, "current", rel))
	if err != nil {
		return ""
	}
	return string(b)
}

func hostStatus(res events.NginxApplyResult, id string) events.NginxHostResult {
	for _, h := range res.Hosts {
		if h.HostID == id {
			return h
		}
	}
	return events.NginxHostResult{}
}

// runNginx runs the test nginx binary.
func runNginx(t testing.TB, args ...string) (string, error) {
	out, err := exec.Command(nginxBin(t), args...).CombinedOutput()
	return string(out), err
}
