// Package devch runs the private ClickHouse server of `infrapilot dev`: it
// starts the clickhouse-server installed on the machine on a data
// directory, keeps its tables across restarts, and stops it leaving no
// process behind.
//
// The server runs as the user of the dev process, root included: unlike
// PostgreSQL, clickhouse-server does not refuse root (Debian's 18.16 runs as
// root in CI; current versions only refuse root when the data directory
// belongs to another user, and DataDir is created here by ourselves).
//
// Layout under Config.DataDir (config.xml and users.xml are rewritten at
// every start, edits are lost):
//
//	config.xml          ports, listen address, paths, cache and memory limits
//	users.xml           the default user: no password, loopback only
//	data/               ClickHouse's path: tables, metadata, the status lock
//	tmp/ user_files/ format_schemas/
//	clickhouse.log      the server log (rotated, 2 × 10 MB)
//	clickhouse.err.log  its errors
//	stderr.log          the server's stdout and stderr of the last start
//	                    (config errors are only reported there)
//
// The server listens on 127.0.0.1 only, and the default user has no
// password: any local user can connect. That is fine for a developer's
// machine and is why this package is for `infrapilot dev` only.
package devch

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
)

// Timeouts; variables so tests can shorten them.
var (
	startTimeout = 60 * time.Second // until the server answers
	termTimeout  = 20 * time.Second // SIGTERM → SIGKILL; a clean shutdown takes ~1 s
	stopGrace    = 30 * time.Second // Stop with an already-ended ctx
	killWait     = 5 * time.Second  // for the kernel to take SIGKILLed processes away
)

// Where Find looks; variables so tests can point them elsewhere.
var (
	lookPath = exec.LookPath
	// searchDirs are the usual install locations, looked at after PATH:
	// Debian puts clickhouse-server in /usr/sbin, which a normal user's
	// PATH often lacks; the official packages and install script use
	// /usr/bin and /usr/local/bin.
	searchDirs = []string{"/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin", "/opt/clickhouse/bin"}
)

// binaryNames in order of preference: clickhouse-server (Debian's own
// binary, or the official packages' symlink to the single binary), then
// the single `clickhouse` binary, which takes `server` as first argument.
var binaryNames = []string{"clickhouse-server", "clickhouse"}

// Find looks for a ClickHouse server binary: clickhouse-server, then
// clickhouse, each first in PATH and then in the usual install directories.
func Find() (path string, ok bool) {
	for _, name := range binaryNames {
		if p, err := lookPath(name); err == nil && isExecutable(p) {
			if abs, err := filepath.Abs(p); err == nil {
				p = abs
			}
			return p, true
		}
		for _, dir := range searchDirs {
			if p := filepath.Join(dir, name); isExecutable(p) {
				return p, true
			}
		}
	}
	return "", false
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// Config configures the dev server.
type Config struct {
	// DataDir holds the tables, the configuration and the logs; it is
	// created if missing. Required.
	DataDir string
	// Port is the native-protocol TCP port on 127.0.0.1; 0 picks a free
	// port at each start. The HTTP port is always a free one.
	Port int
	// Binary is the clickhouse-server (or single clickhouse) binary; empty
	// uses Find.
	Binary string
	// Log receives lifecycle messages; default discards them.
	Log *slog.Logger
}

func (c *Config) setDefaults() error {
	if c.DataDir == "" {
		return errors.New("devch: DataDir is required")
	}
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return fmt.Errorf("devch: DataDir: %w", err)
	}
	c.DataDir = abs
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("devch: invalid Port %d", c.Port)
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Server is a running dev ClickHouse server.
type Server struct {
	cfg      Config
	bin      string
	dir      string // DataDir with symlinks resolved
	confPath string // dir/config.xml; its --config-file argument identifies the server's processes
	port     int    // native
	httpPort int
	errLog   string // dir/clickhouse.err.log
	errFrom  int64  // its size before this start: the tail shows this start only
	outLog   string // dir/stderr.log

	cmd      *exec.Cmd
	done     chan struct{} // closed when the server process has been reaped
	waitErr  error         // its exit status; read after done
	ready    atomic.Bool   // Start succeeded: an exit is then news worth logging
	stopping atomic.Bool

	mu      sync.Mutex
	stopped bool
}

// Start starts clickhouse-server on cfg.DataDir and returns once it answers
// on both its HTTP and its native port. Tables from an earlier start on the
// same directory are kept.
//
// A server left running on the same data directory (the dev process was
// killed; the server, in its own process group, was not) is stopped first.
// A server killed without a clean shutdown leaves its data/status file
// behind; ClickHouse locks that file while it runs and ignores a stale one,
// so neither a stale PID nor a zombie can block a start.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	bin := cfg.Binary
	if bin == "" {
		var ok bool
		if bin, ok = Find(); !ok {
			return nil, fmt.Errorf("devch: no clickhouse-server or clickhouse binary in PATH or %s; install it (apt-get install clickhouse-server) or run without ClickHouse",
				strings.Join(searchDirs, ", "))
		}
	} else if !isExecutable(bin) {
		return nil, fmt.Errorf("devch: Binary %s is not an executable file", bin)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("devch: %w", err)
	}
	dir, err := filepath.EvalSymlinks(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("devch: %w", err)
	}
	s := &Server{
		cfg:      cfg,
		bin:      bin,
		dir:      dir,
		confPath: filepath.Join(dir, "config.xml"),
		errLog:   filepath.Join(dir, "clickhouse.err.log"),
		outLog:   filepath.Join(dir, "stderr.log"),
		done:     make(chan struct{}),
	}
	for _, sub := range []string{"data", "tmp", "user_files", "format_schemas"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("devch: %w", err)
		}
	}
	if err := s.stopLeftovers(ctx); err != nil {
		return nil, err
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	s.port, s.httpPort = cfg.Port, ports[1]
	if s.port == 0 {
		s.port = ports[0]
	} else if s.port == s.httpPort {
		s.httpPort = ports[0]
	}
	if err := s.writeConfig(); err != nil {
		return nil, err
	}
	began := time.Now()
	if err := s.launch(); err != nil {
		return nil, err
	}
	if err := s.waitReady(ctx); err != nil {
		s.stopAfterFailure()
		return nil, err
	}
	s.ready.Store(true)
	cfg.Log.Info("dev clickhouse ready", "url", s.URL(), "data", s.dir, "bin", s.bin, "took", time.Since(began).Round(time.Millisecond).String())
	return s, nil
}

