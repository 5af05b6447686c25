package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/agent/internal/cli"
	"github.com/infrapilot/infrapilot/agent/internal/dockertest"
	"github.com/infrapilot/infrapilot/agent/internal/hubtest"
	"github.com/infrapilot/infrapilot/agent/internal/state"
)

func runCLI(ctx context.Context, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := cli.Main(ctx, args, cli.Env{Stdout: &out, Stderr: &errb, Version: "1.2.3", Getenv: func(string) string { return "" }})
	return code, out.String(), errb.String()
}

func TestHelpOnEveryCommand(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {"help"}, {"-h"}} {
		code, out, _ := runCLI(context.Background(), args...)
		if code != 0 || !strings.Contains(out, "run") || !strings.Contains(out, "status") || !strings.Contains(out, "version") {
			t.Fatalf("%v: %d %q", args, code, out)
		}
	}
	for _, cmd := range []string{"run", "status", "version"} {
		for _, args := range [][]string{{cmd, "--help"}, {cmd, "-h"}, {"help", cmd}} {
			code, out, _ := runCLI(context.Background(), args...)
			if code != 0 || !strings.Contains(out, "Usage: infrapilot-agent "+cmd) {
				t.Fatalf("%v: %d %q", args, code, out)
			}
		}
	}
	if code, _, errOut := runCLI(context.Background(), "frobnicate"); code != cli.ExitUsage || !strings.Contains(errOut, "unknown command") {
		t.Fatalf("unknown command: %d %q", code, errOut)
	}
	if code, _, _ := runCLI(context.Background()); code != cli.ExitUsage {
		t.Fatalf("no command: %d", code)
	}
	if code, _, _ := runCLI(context.Background(), "run", "--no-such-flag"); code != cli.ExitUsage {
		t.Fatalf("bad flag: %d", code)
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	code, out, _ := runCLI(context.Background(), "version")
	if code != 0 || !strings.HasPrefix(out, "infrapilot-agent 1.2.3 (") {
		t.Fatalf("%d %q", code, out)
	}
}

func TestRunRefusesWithoutEnrollment(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	code, _, errOut := runCLI(context.Background(), "run", "--state-dir", dir)
	if code != cli.ExitError || !strings.Contains(errOut, "not enrolled") {
		t.Fatalf("%d %q", code, errOut)
	}
	code, out, _ := runCLI(context.Background(), "status", "--state-dir", filepath.Join(dir, "missing"))
	if code != cli.ExitNotRunning || !strings.Contains(out, "running:   no") {
		t.Fatalf("status: %d %q", code, out)
	}
}

// run → status says running with the hub link up; a second run on the
// same state directory is refused; stop → status says not running. The
// state directory and its files are private.
func TestRunAndStatus(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	dir, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := dir.SaveIdentity(state.Identity{OrgID: "org1", AgentID: "agent1", NATSURL: h.LeafURL()}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		code, _, _ := runCLI(ctx, "run", "--state-dir", dir.Path(), "--docker-host", dockertest.Host(t), "--log-level", "debug")
		done <- code
	}()
	dockertest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		code, out, _ := runCLI(context.Background(), "status", "--state-dir", dir.Path())
		if code != 0 || !strings.Contains(out, "hub link:  up") || !strings.Contains(out, "running:   yes") {
			return &statusErr{out}
		}
		return nil
	})
	if code, _, errOut := runCLI(context.Background(), "run", "--state-dir", dir.Path()); code != cli.ExitError || !strings.Contains(errOut, "in use") {
		t.Fatalf("second agent: %d %q", code, errOut)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("run exited %d", code)
	}
	code, out, _ := runCLI(context.Background(), "status", "--state-dir", dir.Path(), "--json")
	if code != cli.ExitNotRunning || !strings.Contains(out, `"running": false`) {
		t.Fatalf("after stop: %d %q", code, out)
	}
	checkPrivate(t, dir.Path())
}

type statusErr struct{ out string }

func (e *statusErr) Error() string { return "status: " + e.out }

// checkPrivate checks the state directory is 0700 and every regular file
// directly in it is 0600.
func checkPrivate(t *testing.T, dir string) {
	t.Helper()
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("state dir mode %v %v", st.Mode(), err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().IsRegular() && info.Mode().Perm() != 0o600 {
			t.Fatalf("%s has mode %v", e.Name(), info.Mode().Perm())
		}
	}
}
