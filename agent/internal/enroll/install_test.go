package enroll_test

// deploy/agent/install.sh and its systemd unit. The script runs for real
// only as root on a systemd host, so these tests run it with --dry-run
// (which downloads, checks and runs `version` of the binary, and prints
// the privileged steps) against a real agent binary built here.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/agent/internal/enroll/enrolltest"
)

var (
	installScript = filepath.Join("..", "..", "..", "deploy", "agent", "install.sh")
	unitFile      = filepath.Join("..", "..", "..", "deploy", "agent", "infrapilot-agent.service")
)

func TestInstallScriptSyntax(t *testing.T) {
	t.Parallel()
	shells := 0
	for _, sh := range [][]string{{"sh"}, {"dash"}, {"bash", "--posix"}, {"busybox", "sh"}} {
		if _, err := exec.LookPath(sh[0]); err != nil {
			continue
		}
		shells++
		if out, err := exec.Command(sh[0], append(sh[1:], "-n", installScript)...).CombinedOutput(); err != nil {
			t.Errorf("%v -n: %v\n%s", sh, err, out)
		}
	}
	if shells == 0 {
		t.Fatal("no sh")
	}
	if _, err := exec.LookPath("shellcheck"); err != nil {
		t.Log("shellcheck is not installed; only sh -n checked")
		return
	}
	if out, err := exec.Command("shellcheck", "-s", "sh", installScript).CombinedOutput(); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}

