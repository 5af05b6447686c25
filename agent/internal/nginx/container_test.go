package nginx_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/infrapilot/infrapilot/agent/internal/docker"
	"github.com/infrapilot/infrapilot/agent/internal/dockertest"
	"github.com/infrapilot/infrapilot/agent/internal/nginx"
	"github.com/infrapilot/infrapilot/events"
)

// fakeAPI records the commands a ContainerExec runs.
type fakeAPI struct {
	cmds [][]string
	res  docker.ExecResult
	err  error
}

func (f *fakeAPI) ExecCapture(_ context.Context, ref string, cmd []string) (docker.ExecResult, error) {
	f.cmds = append(f.cmds, append([]string{ref}, cmd...))
	return f.res, f.err
}

func (f *fakeAPI) Container(context.Context, string) (events.ContainerDetail, error) {
	return events.ContainerDetail{NetworkInfo: []events.ContainerNetwork{{Name: "none"}, {Name: "bridge", IPAddress: "10.88.0.7"}}}, nil
}

// The container kind runs `docker exec <container> nginx …` and reaches
// the check server on the container's address.
func TestContainerExecCommands(t *testing.T) {
	t.Parallel()
	api := &fakeAPI{res: docker.ExecResult{Stderr: "nginx: [emerg] x in /srv/r/gen/1/nginx.conf:1\n", ExitCode: 1}}
	e := nginx.NewContainerExec(api, "proxy", "")
	out, err := e.Run(context.Background(), "-t", "-c", "/srv/r/gen/1/nginx.conf")
	if err == nil || !strings.Contains(err.Error(), "exit status 1") || out != api.res.Stderr {
		t.Fatalf("run: %q %v", out, err)
	}
	if want := []string{"proxy", "nginx", "-t", "-c", "/srv/r/gen/1/nginx.conf"}; !slices.Equal(api.cmds[0], want) {
		t.Fatalf("command %q, want %q", api.cmds[0], want)
	}
	api.err = errors.New("engine down")
	if _, err := e.Run(context.Background(), "-v"); err == nil || !strings.Contains(err.Error(), "engine down") {
		t.Fatalf("engine error: %v", err)
	}
	if h, err := e.CheckHost(context.Background()); err != nil || h != "10.88.0.7" {
		t.Fatalf("check host %q %v", h, err)
	}
}

// nginx in a container, with the agent's directory bind-mounted at
// another path: apply (nginx started with docker exec), a failing host,
// and drift, through the real engine. There is no nginx image here, so
// the container is busybox with the host's nginx and its libraries
// mounted read-only.
func TestContainerNginx(t *testing.T) {
	t.Parallel()
	bin := nginxBin(t)
	raw := dockertest.Client(t)
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		_ = os.Chmod(d, 0o755)
	}
	const root = "/srv/infrapilot"
	name := dockertest.Name(t, "nginx")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	binds := []string{bin + ":/usr/sbin/nginx:ro", "/etc/passwd:/etc/passwd:ro", "/etc/group:/etc/group:ro", dir + ":" + root}
	for _, lib := range []string{"/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/lib64"} {
		if _, err := os.Stat(lib); err == nil {
			binds = append(binds, lib+":"+lib+":ro")
		}
	}
	created, err := raw.ContainerCreate(ctx, &container.Config{Image: dockertest.Image, Cmd: []string{"sleep", "3600"},
		Env: []string{"PATH=/bin:/usr/sbin"}}, &container.HostConfig{Binds: binds}, nil, nil, name)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() { dockertest.Remove(t, raw, created.ID) })
	if err := raw.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start: %v", err)
	}
	dc, err := docker.New(dockertest.Host(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dc.Close() })
	detail, err := dc.Container(ctx, created.ID)
	if err != nil || len(detail.NetworkInfo) == 0 || detail.NetworkInfo[0].IPAddress == "" {
		t.Fatalf("inspect: %+v %v", detail, err)
	}
	ip, gw := detail.NetworkInfo[0].IPAddress, detail.NetworkInfo[0].Gateway
	one, two := gatewayUpstream(t, gw, "one"), gatewayUpstream(t, gw, "two")

	c, err := nginx.New(nginx.Config{Dir: dir, Root: root, Kind: events.NginxKindContainer, Container: name,
		Exec: nginx.NewContainerExec(dc, name, ""), CheckTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if info := c.Info(ctx); info.Kind != events.NginxKindContainer || info.Root != root || info.Container != name || info.Version == "" {
		t.Fatalf("info: %+v", info)
	}
	const check, pa, pb = 8089, 8081, 8082
	conf := func(port int, up string) string {
		return strings.Replace(hostConf(port, up), "127.0.0.1:", "", 1)
	}
	apply := func(d events.NginxDesired) events.NginxApplyResult {
		start := time.Now()
		res := c.Apply(ctx, d)
		t.Logf("apply revision %d: applied=%v error=%q hosts=%+v in %s", d.Revision, res.Applied, res.Error, res.Hosts, time.Since(start))
		return res
	}
	via := func(port int, want string) {
		t.Helper()
		dockertest.CheckFor(t, 10*time.Second, 25*time.Millisecond, func() error {
			got, err := getURL(fmt.Sprintf("http://%s:%d/", ip, port))
			if err == nil && got != want {
				err = fmt.Errorf("got %q, want %q", got, want)
			}
			return err
		})
	}

	if res := apply(desiredAt(root, check, 1, "0.0.0.0", host{"host-a", conf(pa, one), nil})); !res.Applied {
		t.Fatalf("revision 1: %+v", res)
	}
	via(pa, "one")

	res := apply(desiredAt(root, check, 2, "0.0.0.0", host{"host-a", conf(pa, "http://nope.invalid"), nil}, host{"host-b", conf(pb, two), nil}))
	a := hostStatus(res, "host-a")
	if !res.Applied || a.Status != events.NginxHostFailed ||
		a.Error != `nginx: [emerg] host not found in upstream "nope.invalid" in `+root+"/gen/"+res.Generation+"/hosts/host-a.conf:4" {
		t.Fatalf("revision 2: %+v", res)
	}
	via(pa, "one")
	via(pb, "two")

	if err := os.WriteFile(filepath.Join(dir, "current", "hosts", "host-b.conf"), []byte("# edited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, ok := c.CheckDrift(ctx)
	if !ok || !d.Restored || !slices.Equal(d.HostIDs, []string{"host-b"}) {
		t.Fatalf("drift: %+v %v", d, ok)
	}
	via(pb, "two")
}

// gatewayUpstream is a real HTTP upstream the container reaches: it
// listens on the host's address on the container's network.
func gatewayUpstream(t *testing.T, gw, body string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(gw, "0"))
	if err != nil {
		t.Fatalf("listen on the gateway %s: %v", gw, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, body) })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}
