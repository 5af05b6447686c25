// Package nginx is the agent's nginx controller. It reconciles nginx to
// the desired state the proxy service renders (events.NginxDesired):
// every desired state is written as a complete, self-contained generation
// of files, checked with `nginx -t`, swapped in atomically (one symlink),
// reloaded and checked again; on any failure the last-known-good (LKG)
// generation keeps or goes back to serving. A host whose file alone
// breaks `nginx -t` is left out (its previous file kept) and reported
// failed with nginx's own message, so one bad host never takes the others
// down and never deletes anything (the failure mode of Nginx Proxy
// Manager #5735). Files changed on disk by anyone else are found by
// CheckDrift and restored.
//
// Layout under Config.Dir (Config.Root is the same directory as nginx
// sees it):
//
//	gen/<generation>/nginx.conf, hosts/<host>.conf   one generation
//	current -> gen/<generation>                     the live one
//	certs/<host>/{fullchain.pem,privkey.pem}         certificates
//	acme/                                            ACME HTTP-01 webroot
//	logs/error.log                                   nginx's error log
//	run/nginx.pid, run/*_temp                        pid and temp paths
//	state.json                                       LKG set (0600)
//
// nginx runs either as a local process (os/exec) or in a container with
// Dir bind-mounted at Root (docker exec); see Exec.
package nginx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/infrapilot/infrapilot/events"
)

// Config configures a Controller.
type Config struct {
	// Dir is the directory InfraPilot owns, on the agent's filesystem.
	Dir string
	// Root is Dir as nginx sees it (default Dir); it differs when nginx
	// runs in a container with Dir bind-mounted elsewhere. Every path
	// handed to nginx, and every path in the rendered files, is under
	// Root.
	Root string
	// Kind is events.NginxKindLocal (default) or NginxKindContainer.
	Kind string
	// Container names nginx's container (container kind).
	Container string
	// Binary is the nginx executable (default "nginx", found on PATH, in
	// the container for the container kind).
	Binary string
	// HTTPPort and HTTPSPort are reported to the proxy service, which
	// renders the servers on them (default 80 and 443).
	HTTPPort, HTTPSPort int
	// CheckPort is the port the agent asks the check server to listen on
	// (reported; 0 lets the proxy service choose its default, 8089).
	CheckPort int
	// Exec runs nginx. Default: LocalExec for the local kind; the
	// container kind needs one (NewContainerExec).
	Exec Exec
	// CheckTimeout bounds waiting for a reload to take effect (default
	// 10 s).
	CheckTimeout time.Duration
	// Keep is how many generations are kept, the live one included
	// (default 3), for looking back at what was applied.
	Keep int
	Log  *slog.Logger
	Now  func() time.Time
}

// Controller applies desired states to one nginx. Its methods are safe
// for concurrent use; applies and drift checks run one at a time.
type Controller struct {
	cfg Config

	mu  sync.Mutex // serialises Apply, CheckDrift and the state below
	st  persisted
	seq uint64 // last generation number handed out

	vmu     sync.Mutex
	version string
}