// The script carries the unit (it is piped to sh, with no files beside
// it); the copy must be the file's.
func TestServiceUnit(t *testing.T) {
	t.Parallel()
	script, err := os.ReadFile(installScript)
	if err != nil {
		t.Fatal(err)
	}
	unit, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := bytes.Cut(script, []byte("<<'UNIT'\n"))
	embedded, _, ok2 := bytes.Cut(rest, []byte("\nUNIT\n"))
	if !ok || !ok2 {
		t.Fatal("install.sh has no <<'UNIT' here-document")
	}
	if string(embedded)+"\n" != string(unit) {
		t.Fatalf("install.sh's unit differs from %s", unitFile)
	}
	for _, line := range []string{
		"ExecStart=/usr/local/bin/infrapilot-agent run --state-dir /var/lib/infrapilot-agent --log-format json",
		"Restart=always", "After=network-online.target docker.service", "SupplementaryGroups=docker",
		"NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=/var/lib/infrapilot-agent",
		"ProtectHome=read-only", "PrivateTmp=yes", "WantedBy=multi-user.target",
	} {
		if !bytes.Contains(unit, []byte("\n"+line+"\n")) {
			t.Errorf("the unit lacks %q", line)
		}
	}
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Log("systemd-analyze is not installed; the unit is not verified")
		return
	}
	// verify insists that ExecStart exists.
	dir := t.TempDir()
	p := filepath.Join(dir, "infrapilot-agent.service")
	if err := os.WriteFile(p, bytes.ReplaceAll(unit, []byte("/usr/local/bin/infrapilot-agent"), []byte("/bin/true")), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("systemd-analyze", "verify", "--man=no", p).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

var (
	agentOnce sync.Once
	agentPath string
	agentErr  error
)

// agentBinary builds infrapilot-agent at version 1.2.3 once per test run.
func agentBinary(t *testing.T) []byte {
	t.Helper()
	agentOnce.Do(func() {
		dir, err := os.MkdirTemp("", "infrapilot-agent-bin")
		if err != nil {
			agentErr = err
			return
		}
		agentPath = filepath.Join(dir, "infrapilot-agent")
		out, err := exec.Command(goTool(), "build", "-ldflags", "-X main.version=1.2.3", "-o", agentPath,
			"github.com/infrapilot/infrapilot/agent/cmd/infrapilot-agent").CombinedOutput()
		if err != nil {
			agentErr = &buildErr{err, out}
		}
	})
	if agentErr != nil {
		t.Fatal(agentErr)
	}
	b, err := os.ReadFile(agentPath)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMain(m *testing.M) {
	code := m.Run()
	if agentPath != "" {
		os.RemoveAll(filepath.Dir(agentPath))
	}
	os.Exit(code)
}

type buildErr struct {
	err error
	out []byte
}

func (e *buildErr) Error() string { return "go build: " + e.err.Error() + "\n" + string(e.out) }

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// writeAgent puts the agent binary (and optionally a .sha256 beside it)
// in a new directory and returns its path.
func writeAgent(t *testing.T, sum string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "infrapilot-agent")
	if err := os.WriteFile(p, agentBinary(t), 0o755); err != nil {
		t.Fatal(err)
	}
	if sum != "" {
		if err := os.WriteFile(p+".sha256", []byte(sum+"  infrapilot-agent\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

type scriptResult struct {
	code        int
	out, errOut string
}

// runScript runs install.sh with sh, without the caller's token variable.
func runScript(t *testing.T, env []string, args ...string) scriptResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", append([]string{installScript}, args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "INFRAPILOT_ENROLL_TOKEN=") && !strings.HasPrefix(kv, "TMPDIR=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(append(cmd.Env, "TMPDIR="+t.TempDir()), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatal(err)
		}
		code = ee.ExitCode()
	}
	r := scriptResult{code, out.String(), errOut.String()}
	for _, tok := range []string{enrolltest.TokenA, enrolltest.TokenB} {
		if strings.Contains(r.out+r.errOut, tok) {
			t.Fatalf("install.sh printed the token:\n%s\n%s", r.out, r.errOut)
		}
	}
	return r
}

// inOrder checks that every want appears in out, in this order.
func inOrder(t *testing.T, out string, want ...string) {
	t.Helper()
	rest := out
	for _, w := range want {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Fatalf("output lacks %q after the previous steps:\n%s", w, out)
		}
		rest = rest[i+len(w):]
	}
}

var systemPaths = []string{"/usr/local/bin/infrapilot-agent", "/etc/systemd/system/infrapilot-agent.service",
	"/etc/systemd/system/infrapilot-agent.service.d", "/var/lib/infrapilot-agent"}

func statSystem() string {
	var b strings.Builder
	for _, p := range systemPaths {
		st, err := os.Stat(p)
		if err != nil {
			b.WriteString(p + " absent\n")
			continue
		}
		b.WriteString(p + " " + st.Mode().String() + " " + st.ModTime().String() + "\n")
	}
	return b.String()
}

// A dry run with a local binary prints every privileged step in order,
// runs none, and keeps the token out of its output (enroll gets it in its
// environment).
func TestInstallDryRunWithLocalBinary(t *testing.T) {
	t.Parallel()
	before := statSystem()
	bin := writeAgent(t, "")
	r := runScript(t, nil, "--dry-run", "--server", "https://cp.example.com/api/v1/", "--token", enrolltest.TokenA,
		"--binary", bin, "--docker-host", "unix:///run/podman/podman.sock")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.out, r.errOut)
	}
	inOrder(t, r.out,
		"Using "+bin,
		"Agent: infrapilot-agent 1.2.3 (",
		"+ install -m 0755 ", "/infrapilot-agent /usr/local/bin/.infrapilot-agent.new\n",
		"+ mv -f /usr/local/bin/.infrapilot-agent.new /usr/local/bin/infrapilot-agent\n",
		"+ mkdir -p /var/lib/infrapilot-agent\n",
		"+ chown infrapilot-agent:infrapilot-agent /var/lib/infrapilot-agent\n",
		"+ chmod 0700 /var/lib/infrapilot-agent\n",
		"+ INFRAPILOT_ENROLL_TOKEN=<token> /usr/local/bin/infrapilot-agent enroll --server https://cp.example.com --state-dir /var/lib/infrapilot-agent\n",
		"+ write /etc/systemd/system/infrapilot-agent.service (mode 0644)\n",
		"+ write /etc/systemd/system/infrapilot-agent.service.d/install.conf (mode 0644)\n",
		`  | Environment="DOCKER_HOST=unix:///run/podman/podman.sock"`,
		"+ systemctl daemon-reload\n",
		"+ systemctl enable --now infrapilot-agent\n",
		"Dry run: nothing was changed.\n")
	if after := statSystem(); after != before {
		t.Fatalf("the dry run changed the system:\n%s\nbefore:\n%s", after, before)
	}

	// The token may come from the environment, and --force and
	// --insecure-http reach enroll.
	r = runScript(t, []string{"INFRAPILOT_ENROLL_TOKEN=" + enrolltest.TokenB}, "--dry-run", "--server=http://cp.example.com",
		"--insecure-http", "--force", "--binary", bin)
	if r.code != 0 || !strings.Contains(r.out, "enroll --server http://cp.example.com --state-dir /var/lib/infrapilot-agent --insecure-http --force\n") {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.out, r.errOut)
	}
}

