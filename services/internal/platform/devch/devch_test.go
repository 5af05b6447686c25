package devch

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// These tests run the real clickhouse-server of the machine
// (apt-get install clickhouse-server; deploy/test/clickhouse.sh installs
// it in CI).

// needBinary skips without a ClickHouse server binary, except in CI
// (CI=true), where a skip would pass without testing anything.
func needBinary(t *testing.T) {
	t.Helper()
	if _, ok := Find(); ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no clickhouse-server binary found and CI=true: install it (apt-get install clickhouse-server)")
	}
	t.Skip("no clickhouse-server binary found; install it (apt-get install clickhouse-server) to run this test")
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	began := time.Now()
	s, err := Start(testCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Start took %s", time.Since(began).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := s.Stop(context.Background()); err != nil {
			t.Errorf("cleanup stop: %v", err)
		}
	})
	return s
}

// onceConn closes once: clickhouse-go v2.26's Close blocks forever when
// called a second time, and the tests close before Stop as well as in
// cleanup.
type onceConn struct {
	driver.Conn
	once sync.Once
}

func (c *onceConn) Close() error {
	var err error
	c.once.Do(func() { err = c.Conn.Close() })
	return err
}

func connect(t *testing.T, url string) driver.Conn {
	t.Helper()
	opts, err := ch.ParseDSN(url)
	if err != nil {
		t.Fatal(err)
	}
	opts.Protocol = ch.Native
	raw, err := ch.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	conn := &onceConn{Conn: raw}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func exec1(t *testing.T, conn driver.Conn, q string) {
	t.Helper()
	if err := conn.Exec(testCtx(t), q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func queryString(t *testing.T, conn driver.Conn, q string) string {
	t.Helper()
	var v string
	if err := conn.QueryRow(testCtx(t), q).Scan(&v); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

// createAndFill makes a MergeTree table with n rows, inserted as one batch
// the way the log store does.
func createAndFill(t *testing.T, conn driver.Conn, table string, n int) {
	t.Helper()
	ctx := testCtx(t)
	exec1(t, conn, "CREATE TABLE "+table+" (id UInt64, msg String) ENGINE = MergeTree ORDER BY id")
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+table)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := batch.Append(uint64(i), fmt.Sprintf("line %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
}

func assertRows(t *testing.T, conn driver.Conn, table string, n int) {
	t.Helper()
	if got := queryString(t, conn, "SELECT toString(count()) FROM "+table); got != strconv.Itoa(n) {
		t.Fatalf("%s has %s rows, want %d", table, got, n)
	}
	if got := queryString(t, conn, "SELECT msg FROM "+table+" WHERE id = 7"); got != "line 7" {
		t.Fatalf("row 7 = %q", got)
	}
}

// processesUsing lists the processes whose command line mentions dir, as
// services/cmd/infrapilot's tests check that dev leaves nothing behind.
func processesUsing(dir string) []string {
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		if strings.Trim(e.Name(), "0123456789") != "" || e.Name() == strconv.Itoa(os.Getpid()) {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmd, []byte(dir)) {
			out = append(out, e.Name()+": "+strings.ReplaceAll(string(cmd), "\x00", " "))
		}
	}
	return out
}

func assertNoProcess(t *testing.T, dir string) {
	t.Helper()
	if left := processesUsing(dir); len(left) > 0 {
		t.Fatalf("processes left running:\n%s", strings.Join(left, "\n"))
	}
}

func TestStartStopRestartKeepsData(t *testing.T) {
	needBinary(t)
	t.Parallel()
	dir := t.TempDir()
	s := start(t, Config{DataDir: dir})
	if want := fmt.Sprintf("clickhouse://default@127.0.0.1:%d/default", s.Port()); s.URL() != want {
		t.Fatalf("URL = %q, want %q", s.URL(), want)
	}
	conn := connect(t, s.URL())
	createAndFill(t, conn, "kept", 1000)
	assertRows(t, conn, "kept", 1000)
	t.Logf("server version %s", queryString(t, conn, "SELECT version()"))
	if got := queryString(t, conn, "SELECT timezone()"); got != "UTC" && got != "Etc/UTC" {
		t.Fatalf("timezone = %q", got)
	}
	if got := queryString(t, conn, "SELECT value FROM system.settings WHERE name = 'max_threads'"); got != "2" {
		t.Fatalf("max_threads = %q", got)
	}

	// Its own process group: Ctrl-C in our terminal does not reach it.
	pid := s.cmd.Process.Pid
	if pgid, err := syscall.Getpgid(pid); err != nil || pgid != pid || pgid == syscall.Getpgrp() {
		t.Fatalf("server %d in process group %d (err %v); ours is %d", pid, pgid, err, syscall.Getpgrp())
	}
	// It runs as ourselves, root included: ClickHouse does not refuse root.
	if uid := procUID(t, pid); uid != os.Geteuid() {
		t.Fatalf("server runs as uid %d, we are %d", uid, os.Geteuid())
	}
	// Everything it writes is under DataDir.
	for _, f := range []string{"data/status", "clickhouse.log", "config.xml", "users.xml"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	// Loopback only: the native port does not answer on the machine's
	// other addresses.
	for _, ip := range otherAddrs(t) {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, strconv.Itoa(s.Port())), time.Second)
		if err == nil {
			c.Close()
			t.Fatalf("the native port answers on %s", ip)
		}
	}

	conn.Close()
	began := time.Now()
	if err := s.Stop(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	t.Logf("Stop took %s", time.Since(began).Round(time.Millisecond))
	assertNoProcess(t, dir)
	if err := s.Stop(testCtx(t)); err != nil {
		t.Fatalf("second Stop: %v", err)
	}

	s2 := start(t, Config{DataDir: dir, Port: s.Port()})
	if s2.Port() != s.Port() {
		t.Fatalf("port %d, asked for %d", s2.Port(), s.Port())
	}
	conn2 := connect(t, s2.URL())
	assertRows(t, conn2, "kept", 1000)
	conn2.Close()
	if err := s2.Stop(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	assertNoProcess(t, dir)
}

// The server is killed (a crash, an OOM kill): the next Start recovers and
// inserted rows survive. Stop with an ended context still stops it.
func TestStartAfterKill9(t *testing.T) {
	needBinary(t)
	t.Parallel()
	dir := t.TempDir()
	s := start(t, Config{DataDir: dir})
	conn := connect(t, s.URL())
	createAndFill(t, conn, "survived", 100)
	conn.Close()
	if err := syscall.Kill(s.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.done

	s2 := start(t, Config{DataDir: dir})
	conn2 := connect(t, s2.URL())
	assertRows(t, conn2, "survived", 100)
	conn2.Close()

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s2.Stop(cancelled); err != nil {
		t.Fatal(err)
	}
	assertNoProcess(t, dir)
}

// The dev process died (kill -9) but its server, in its own process group,
// kept running: the next Start stops it instead of failing on ClickHouse's
// "Another server instance in same directory is already running".
func TestStartStopsLeftoverServer(t *testing.T) {
	needBinary(t)
	t.Parallel()
	dir := t.TempDir()
	s1 := start(t, Config{DataDir: dir})
	conn := connect(t, s1.URL())
	createAndFill(t, conn, "t", 10)
	conn.Close()

	s2 := start(t, Config{DataDir: dir})
	select {
	case <-s1.done:
	default:
		t.Fatalf("the leftover server %d still runs", s1.cmd.Process.Pid)
	}
	if got := serverProcs(s2.confPath); len(got) != 1 || got[0] != s2.cmd.Process.Pid {
		t.Fatalf("servers on the data dir: %v, want only %d", got, s2.cmd.Process.Pid)
	}
	conn2 := connect(t, s2.URL())
	if got := queryString(t, conn2, "SELECT toString(count()) FROM t"); got != "10" {
		t.Fatalf("count = %s", got)
	}
}

// A killed server whose parent never reaps it stays a zombie, with its PID
// still in data/status. Neither blocks the next Start, and the zombie's
// parent is left alone.
func TestStartOverZombie(t *testing.T) {
	needBinary(t)
	t.Parallel()
	dir := t.TempDir()
	s := start(t, Config{DataDir: dir})
	conn := connect(t, s.URL())
	createAndFill(t, conn, "t", 10)
	conn.Close()
	if err := s.Stop(testCtx(t)); err != nil {
		t.Fatal(err)
	}

	// A server started by a parent that never waits for it, on the
	// configuration the last Start wrote.
	parent := exec.Command("sh", "-c", `"$0" --config-file="$1" >/dev/null 2>&1 & echo $!; exec sleep 300`, s.bin, s.confPath)
	parent.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = parent.Process.Kill(); _ = parent.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(30 * time.Second)
	for !httpOK(testCtx(t), client, fmt.Sprintf("http://127.0.0.1:%d/ping", s.HTTPPort())) {
		if time.Now().After(deadline) {
			t.Fatal("the server started by sh did not answer")
		}
		time.Sleep(25 * time.Millisecond)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for procState(pid) != "Z" {
		if time.Now().After(deadline) {
			t.Fatalf("server %d is in state %q, not a zombie", pid, procState(pid))
		}
		time.Sleep(10 * time.Millisecond)
	}
	status, _ := os.ReadFile(filepath.Join(dir, "data", "status"))
	if !strings.Contains(string(status), "PID: "+strconv.Itoa(pid)) {
		t.Fatalf("data/status does not name the zombie %d:\n%s", pid, status)
	}

	s2 := start(t, Config{DataDir: dir})
	conn2 := connect(t, s2.URL())
	if got := queryString(t, conn2, "SELECT toString(count()) FROM t"); got != "10" {
		t.Fatalf("count = %s", got)
	}
	if err := parent.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the zombie's parent was harmed: %v", err)
	}
}

// A port taken by something else: the error carries the server's reason,
// and nothing is left running.
func TestStartPortInUse(t *testing.T) {
	needBinary(t)
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	dir := t.TempDir()
	_, err = Start(testCtx(t), Config{DataDir: dir, Port: l.Addr().(*net.TCPAddr).Port})
	if err == nil || !strings.Contains(err.Error(), "Address already in use") || !strings.Contains(err.Error(), "exited during start") {
		t.Fatalf("err = %v; want the server's bind error", err)
	}
	t.Log(err)
	assertNoProcess(t, dir)
}

// A binary that fails at once: the error says so and shows what it printed.
// (A script stands in for a broken installation; the real server's own
// failure is TestStartPortInUse.)
func TestStartReportsEarlyExit(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "clickhouse-server")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho \"cannot load libclickhouse.so: $1\" >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	_, err := Start(testCtx(t), Config{DataDir: dir, Binary: bin})
	for _, want := range []string{"exited during start", "exit status 3", "cannot load libclickhouse.so: --config-file=" + filepath.Join(dir, "config.xml"), "stderr.log"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("err = %v; want it to mention %q", err, want)
		}
	}
}

// A server that does not exit on SIGTERM (here: stopped with SIGSTOP) is
// killed after the timeout; the inserted rows survive.
func TestStopKillsAfterTimeout(t *testing.T) {
	needBinary(t)
	old := termTimeout
	termTimeout = time.Second
	t.Cleanup(func() { termTimeout = old })
	dir := t.TempDir()
	s := start(t, Config{DataDir: dir})
	conn := connect(t, s.URL())
	createAndFill(t, conn, "t", 10)
	conn.Close()
	if err := syscall.Kill(s.cmd.Process.Pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if err := s.Stop(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took < termTimeout {
		t.Fatalf("Stop returned after %s, before the SIGTERM timeout", took)
	}
	if ws, ok := s.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("server ended with %v, want SIGKILL", s.cmd.ProcessState)
	}
	assertNoProcess(t, dir)

	s2 := start(t, Config{DataDir: dir})
	if got := queryString(t, connect(t, s2.URL()), "SELECT toString(count()) FROM t"); got != "10" {
		t.Fatalf("count = %s", got)
	}
}

func TestFind(t *testing.T) {
	oldLook, oldDirs := lookPath, searchDirs
	t.Cleanup(func() { lookPath, searchDirs = oldLook, oldDirs })
	root := t.TempDir()
	mk := func(dir, name string, mode os.FileMode) string {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // WriteFile keeps an existing file's mode
			t.Fatal(err)
		}
		return p
	}
	pathBin := filepath.Join(root, "path")
	lookPath = func(name string) (string, error) {
		p := filepath.Join(pathBin, name)
		if isExecutable(p) {
			return p, nil
		}
		return "", exec.ErrNotFound
	}
	searchDirs = []string{filepath.Join(root, "sbin"), filepath.Join(root, "bin")}
	check := func(name, want string) {
		t.Helper()
		got, ok := Find()
		if got != want || ok != (want != "") {
			t.Fatalf("%s: Find() = %q, %v; want %q", name, got, ok, want)
		}
	}

	check("nothing installed", "")
	mk("sbin", "clickhouse-server", 0o644)
	check("not executable", "")
	single := mk("bin", "clickhouse", 0o755)
	check("single binary", single)
	sbin := mk("sbin", "clickhouse-server", 0o755)
	check("clickhouse-server outside PATH wins over clickhouse", sbin)
	inPath := mk("path", "clickhouse-server", 0o755)
	check("PATH first", inPath)
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no data dir", Config{}, "DataDir is required"},
		{"bad port", Config{DataDir: t.TempDir(), Port: 70000}, "invalid Port"},
		{"missing binary", Config{DataDir: t.TempDir(), Binary: "/nonexistent/clickhouse-server"}, "not an executable file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Start(testCtx(t), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func procUID(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			// Real, effective, saved, filesystem: the effective one.
			f := strings.Fields(rest)
			uid, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatal(err)
			}
			return uid
		}
	}
	t.Fatalf("no Uid in /proc/%d/status", pid)
	return -1
}

// procState is the state letter of a process ("Z" for a zombie), "" when
// it is gone.
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// The command name in parentheses may contain spaces: the state follows
	// the last ')'.
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return string(b[i+2])
	}
	return ""
}

// otherAddrs are this machine's non-loopback IPv4 addresses.
func otherAddrs(t *testing.T) []string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
			out = append(out, ipn.IP.String())
		}
	}
	if len(out) == 0 {
		t.Log("no non-loopback address to check the listen address against")
	}
	return out
}
