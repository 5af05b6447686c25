package cli

import (
	"context"
	"fmt"

	"github.com/infrapilot/infrapilot/agent/internal/enroll"
	"github.com/infrapilot/infrapilot/agent/internal/state"
)

// EnvEnrollToken gives enroll its token when --token is not given. It is
// how install.sh passes it: a process's arguments are visible to every
// local user (ps), its environment is not.
const EnvEnrollToken = "INFRAPILOT_ENROLL_TOKEN"

func enrollCmd(ctx context.Context, env Env, args []string) int {
	fs := NewFlagSet(env, "enroll", "Enrolls this machine with InfraPilot: sends its fingerprint (a keyed hash of\n"+
		"/etc/machine-id) and facts (hostname, OS, architecture, agent version) with an\n"+
		"enrollment token to the control plane, and writes the identity and NATS\n"+
		"credentials it answers with to the state directory (0600 files, 0700 directory).\n"+
		"Re-enrolling the same machine keeps its agent id and replaces its credentials.\n"+
		"Stop a running agent first.")
	server := fs.String("server", "", "the control plane's URL, e.g. https://infrapilot.example.com (required)")
	token := fs.String("token", "", "an enrollment token from InfraPilot (required; or env "+EnvEnrollToken+")")
	stateDir := StateDirFlag(env, fs)
	force := fs.Bool("force", false, "replace the identity of another agent or org, or enroll with another server\n(the old agent's unsent data, positions and status are discarded)")
	insecure := fs.Bool("insecure-http", false, "allow a plain http:// server URL for a server that is not this machine")
	if code, ok := Parse(env, fs, args); !ok {
		return code
	}
	tok := *token
	if tok == "" {
		tok = env.getenv(EnvEnrollToken)
	}
	if *server == "" || tok == "" {
		fmt.Fprintf(env.Stderr, "infrapilot-agent enroll: --server and --token (or $%s) are required; see --help\n", EnvEnrollToken)
		return ExitUsage
	}
	res, err := enroll.Enroll(ctx, enroll.Config{Server: *server, Token: tok, StateDir: *stateDir, Force: *force,
		InsecureHTTP: *insecure, Version: env.Version, Progress: env.Stderr})
	if err != nil {
		fmt.Fprintf(env.Stderr, "infrapilot-agent %v\n", err)
		return ExitError
	}
	printEnrolled(env, res)
	return ExitOK
}

func printEnrolled(env Env, res enroll.Result) {
	w, id := env.Stdout, res.Identity
	how := "Enrolled"
	if res.Reenrolled {
		how = "Re-enrolled"
	}
	fmt.Fprintf(w, "%s this machine as agent %s of org %s.\n", how, id.AgentID, id.OrgID)
	fmt.Fprintf(w, "  server:      %s\n", id.Server)
	fmt.Fprintf(w, "  hub:         %s\n", id.NATSURL)
	files := state.IdentityFile
	if res.CredsFile != "" {
		files += ", " + state.CredsFile
	}
	fmt.Fprintf(w, "  state:       %s (%s)\n", res.StateDir, files)
	fmt.Fprintf(w, "  fingerprint: %s (from %s)\n", id.Fingerprint, res.FingerprintSource)
	if res.Reenrolled {
		fmt.Fprintf(w, "The control plane knew this machine: it kept its agent id and revoked the previous credentials.\n")
	}
	if r := res.Replaced; r != nil {
		if r.AgentID == "" {
			fmt.Fprintf(w, "Replaced an unreadable identity; the old agent's outbox, positions and status were discarded.\n")
		} else {
			fmt.Fprintf(w, "Replaced agent %s of org %s; its outbox, positions and status were discarded.\n", r.AgentID, r.OrgID)
		}
	}
	fmt.Fprintf(w, "\nNext, start the agent:\n")
	fmt.Fprintf(w, "  as a service:       systemctl enable --now infrapilot-agent\n")
	fmt.Fprintf(w, "  in the foreground:  infrapilot-agent run --state-dir %s\n", res.StateDir)
}
