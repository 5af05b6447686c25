package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// envDockerHost names the real Docker-API engine the end-to-end tests run
// containers on (podman's compatible service from deploy/test/podman.sh).
const envDockerHost = "INFRAPILOT_TEST_DOCKER_HOST"

// testImage is the busybox image deploy/test/podman.sh builds locally.
const testImage = "localhost/busybox:latest"

// engine is the few Docker API calls the end-to-end tests make to set up
// containers; the agent under test uses the real docker client.
type engine struct {
	t    testing.TB
	host string
	http *http.Client
}

func newEngine(t testing.TB) *engine {
	t.Helper()
	host := os.Getenv(envDockerHost)
	if host == "" {
		t.Fatalf("%s is unset: start an engine with `export %s=$(deploy/test/podman.sh start)`", envDockerHost, envDockerHost)
	}
	sock, ok := strings.CutPrefix(host, "unix://")
	if !ok {
		t.Fatalf("%s=%s: only unix sockets are supported here", envDockerHost, host)
	}
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}
	return &engine{t: t, host: host, http: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

func (e *engine) do(method, path string, body any, out any) int {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://engine"+path, rd)
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatalf("engine %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 && resp.StatusCode != http.StatusNotModified && resp.StatusCode != http.StatusNotFound {
		e.t.Fatalf("engine %s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		_ = json.Unmarshal(raw, out)
	}
	return resp.StatusCode
}

// run creates and starts a busybox container running sh -c script; it
// is removed when the test ends.
func (e *engine) run(name, script string, labels map[string]string) string {
	e.t.Helper()
	var created struct{ Id string }
	e.do("POST", "/containers/create?name="+name, map[string]any{
		"Image": testImage, "Cmd": []string{"sh", "-c", script}, "Labels": labels}, &created)
	e.t.Cleanup(func() { e.remove(created.Id) })
	e.do("POST", "/containers/"+created.Id+"/start", nil, nil)
	return created.Id
}

// remove force-removes a container and kills the conmon processes podman
// keeps for it, which would otherwise outlive the test.
func (e *engine) remove(id string) {
	req, _ := http.NewRequest("DELETE", "http://engine/containers/"+id+"?force=true", nil)
	if resp, err := e.http.Do(req); err == nil {
		resp.Body.Close()
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte(id)) || filepath.Base(strings.Split(string(b), "\x00")[0]) != "conmon" {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// uniqueName is a container name unique to this run.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), time.Now().UnixNano()%1_000_000)
}
