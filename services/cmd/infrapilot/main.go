// Command infrapilot runs the InfraPilot control plane: everything in one
// process (`infrapilot dev`), chosen services against external NATS and
// Postgres (`infrapilot run`), migrations, and version.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `infrapilot — the InfraPilot control plane

Usage:
  infrapilot dev [flags]                 everything in one process on embedded NATS and a private Postgres
  infrapilot run [flags] <service>...    the named services (and/or "gateway") against external NATS/Postgres
  infrapilot migrate [flags] [service...] apply the services' database migrations
  infrapilot nats-init [flags]           keys, server configuration and credentials of a production NATS
  infrapilot audit verify --file F       verify an audit export offline (no server needed)
  infrapilot version                     print the version

Services: %s
Run "infrapilot <command> --help" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(Main(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

// Main runs one infrapilot command and returns the process exit code. It is
// what main calls and what the end-to-end tests drive.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintf(stdout, usage, serviceNames())
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	var err error
	switch args[0] {
	case "dev":
		err = runDev(ctx, args[1:], stdout, stderr, getenv)
	case "run":
		err = runServices(ctx, args[1:], stdout, stderr, getenv)
	case "migrate":
		err = runMigrate(ctx, args[1:], stdout, stderr, getenv)
	case "nats-init":
		err = runNATSInit(ctx, args[1:], stdout, stderr, getenv)
	case "audit":
		if len(args) < 2 || args[1] != "verify" {
			fmt.Fprintln(stderr, "usage: infrapilot audit verify --file export.jsonl [--checkpoint FILE --public-key KEY]")
			return 2
		}
		err = runAuditVerify(ctx, args[2:], stdout, stderr, getenv)
	case "version":
		fmt.Fprintln(stdout, "infrapilot", version)
	default:
		fmt.Fprintf(stderr, "infrapilot: unknown command %q\n\n", args[0])
		fmt.Fprintf(stderr, usage, serviceNames())
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintln(stderr, "infrapilot:", err)
		return 1
	}
}

// errUsage marks a command-line mistake already reported to the user.
var errUsage = errors.New("usage")