// New prepares the directory layout and loads the last-known-good state
// left by a previous run, so that a restarted agent neither re-applies
// what is live nor forgets what it must restore. It runs nothing.
func New(cfg Config) (*Controller, error) {
	if cfg.Dir == "" {
		return nil, errors.New("nginx: no directory")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("nginx: %w", err)
	}
	cfg.Dir = dir
	if cfg.Root == "" {
		cfg.Root = cfg.Dir
	}
	if !filepath.IsAbs(cfg.Root) || filepath.Clean(cfg.Root) != cfg.Root {
		return nil, fmt.Errorf("nginx: root %q must be a clean absolute path", cfg.Root)
	}
	if cfg.Kind == "" {
		cfg.Kind = events.NginxKindLocal
	}
	if cfg.Binary == "" {
		cfg.Binary = "nginx"
	}
	switch cfg.Kind {
	case events.NginxKindLocal:
		if cfg.Exec == nil {
			cfg.Exec = LocalExec{Binary: cfg.Binary}
		}
	case events.NginxKindContainer:
		if cfg.Container == "" || cfg.Exec == nil {
			return nil, errors.New("nginx: the container kind needs a container and its Exec")
		}
	default:
		return nil, fmt.Errorf("nginx: unknown kind %q", cfg.Kind)
	}
	if cfg.HTTPPort <= 0 {
		cfg.HTTPPort = 80
	}
	if cfg.HTTPSPort <= 0 {
		cfg.HTTPSPort = 443
	}
	if cfg.CheckTimeout <= 0 {
		cfg.CheckTimeout = 10 * time.Second
	}
	if cfg.Keep <= 0 {
		cfg.Keep = 3
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Controller{cfg: cfg}
	if err := c.layout(); err != nil {
		return nil, err
	}
	if err := c.load(); err != nil {
		return nil, err
	}
	return c, nil
}

// layout creates the directories. The ACME webroot, like the directories
// above it, is world-traversable and readable: nginx's workers run as an
// unprivileged user when the agent runs as root, and serve the challenge
// files. Certificates are the master's alone (it reads them as root).
func (c *Controller) layout() error {
	if err := os.MkdirAll(c.cfg.Dir, 0o755); err != nil {
		return fmt.Errorf("nginx: %w", err)
	}
	if err := os.Chmod(c.cfg.Dir, 0o755); err != nil {
		return fmt.Errorf("nginx: %w", err)
	}
	for _, d := range []struct {
		name string
		mode os.FileMode
	}{{"gen", 0o755}, {"certs", 0o700}, {"acme", 0o755}, {"logs", 0o755}, {"run", 0o755}} {
		p := filepath.Join(c.cfg.Dir, d.name)
		if err := os.MkdirAll(p, d.mode); err != nil {
			return fmt.Errorf("nginx: %w", err)
		}
		if err := os.Chmod(p, d.mode); err != nil {
			return fmt.Errorf("nginx: %w", err)
		}
	}
	return nil
}

// Dir is the controller's directory on the agent's filesystem.
func (c *Controller) Dir() string { return c.cfg.Dir }

// Info describes this nginx for the proxy service, which renders paths
// and ports with it. The version comes from `nginx -v`, once.
func (c *Controller) Info(ctx context.Context) events.NginxAgentInfo {
	info := events.NginxAgentInfo{Enabled: true, Kind: c.cfg.Kind, Root: c.cfg.Root,
		HTTPPort: c.cfg.HTTPPort, HTTPSPort: c.cfg.HTTPSPort, CheckPort: c.cfg.CheckPort, Version: c.nginxVersion(ctx)}
	if c.cfg.Kind == events.NginxKindContainer {
		info.Container = c.cfg.Container
	}
	return info
}

func (c *Controller) nginxVersion(ctx context.Context) string {
	c.vmu.Lock()
	defer c.vmu.Unlock()
	if c.version != "" {
		return c.version
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := c.cfg.Exec.Run(ctx, "-v")
	if err != nil {
		c.cfg.Log.Warn("nginx: version", "err", err, "output", out)
		return ""
	}
	// "nginx version: nginx/1.22.1"
	if _, v, ok := strings.Cut(strings.TrimSpace(out), "nginx/"); ok {
		c.version = strings.Fields(v + " ")[0]
	}
	return c.version
}

// path is a path under Dir; root the same path as nginx sees it.
func (c *Controller) path(rel ...string) string {
	return filepath.Join(append([]string{c.cfg.Dir}, rel...)...)
}

func (c *Controller) root(rel ...string) string {
	return filepath.Join(append([]string{c.cfg.Root}, rel...)...)
}

// quietArgs start the arguments of `nginx -t` and `nginx -s`: their
// messages go to stderr only ("nginx: [emerg] …", where the agent reads
// them), not to the error log, where the errors of a reload are looked
// for, nor to nginx's compiled-in log path, which may not exist.
// ("-e stderr" would print them in the log's format, with a time stamp
// and pid.)
func (c *Controller) quietArgs() []string { return []string{"-e", "/dev/null"} }

// startArgs start the arguments that start nginx's master: what it logs
// before it has read its configuration goes to Root/logs/error.log.
func (c *Controller) startArgs() []string { return []string{"-e", c.root("logs", "error.log")} }
