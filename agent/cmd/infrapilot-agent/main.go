// Command infrapilot-agent runs on a customer's server and connects it to
// the InfraPilot control plane: `enroll` (an enrollment token for scoped
// NATS credentials), `run` (leaf node, outbox, collectors, command
// handlers), `status`, `version`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/infrapilot/infrapilot/agent/internal/cli"
)

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.Env{Version: version})
	stop()
	os.Exit(code)
}
