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
		"be enrolled first (`infrapilot-agent enroll`).\n\n"+
		"With --nginx-dir it also manages nginx for InfraPilot's proxy hosts: it asks the\n"+
		"hub for the desired configuration, writes it under that directory, checks it\n"+
		"with `nginx -t`, swaps it in and reloads nginx, keeping the last configuration\n"+
		"that worked when a new one fails, and restores files changed by hand. nginx\n"+
		"runs locally (started by the agent if it is not running) or, with\n"+
		"--nginx-container, in a container that has the directory bind-mounted at\n"+
		"--nginx-root; the agent then drives it with `docker exec`. Certificates are\n"+
		"obtained with ACME HTTP-01 through nginx's webroot under the same directory.")
	stateDir := StateDirFlag(env, fs)
	dockerHost := fs.String("docker-host", env.getenv("DOCKER_HOST"), "container engine API (default $DOCKER_HOST, then unix:///var/run/docker.sock)")
	metrics := fs.Duration("metrics-interval", 10*time.Second, "metrics sampling interval")
	maxOutbox := fs.Int64("outbox-max-bytes", 1<<30, "bound of the local outbox on disk")
	nginxDir := fs.String("nginx-dir", "", "manage nginx: the directory InfraPilot owns for its configuration, certificates and ACME webroot (empty: nginx is not managed)")
	nginxRoot := fs.String("nginx-root", "", "the --nginx-dir directory as nginx sees it, when nginx runs in a container (default --nginx-dir)")
	nginxContainer := fs.String("nginx-container", "", "nginx runs in this container, driven with docker exec (default: a local nginx)")
	nginxBin := fs.String("nginx-bin", "nginx", "the nginx executable (in the container with --nginx-container)")
	nginxHTTP := fs.Int("nginx-http-port", 80, "port nginx serves HTTP on")
	nginxHTTPS := fs.Int("nginx-https-port", 443, "port nginx serves HTTPS on")
	nginxCheck := fs.Int("nginx-check-port", 0, "loopback port of nginx's revision check server (0: 8089)")
	nginxDrift := fs.Duration("nginx-drift-interval", 30*time.Second, "how often nginx's files are compared with what the agent wrote")
	acmeCA := fs.String("acme-ca-file", "", "PEM bundle trusted for the ACME server's HTTPS (default: the system roots)")
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
	cfg := app.Config{StateDir: *stateDir, DockerHost: *dockerHost, MetricsInterval: *metrics,
		OutboxMaxBytes: *maxOutbox, Version: env.Version, Log: log}
	if *nginxDir != "" {
		if *nginxHTTP <= 0 || *nginxHTTP > 65535 || *nginxHTTPS <= 0 || *nginxHTTPS > 65535 || *nginxDrift <= 0 {
			fmt.Fprintln(env.Stderr, "infrapilot-agent run: --nginx-http-port and --nginx-https-port must be ports, --nginx-drift-interval positive")
			return ExitUsage
		}
		cfg.Nginx = &app.NginxConfig{Dir: *nginxDir, Root: *nginxRoot, Container: *nginxContainer, Binary: *nginxBin,
			HTTPPort: *nginxHTTP, HTTPSPort: *nginxHTTPS, CheckPort: *nginxCheck, DriftInterval: *nginxDrift, ACMECAFile: *acmeCA}
	} else if *nginxRoot != "" || *nginxContainer != "" {
		fmt.Fprintln(env.Stderr, "infrapilot-agent run: --nginx-root and --nginx-container need --nginx-dir")
		return ExitUsage
	}
	a, err := app.New(cfg)
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