// URL is the native-protocol URL of the server's default database, as
// clickhouse-go's ParseDSN and --clickhouse-url take it.
func (s *Server) URL() string {
	return fmt.Sprintf("clickhouse://default@127.0.0.1:%d/default", s.port)
}

// Port is the native-protocol port.
func (s *Server) Port() int { return s.port }

// HTTPPort is the HTTP interface's port.
func (s *Server) HTTPPort() int { return s.httpPort }

// launch starts the server process:
//   - in its own process group, so a Ctrl-C, which the terminal sends to
//     its foreground group, reaches the dev process and not ClickHouse;
//     the dev process then stops it in order, and Stop can signal the
//     group as a whole;
//   - with exec.Command, not CommandContext: Start's ctx is typically the
//     dev process's whole life, and its end must lead to Stop's clean
//     shutdown, not to a SIGKILL;
//   - with stdout and stderr in a file rather than a pipe, so a server
//     outliving a killed dev process does not die of SIGPIPE;
//   - in the foreground (no --daemon) without the watchdog process newer
//     versions fork, so the process we wait for is the server itself.
func (s *Server) launch() error {
	if fi, err := os.Stat(s.errLog); err == nil {
		s.errFrom = fi.Size()
	}
	out, err := os.OpenFile(s.outLog, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("devch: %w", err)
	}
	defer out.Close() // the child has its own copy
	var args []string
	if filepath.Base(s.bin) == "clickhouse" {
		args = append(args, "server")
	}
	args = append(args, "--config-file="+s.confPath)
	cmd := exec.Command(s.bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "CLICKHOUSE_WATCHDOG_ENABLE=")
	}), "CLICKHOUSE_WATCHDOG_ENABLE=0")
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("devch: start %s: %w", s.bin, err)
	}
	s.cmd = cmd
	go func() {
		err := cmd.Wait()
		s.waitErr = err
		close(s.done)
		if s.ready.Load() && !s.stopping.Load() {
			s.cfg.Log.Error("dev clickhouse exited on its own", "err", err, "log", s.errLog)
		}
	}()
	return nil
}

// waitReady polls until the server answers /ping on its HTTP port and a
// native-protocol ping. The HTTP port is one we just found free, and
// ClickHouse binds all its ports before serving any, so an answer there
// means our server also holds the native port (and not some other server
// the port was taken by).
func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	// No keep-alive: an idle connection left open here would hold up the
	// server's shutdown until keep_alive_timeout (3 s).
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	ping := fmt.Sprintf("http://127.0.0.1:%d/ping", s.httpPort)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.done:
			return fmt.Errorf("devch: %s exited during start (%v)%s", s.bin, s.waitErr, s.logTail())
		case <-ctx.Done():
			return fmt.Errorf("devch: %s did not answer on 127.0.0.1:%d within %s: %w%s", s.bin, s.httpPort, startTimeout, ctx.Err(), s.logTail())
		case <-tick.C:
		}
		if !httpOK(ctx, client, ping) {
			continue
		}
		if err := s.nativePing(ctx); err != nil {
			return fmt.Errorf("devch: the server answers over HTTP but not on the native port %d: %w%s", s.port, err, s.logTail())
		}
		return nil
	}
}