// A .sha256 beside the local binary is checked; --version is checked
// against what the binary says.
func TestInstallChecksBinary(t *testing.T) {
	t.Parallel()
	sum := sha256.Sum256(agentBinary(t))
	good := hex.EncodeToString(sum[:])
	bad := strings.Repeat("0", 64)
	for _, tc := range []struct {
		name string
		sum  string
		args []string
		code int
		want string
	}{
		{"good checksum", good, nil, 0, "Checksum verified"},
		{"upper-case checksum", strings.ToUpper(good), nil, 0, "Checksum verified"},
		{"bad checksum", bad, nil, 1, "checksum mismatch: the agent binary has SHA-256 " + good},
		{"not a checksum", "hello", nil, 1, "is not a SHA-256 checksum"},
		{"right version", "", []string{"--version", "1.2.3"}, 0, "Agent: infrapilot-agent 1.2.3 ("},
		{"right version with v", "", []string{"--version", "v1.2.3"}, 0, "Agent: infrapilot-agent 1.2.3 ("},
		{"wrong version", "", []string{"--version", "1.2.4"}, 1, "asked for version 1.2.4, but the binary says: infrapilot-agent 1.2.3 ("},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"--dry-run", "--server", "https://cp.example.com", "--token", enrolltest.TokenA,
				"--binary", writeAgent(t, tc.sum)}, tc.args...)
			r := runScript(t, nil, args...)
			if r.code != tc.code || !strings.Contains(r.out+r.errOut, tc.want) {
				t.Fatalf("exit %d, want %d and %q\n%s\n%s", r.code, tc.code, tc.want, r.out, r.errOut)
			}
			if tc.code != 0 && strings.Contains(r.out, "+ ") {
				t.Fatalf("steps printed after a failed check:\n%s", r.out)
			}
		})
	}
	// Not an agent at all.
	fake := filepath.Join(t.TempDir(), "infrapilot-agent")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho hello\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if r := runScript(t, nil, "--dry-run", "--server", "https://cp.example.com", "--token", enrolltest.TokenA, "--binary", fake); r.code == 0 ||
		!strings.Contains(r.errOut, "is not the InfraPilot agent") {
		t.Fatalf("a non-agent binary: %d %q", r.code, r.errOut)
	}
}

