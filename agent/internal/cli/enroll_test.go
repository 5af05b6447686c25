package cli_test

// The control plane here is enrolltest's stand-in for POST
// /api/v1/agents/enroll; the real one (gateway, tenancy, natsauth) is
// tested end to end with this CLI in services/cmd/infrapilot
// (TestAgentEndToEnd).

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infrapilot/infrapilot/agent/internal/cli"
	"github.com/infrapilot/infrapilot/agent/internal/enroll/enrolltest"
	"github.com/infrapilot/infrapilot/agent/internal/state"
)

// enrollCLI runs the command line with the given environment variables.
func enrollCLI(vars map[string]string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := cli.Main(context.Background(), args, cli.Env{Stdout: &out, Stderr: &errb, Version: "1.2.3",
		Getenv: func(k string) string { return vars[k] }})
	return code, out.String(), errb.String()
}

func TestEnrollHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"enroll", "--help"}, {"enroll", "-h"}, {"help", "enroll"}} {
		code, out, _ := runCLI(context.Background(), args...)
		if code != 0 || !strings.Contains(out, "Usage: infrapilot-agent enroll") {
			t.Fatalf("%v: %d %q", args, code, out)
		}
		for _, flag := range []string{"-server", "-token", "-state-dir", "-force", "-insecure-http", cli.EnvEnrollToken} {
			if !strings.Contains(out, flag) {
				t.Fatalf("%v: no %s in %q", args, flag, out)
			}
		}
	}
	if code, out, _ := runCLI(context.Background(), "help"); code != 0 || !strings.Contains(out, "  enroll ") {
		t.Fatalf("help does not list enroll: %q", out)
	}
}

// enroll writes a private state directory, says what it did and what to
// do next, and `status` then shows the agent as enrolled. The token
// appears nowhere in the output.
func TestEnrollCommand(t *testing.T) {
	t.Parallel()
	cp := enrolltest.Start(t)
	dir := filepath.Join(t.TempDir(), "state")
	code, out, errOut := enrollCLI(nil, "enroll", "--server", cp.URL+"/", "--token", enrolltest.TokenA, "--state-dir", dir)
	if code != 0 {
		t.Fatalf("%d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{
		"Enrolled this machine as agent agt_1 of org org_a.",
		"server:      " + cp.URL + "\n",
		"hub:         " + enrolltest.HubURL,
		"state:       " + dir + " (identity.json, agent.creds)",
		"systemctl enable --now infrapilot-agent",
		"infrapilot-agent run --state-dir " + dir,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out+errOut, enrolltest.TokenA) {
		t.Fatal("the token was printed")
	}
	checkPrivate(t, dir)
	if code, out, _ := runCLI(context.Background(), "status", "--state-dir", dir); code != cli.ExitNotRunning ||
		!strings.Contains(out, "enrolled:  agent agt_1 of org org_a, hub "+enrolltest.HubURL) {
		t.Fatalf("status after enroll: %d %q", code, out)
	}

	// Again, with the token from the environment: the same agent.
	code, out, errOut = enrollCLI(map[string]string{cli.EnvEnrollToken: enrolltest.TokenA}, "enroll", "--server", cp.URL, "--state-dir", dir)
	if code != 0 || !strings.Contains(out, "Re-enrolled this machine as agent agt_1 of org org_a.") ||
		!strings.Contains(out, "revoked the previous credentials") {
		t.Fatalf("re-enroll: %d\n%s\n%s", code, out, errOut)
	}

	// Another org's token: refused without --force, done with it.
	code, _, errOut = enrollCLI(nil, "enroll", "--server", cp.URL, "--token", enrolltest.TokenB, "--state-dir", dir)
	if code != cli.ExitError || !strings.Contains(errOut, "rerun with --force") || strings.Contains(errOut, enrolltest.TokenB) {
		t.Fatalf("other org: %d %q", code, errOut)
	}
	code, out, errOut = enrollCLI(nil, "enroll", "--server", cp.URL, "--token", enrolltest.TokenB, "--state-dir", dir, "--force")
	if code != 0 || !strings.Contains(out, "of org org_b.") || !strings.Contains(out, "Replaced agent agt_1 of org org_a") {
		t.Fatalf("--force: %d\n%s\n%s", code, out, errOut)
	}
	if strings.Contains(out+errOut, enrolltest.TokenB) {
		t.Fatal("the token was printed")
	}
}

// Failures are one clear line on stderr, exit 1 (2 for usage), without
// the token, and leave no identity behind.
func TestEnrollFailures(t *testing.T) {
	t.Parallel()
	cp := enrolltest.Start(t)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"expired", []string{"--server", cp.URL, "--token", enrolltest.TokenExpired}, cli.ExitError,
			"infrapilot-agent enroll: the enrollment token has expired (409 Conflict)\n"},
		{"unknown token", []string{"--server", cp.URL, "--token", "ipe_nosuchtoken0000000000000000000000"}, cli.ExitError,
			"infrapilot-agent enroll: invalid enrollment token (401 Unauthorized)\n"},
		{"echoed token", []string{"--server", cp.URL, "--token", enrolltest.TokenEcho}, cli.ExitError,
			"infrapilot-agent enroll: token [token] is malformed (400 Bad Request)\n"},
		{"plain http", []string{"--server", "http://infrapilot.example.com", "--token", enrolltest.TokenA}, cli.ExitError,
			"use https (or --insecure-http"},
		{"no token", []string{"--server", cp.URL}, cli.ExitUsage, "--server and --token"},
		{"no server", []string{"--token", enrolltest.TokenA}, cli.ExitUsage, "--server and --token"},
		{"extra argument", []string{"--server", cp.URL, "--token", enrolltest.TokenA, "now"}, cli.ExitUsage, "unexpected arguments"},
	} {
		dir := filepath.Join(t.TempDir(), "state")
		code, out, errOut := enrollCLI(nil, append([]string{"enroll", "--state-dir", dir}, tc.args...)...)
		if code != tc.code || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%s: %d %q, want %d %q", tc.name, code, errOut, tc.code, tc.want)
		}
		for _, tok := range []string{enrolltest.TokenA, enrolltest.TokenExpired, enrolltest.TokenEcho, "ipe_nosuchtoken"} {
			if strings.Contains(out+errOut, tok) {
				t.Errorf("%s: the token was printed: %q %q", tc.name, out, errOut)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, state.IdentityFile)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: identity written: %v", tc.name, err)
		}
	}
}