func httpOK(ctx context.Context, client *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
	return resp.StatusCode == http.StatusOK && strings.TrimSpace(string(body)) == "Ok."
}

func (s *Server) nativePing(ctx context.Context) error {
	opts, err := ch.ParseDSN(s.URL())
	if err != nil {
		return err
	}
	opts.Protocol = ch.Native
	opts.DialTimeout = 5 * time.Second
	conn, err := ch.Open(opts)
	if err != nil {
		return err
	}
	defer conn.Close()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return conn.Ping(pctx)
}

// Stop shuts the server down: SIGTERM to its process group (ClickHouse
// then flushes and exits, in about a second), SIGKILL when it has not
// exited after 20 s, and waits until no process of the group is left.
// Committed inserts survive either way. Stopping twice is a no-op.
//
// A ctx that has already ended (as in a shutdown after Ctrl-C) does not
// skip the stop: leaving the server running is what Stop exists to
// prevent, so it then allows 30 s. With a deadline, SIGKILL comes early
// enough to be waited for before it.
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
		ctx, cancel = context.WithTimeout(ctx, termTimeout+killWait+time.Second)
		defer cancel()
	}
	s.stopping.Store(true)
	pgid := s.cmd.Process.Pid
	began := time.Now()
	killGroup(pgid, syscall.SIGTERM)

	grace := termTimeout
	if dl, ok := ctx.Deadline(); ok {
		grace = min(grace, time.Until(dl)-killWait)
	}
	timer := time.NewTimer(max(grace, 0))
	defer timer.Stop()
	select {
	case <-s.done:
	case <-timer.C:
		s.cfg.Log.Warn("dev clickhouse did not stop on SIGTERM; killing it", "pid", pgid, "after", time.Since(began).Round(time.Millisecond))
		killGroup(pgid, syscall.SIGKILL)
		select {
		case <-s.done:
		case <-ctx.Done():
			return fmt.Errorf("devch: stop: server %d still running after SIGKILL: %w", pgid, ctx.Err())
		}
	}
	// Anything the server started in its group (executable dictionaries,
	// functions) outlives it without this.
	if groupAlive(pgid) {
		killGroup(pgid, syscall.SIGKILL)
		wctx, wcancel := context.WithTimeout(ctx, killWait)
		defer wcancel()
		for groupAlive(pgid) {
			select {
			case <-wctx.Done():
				return fmt.Errorf("devch: stop: processes of group %d still running: %w", pgid, wctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	s.stopped = true
	s.cfg.Log.Info("dev clickhouse stopped", "data", s.dir, "took", time.Since(began).Round(time.Millisecond).String())
	return nil
}

// stopAfterFailure stops a server that Start launched but cannot hand out.
func (s *Server) stopAfterFailure() {
	ctx, cancel := context.WithTimeout(context.Background(), stopGrace)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		s.cfg.Log.Error("dev clickhouse: stop after failed start", "err", err)
	}
}

// killGroup signals a process group. Errors are left to the callers'
// waits: ESRCH means the group is gone already, and after EPERM (a member
// changed its credentials) the wait reports what is still running.
func killGroup(pgid int, sig syscall.Signal) { _ = syscall.Kill(-pgid, sig) }

func groupAlive(pgid int) bool { return syscall.Kill(-pgid, 0) == nil }

// stopLeftovers stops servers still running on the data directory: the
// dev process died, its server did not. They are recognised by their
// exact --config-file argument; ClickHouse would otherwise refuse to start
// ("Cannot lock file .../status. Another server instance in same directory
// is already running"). A zombie has no command line and holds no lock or
// port, so it is never among them.
func (s *Server) stopLeftovers(ctx context.Context) error {
	pids := serverProcs(s.confPath)
	if len(pids) == 0 {
		return nil
	}
	s.cfg.Log.Warn("dev clickhouse: stopping a server left running on the data directory", "pids", pids)
	signalAll(pids, syscall.SIGTERM)
	wctx, cancel := context.WithTimeout(ctx, termTimeout)
	defer cancel()
	if waitNoServer(wctx, s.confPath) == nil {
		return nil
	}
	pids = serverProcs(s.confPath)
	s.cfg.Log.Warn("dev clickhouse: killing a leftover server that ignored SIGTERM", "pids", pids)
	signalAll(pids, syscall.SIGKILL)
	kctx, kcancel := context.WithTimeout(ctx, killWait)
	defer kcancel()
	if err := waitNoServer(kctx, s.confPath); err != nil {
		return fmt.Errorf("devch: leftover server on %s: %w", s.dir, err)
	}
	return nil
}

// signalAll signals each process and, when it leads one, its group.
func signalAll(pids []int, sig syscall.Signal) {
	for _, pid := range pids {
		if pgid, err := syscall.Getpgid(pid); err == nil && pgid == pid {
			killGroup(pid, sig)
			continue
		}
		_ = syscall.Kill(pid, sig)
	}
}

func waitNoServer(ctx context.Context, confPath string) error {
	for {
		pids := serverProcs(confPath)
		if len(pids) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("clickhouse processes %v still running: %w", pids, ctx.Err())
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// serverProcs lists the processes whose arguments include
// --config-file=<confPath>: the servers of this data directory, whoever
// started them. Without /proc (not Linux) it finds none, and ClickHouse's
// own lock on data/status then reports a running server.
func serverProcs(confPath string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	want := []byte("--config-file=" + confPath)
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		if slices.ContainsFunc(bytes.Split(cmdline, []byte{0}), func(arg []byte) bool { return bytes.Equal(arg, want) }) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// logTail returns what the server said during this start, for error
// messages: the end of stderr.log (configuration errors only go there)
// and the lines clickhouse.err.log gained.
func (s *Server) logTail() string {
	var b strings.Builder
	if out, err := os.ReadFile(s.outLog); err == nil {
		b.WriteString(lastLines(s.outLog, out, 15))
	}
	if f, err := os.Open(s.errLog); err == nil {
		defer f.Close()
		if _, err := f.Seek(s.errFrom, io.SeekStart); err == nil {
			if body, err := io.ReadAll(io.LimitReader(f, 1<<20)); err == nil {
				b.WriteString(lastLines(s.errLog, body, 15))
			}
		}
	}
	return b.String()
}

func lastLines(name string, body []byte, n int) string {
	text := strings.TrimRight(string(body), "\n")
	if text == "" {
		return ""
	}
	lines := strings.Split(text, "\n")
	lines = lines[max(0, len(lines)-n):]
	return "\nlast lines of " + name + ":\n" + strings.Join(lines, "\n")
}

// writeConfig writes config.xml and users.xml. The `yandex` root element
// is what 18.16 (Debian's only version) requires and what current versions
// still accept. Limits suit a 2-core developer machine; settings an older
// server does not know (max_server_memory_usage) are ignored by it.
func (s *Server) writeConfig() error {
	p := func(sub string) string { return xmlText(filepath.Join(s.dir, sub) + "/") }
	conf := fmt.Sprintf(`<?xml version="1.0"?>
<!-- Managed by infrapilot dev (devch): rewritten at every start, edits are lost. -->
<yandex>
  <logger>
    <level>information</level>
    <log>%s</log>
    <errorlog>%s</errorlog>
    <size>10M</size>
    <count>2</count>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>%d</tcp_port>
  <http_port>%d</http_port>
  <path>%s</path>
  <tmp_path>%s</tmp_path>
  <user_files_path>%s</user_files_path>
  <format_schema_path>%s</format_schema_path>
  <users_config>%s</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <max_connections>256</max_connections>
  <max_concurrent_queries>32</max_concurrent_queries>
  <keep_alive_timeout>3</keep_alive_timeout>
  <mark_cache_size>67108864</mark_cache_size>
  <uncompressed_cache_size>67108864</uncompressed_cache_size>
  <max_server_memory_usage>1073741824</max_server_memory_usage>
  <mlock_executable>false</mlock_executable>
</yandex>
`, xmlText(filepath.Join(s.dir, "clickhouse.log")), xmlText(s.errLog), s.port, s.httpPort,
		p("data"), p("tmp"), p("user_files"), p("format_schemas"), xmlText(filepath.Join(s.dir, "users.xml")))
	users := `<?xml version="1.0"?>
<!-- Managed by infrapilot dev (devch): rewritten at every start, edits are lost. -->
<yandex>
  <profiles>
    <default>
      <max_memory_usage>536870912</max_memory_usage>
      <max_threads>2</max_threads>
      <use_uncompressed_cache>0</use_uncompressed_cache>
    </default>
  </profiles>
  <users>
    <default>
      <password></password>
      <networks>
        <ip>127.0.0.1</ip>
        <ip>::1</ip>
      </networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas>
    <default></default>
  </quotas>
</yandex>
`
	for name, body := range map[string]string{"config.xml": conf, "users.xml": users} {
		if err := os.WriteFile(filepath.Join(s.dir, name), []byte(body), 0o600); err != nil {
			return fmt.Errorf("devch: %w", err)
		}
	}
	return nil
}

func xmlText(v string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(v))
	return b.String()
}

// freePorts returns n distinct free ports on 127.0.0.1, holding them all
// open at once so the kernel cannot hand out the same one twice.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("devch: free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