// Without --binary the script downloads SERVER/downloads/[VERSION/]
// infrapilot-agent-linux-ARCH (or --binary-url) and checks its .sha256
// when the server has one.
func TestInstallDownloads(t *testing.T) {
	t.Parallel()
	arch := runtime.GOARCH
	if arch != "amd64" && arch != "arm64" {
		t.Skipf("install.sh supports amd64 and arm64, not %s", arch)
	}
	if _, err := exec.LookPath("curl"); err != nil {
		if _, err := exec.LookPath("wget"); err != nil {
			t.Fatal("install.sh needs curl or wget")
		}
	}
	bin := agentBinary(t)
	sum := sha256.Sum256(bin)
	name := "infrapilot-agent-linux-" + arch
	files := map[string][]byte{
		"/downloads/" + name:                  bin,
		"/downloads/" + name + ".sha256":      []byte(hex.EncodeToString(sum[:]) + "  " + name + "\n"),
		"/downloads/1.2.3/" + name:            bin, // no checksum published
		"/mirror/corrupt/" + name:             append(append([]byte{}, bin...), 0),
		"/mirror/corrupt/" + name + ".sha256": []byte(hex.EncodeToString(sum[:]) + "\n"),
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(b)
	}))
	t.Cleanup(srv.Close) // after the parallel subtests
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"default", nil, 0, []string{"Downloading " + srv.URL + "/downloads/" + name + "\n", "Checksum verified (" + srv.URL + "/downloads/" + name + ".sha256)",
			"Agent: infrapilot-agent 1.2.3 (", "+ systemctl enable --now infrapilot-agent"}},
		{"version", []string{"--version", "1.2.3"}, 0, []string{"Downloading " + srv.URL + "/downloads/1.2.3/" + name + "\n",
			"+ systemctl enable --now", // stdout, then stderr:
			"warning: no checksum at " + srv.URL + "/downloads/1.2.3/" + name + ".sha256: the download is not verified"}},
		{"corrupt", []string{"--binary-url", srv.URL + "/mirror/corrupt/" + name}, 1, []string{"checksum mismatch"}},
		{"missing", []string{"--version", "9.9.9"}, 1, []string{"cannot download " + srv.URL + "/downloads/9.9.9/" + name}},
		{"plain http mirror", []string{"--binary-url", "http://mirror.example.com/" + name}, 1, []string{"--binary-url http://mirror.example.com/" + name + " is plain http"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runScript(t, nil, append([]string{"--dry-run", "--server", srv.URL, "--token", enrolltest.TokenA}, tc.args...)...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\n%s\n%s", r.code, tc.code, r.out, r.errOut)
			}
			inOrder(t, r.out+r.errOut, tc.want...)
		})
	}
}

func TestInstallRefusals(t *testing.T) {
	t.Parallel()
	tok := []string{"--token", enrolltest.TokenA}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{tok, "--server is required"},
		{[]string{"--server", "https://cp.example.com"}, "--token is required"},
		{append([]string{"--server", "http://cp.example.com"}, tok...), "--server http://cp.example.com is plain http: use https (or --insecure-http"},
		{append([]string{"--server", "cp.example.com"}, tok...), "--server must be an https:// URL"},
		{append([]string{"--server", "https://cp.example.com", "--binary", "/nonexistent/agent"}, tok...), "--binary /nonexistent/agent: no such file"},
		{append([]string{"--server", "https://cp.example.com", "--docker-host", "unix:///a b"}, tok...), "--docker-host must not contain spaces"},
		{append([]string{"--server", "https://cp.example.com", "--frobnicate"}, tok...), "unknown argument '--frobnicate'"},
		{append([]string{"--server", "https://cp.example.com", "--colour=red"}, tok...), "unknown option --colour"},
		{[]string{"--server", "https://cp.example.com", "--token"}, "--token needs a value"},
	} {
		r := runScript(t, nil, append([]string{"--dry-run"}, tc.args...)...)
		if r.code != 1 || !strings.Contains(r.errOut, "install.sh: "+tc.want) {
			t.Errorf("%v: exit %d %q, want %q", tc.args, r.code, r.errOut, tc.want)
		}
	}
	if r := runScript(t, nil, "--help"); r.code != 0 || !strings.Contains(r.out, "Usage: install.sh --server URL --token TOKEN") {
		t.Fatalf("--help: %d %q", r.code, r.out)
	}
}
