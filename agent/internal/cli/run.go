package cli

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/infrapilot/infrapilot/agent/internal/app"
)

func runCmd(ctx context.Context, env Env, args []string) int {
	fs := NewFlagSet(env, "run", "Runs the agent in the foreground until SIGINT or SIGTERM: it follows every\n"+
		"container's log, samples metrics, reports Docker events, answers commands,\n"+
		"and forwards everything to the hub through its local outbox. The agent must\n"+
		"be enrolled first (`infrapilot-agent enroll`).")
	stateDir := StateDirFlag(env, fs)
	dockerHost := fs.String("docker-host", env.getenv("DOCKER_HOST"), "container engine API (default $DOCKER_HOST, then unix:///var/run/docker.sock)")
	metrics := fs.Duration("metrics-interval", 10*time.Second, "metrics sampling interval")
	maxOutbox := fs.Int64("outbox-max-bytes", 1<<30, "bound of the local outbox on disk")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	format := fs.String("log-format", "text", "log format: text or json")
	if code, ok := Parse(env, fs, args); !ok {
		return code
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(env.Stderr, "infrapilot-agent run: bad --log-level %q\n", *level)
		return ExitUsage
	}
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler = slog.NewTextHandler(env.Stderr, opts)
	if *format == "json" {
		h = slog.NewJSONHandler(env.Stderr, opts)
	}
	log := slog.New(h)
	a, err := app.New(app.Config{StateDir: *stateDir, DockerHost: *dockerHost, MetricsInterval: *metrics,
		OutboxMaxBytes: *maxOutbox, Version: env.Version, Log: log})
	if err != nil {
		log.Error("cannot start", "err", err)
		return ExitError
	}
	defer a.Close()
	if err := a.Run(ctx); err != nil {
		log.Error("agent failed", "err", err)
		return ExitError
	}
	return ExitOK
}
