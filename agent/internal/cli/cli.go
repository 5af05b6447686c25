// Package cli is the command line of infrapilot-agent: `enroll`, `run`,
// `status`, `version` and `help`, each with --help. main wires it with
// Main; nothing here calls os.Exit.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
)

// Exit codes.
const (
	ExitOK         = 0
	ExitError      = 1
	ExitUsage      = 2
	ExitNotRunning = 3 // `status`: the agent is not running
)

// EnvStateDir overrides the default state directory.
const EnvStateDir = "INFRAPILOT_AGENT_STATE_DIR"

// Env is what commands see of the process.
type Env struct {
	Stdout, Stderr io.Writer
	Version        string
	// Getenv reads the environment (os.Getenv when nil).
	Getenv func(string) string
}

func (e Env) getenv(k string) string {
	if e.Getenv == nil {
		return os.Getenv(k)
	}
	return e.Getenv(k)
}

// Command is one subcommand.
type Command struct {
	Name    string
	Summary string
	// Run parses args (after the command name) and does the work. It
	// returns the exit code; flag.ErrHelp handling is done by Main.
	Run func(ctx context.Context, env Env, args []string) int
}

// Main runs the command named by args[0] and returns the exit code.
// Extra commands are added to the built-in ones.
func Main(ctx context.Context, args []string, env Env, extra ...Command) int {
	if env.Stdout == nil {
		env.Stdout = os.Stdout
	}
	if env.Stderr == nil {
		env.Stderr = os.Stderr
	}
	cmds := map[string]Command{}
	for _, c := range append(builtins(), extra...) {
		cmds[c.Name] = c
	}
	if len(args) == 0 {
		usage(env.Stderr, cmds)
		return ExitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		if len(args) > 1 {
			if c, ok := cmds[args[1]]; ok {
				return c.Run(ctx, env, []string{"--help"})
			}
		}
		usage(env.Stdout, cmds)
		return ExitOK
	case "-v", "--version":
		args = []string{"version"}
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(env.Stderr, "infrapilot-agent: unknown command %q\n\n", args[0])
		usage(env.Stderr, cmds)
		return ExitUsage
	}
	return c.Run(ctx, env, args[1:])
}

func usage(w io.Writer, cmds map[string]Command) {
	fmt.Fprintf(w, "infrapilot-agent connects this server's containers to InfraPilot.\n\nUsage:\n  infrapilot-agent <command> [flags]\n\nCommands:\n")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-9s %s\n", n, cmds[n].Summary)
	}
	fmt.Fprintf(w, "  %-9s %s\n\nRun `infrapilot-agent <command> --help` for a command's flags.\n", "help", "show this help")
}

// NewFlagSet returns a flag set for a command that prints its usage on
// --help to stdout; parse errors go to stderr.
func NewFlagSet(env Env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("infrapilot-agent "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: infrapilot-agent %s [flags]\n\n%s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// Parse parses args; ok is false when the command must stop with code
// (0 after --help, 2 after a bad flag).
func Parse(env Env, fs *flag.FlagSet, args []string) (code int, ok bool) {
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(env.Stdout)
			fs.Usage()
			return ExitOK, false
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK, false
		}
		return ExitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.Stderr, "infrapilot-agent: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return ExitUsage, false
	}
	return 0, true
}

// StateDirFlag adds --state-dir, defaulting to $INFRAPILOT_AGENT_STATE_DIR
// and then /var/lib/infrapilot-agent.
func StateDirFlag(env Env, fs *flag.FlagSet) *string {
	def := env.getenv(EnvStateDir)
	if def == "" {
		def = "/var/lib/infrapilot-agent"
	}
	return fs.String("state-dir", def, "state directory (identity, credentials, positions, outbox); env "+EnvStateDir)
}

func builtins() []Command {
	return []Command{
		{Name: "enroll", Summary: "enroll this machine with InfraPilot (--server, --token)", Run: enrollCmd},
		{Name: "run", Summary: "run the agent (collectors, commands, outbox to the hub)", Run: runCmd},
		{Name: "status", Summary: "show whether the agent runs and its link to the hub", Run: statusCmd},
		{Name: "version", Summary: "print the agent version", Run: versionCmd},
	}
}

func versionCmd(_ context.Context, env Env, args []string) int {
	fs := NewFlagSet(env, "version", "Prints the agent's version.")
	if code, ok := Parse(env, fs, args); !ok {
		return code
	}
	fmt.Fprintf(env.Stdout, "infrapilot-agent %s (%s, %s/%s)\n", env.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return ExitOK
}
