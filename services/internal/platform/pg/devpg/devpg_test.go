package devpg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// These tests run the real PostgreSQL binaries of the machine.

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// dataDir is a fresh DataDir the postgres user can reach when we are root:
// t.TempDir's own parent is 0700, as a user's home directory often is.
func dataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if os.Geteuid() == 0 {
		if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	s, err := Start(testCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(context.Background()); err != nil {
			t.Errorf("cleanup stop: %v", err)
		}
	})
	return s
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx := testCtx(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func queryString(t *testing.T, conn *pgx.Conn, sql string) string {
	t.Helper()
	var v string
	if err := conn.QueryRow(testCtx(t), sql).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

func assertNoServer(t *testing.T, s *Server) {
	t.Helper()
	procs, err := serverProcs(s.pgdata)
	if err != nil {
		t.Fatal(err)
	}
	if len(procs) > 0 {
		t.Fatalf("postgres processes of %s still running: %v", s.pgdata, procs)
	}
	// pg_ctl status exits 3 when no server runs on the directory.
	out, err := s.pgctl(testCtx(t), "status", "-D", s.pgdata)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("pg_ctl status: %v\n%s", err, out)
	}
}

func TestStartStopRestartKeepsData(t *testing.T) {
	t.Parallel()
	dir := dataDir(t)
	s := start(t, Config{DataDir: dir})
	if want := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/infrapilot?sslmode=disable", s.Port()); s.URL() != want {
		t.Fatalf("URL = %q, want %q", s.URL(), want)
	}
	conn := connect(t, s.URL())
	ctx := testCtx(t)
	if _, err := conn.Exec(ctx, `CREATE TABLE kept (v text); INSERT INTO kept VALUES ('hello')`); err != nil {
		t.Fatal(err)
	}
	for sql, want := range map[string]string{
		`SHOW fsync`:                   "on",
		`SHOW listen_addresses`:        "127.0.0.1",
		`SHOW unix_socket_directories`: filepath.Join(dir, "pgsock"),
		`SELECT current_database()`:    "infrapilot",
		`SELECT current_user`:          "postgres",
	} {
		if got := queryString(t, conn, sql); got != want {
			t.Fatalf("%s = %q, want %q", sql, got, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "pgsock", fmt.Sprintf(".s.PGSQL.%d", s.Port()))); err != nil {
		t.Fatalf("unix socket: %v", err)
	}
	sysID := queryString(t, conn, `SELECT system_identifier::text FROM pg_control_system()`)

	// The server has its own process group (pg_ctl even gives it its own
	// session), so Ctrl-C in our terminal does not reach it.
	pid, err := readPID(filepath.Join(s.pgdata, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	if pgid, err := syscall.Getpgid(pid); err != nil || pgid == syscall.Getpgrp() {
		t.Fatalf("postmaster %d process group %d (err %v); ours is %d", pid, pgid, err, syscall.Getpgrp())
	}

	conn.Close(ctx)
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	assertNoServer(t, s)
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}

	s2 := start(t, Config{DataDir: dir, Port: s.Port()})
	conn2 := connect(t, s2.URL())
	if got := queryString(t, conn2, `SELECT v FROM kept`); got != "hello" {
		t.Fatalf("kept = %q after restart", got)
	}
	if got := queryString(t, conn2, `SELECT system_identifier::text FROM pg_control_system()`); got != sysID {
		t.Fatalf("system identifier changed %s -> %s: the cluster was re-initialised", sysID, got)
	}
	conn2.Close(ctx)
	if err := s2.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	assertNoServer(t, s2)
}

// kill -9 of the postmaster, with a client connected (its backend is
// orphaned): the next Start recovers, and committed data survives.
func TestStartAfterKill9(t *testing.T) {
	t.Parallel()
	dir := dataDir(t)
	s := start(t, Config{DataDir: dir})
	ctx := testCtx(t)
	conn := connect(t, s.URL())
	if _, err := conn.Exec(ctx, `CREATE TABLE survived (v int); INSERT INTO survived VALUES (42)`); err != nil {
		t.Fatal(err)
	}
	pid, err := readPID(filepath.Join(s.pgdata, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}

	s2 := start(t, Config{DataDir: dir})
	conn2 := connect(t, s2.URL())
	if got := queryString(t, conn2, `SELECT v::text FROM survived`); got != "42" {
		t.Fatalf("survived = %q", got)
	}

	// Stop with a context that has already ended still stops the server.
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	conn2.Close(ctx)
	if err := s2.Stop(cancelled); err != nil {
		t.Fatal(err)
	}
	assertNoServer(t, s2)
}

// After a crash the PID in postmaster.pid can belong to another live
// process; postgres alone would refuse to start over it. That process
// must be left alone.
func TestStartOverStalePIDOfLiveProcess(t *testing.T) {
	t.Parallel()
	dir := dataDir(t)
	s := start(t, Config{DataDir: dir})
	ctx := testCtx(t)
	pidFile := filepath.Join(s.pgdata, "postmaster.pid")
	pid, err := readPID(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := waitGone(ctx, s.pgdata); err != nil {
		t.Fatal(err)
	}

	// A live process of the server's user, as PID reuse would produce.
	other := exec.Command("sleep", "120")
	other.SysProcAttr = &syscall.SysProcAttr{Credential: s.runAs}
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Process.Kill(); _ = other.Wait() })
	body, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(body), "\n")
	if err := os.WriteFile(pidFile, []byte(fmt.Sprintf("%d\n%s", other.Process.Pid, rest)), 0o600); err != nil {
		t.Fatal(err)
	}

	s2 := start(t, Config{DataDir: dir})
	connect(t, s2.URL())
	if err := other.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the unrelated process was harmed: %v", err)
	}
}

// The dev process died (kill -9) but its server, in its own session, kept
// running: the next Start stops it and starts again with its settings.
func TestStartStopsLeftoverServer(t *testing.T) {
	t.Parallel()
	dir := dataDir(t)
	s1 := start(t, Config{DataDir: dir})
	old, err := readPID(filepath.Join(s1.pgdata, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}

	s2 := start(t, Config{DataDir: dir}) // a new port: the settings are rewritten
	conn := connect(t, s2.URL())
	if got := queryString(t, conn, `SHOW port`); got != fmt.Sprint(s2.Port()) {
		t.Fatalf("port = %s, want %d", got, s2.Port())
	}
	if isServerProc(old, s2.pgdata) {
		t.Fatalf("the leftover postmaster %d still runs", old)
	}
}

// A port taken by something else: the error carries the server's reason,
// and nothing is left running.
func TestStartPortInUse(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	dir := dataDir(t)
	_, err = Start(testCtx(t), Config{DataDir: dir, Port: l.Addr().(*net.TCPAddr).Port})
	if err == nil || !strings.Contains(err.Error(), "could not bind") {
		t.Fatalf("err = %v; want the server's bind error", err)
	}
	t.Log(err)
	if procs, _ := serverProcs(filepath.Join(dir, "pg")); len(procs) > 0 {
		t.Fatalf("processes left after a failed start: %v", procs)
	}
}

// Root: the postgres user must be able to reach DataDir; an ancestor it
// cannot search gives an error that says what to do.
func TestStartUnreachableDataDir(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("only root drops to the postgres user")
	}
	parent := t.TempDir() // its own parent is 0700
	blocked := filepath.Dir(parent)
	_, err := Start(testCtx(t), Config{DataDir: filepath.Join(parent, "dev")})
	if err == nil || !strings.Contains(err.Error(), "chmod o+x "+blocked) {
		t.Fatalf("err = %v; want advice about %s", err, blocked)
	}
	t.Log(err)
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no data dir", Config{}, "DataDir is required"},
		{"shell character", Config{DataDir: "/tmp/a$b"}, "cannot pass through its shell"},
		{"bad port", Config{DataDir: "/tmp/x", Port: 70000}, "invalid Port"},
		{"bad database", Config{DataDir: "/tmp/x", Database: "Dev-DB"}, "invalid Database"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Start(testCtx(t), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// A data directory Start must not touch: a cluster of another major
// version, or something that is not a cluster at all.
func TestStartRefusesForeignDataDir(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, file, body, want string
	}{
		{"other major version", "PG_VERSION", "9\n", "created by PostgreSQL 9"},
		{"not a cluster", "notes.txt", "mine\n", "holds no PostgreSQL cluster"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := dataDir(t)
			if err := os.MkdirAll(filepath.Join(dir, "pg"), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "pg", tc.file), []byte(tc.body), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Start(testCtx(t), Config{DataDir: dir})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if b, err := os.ReadFile(filepath.Join(dir, "pg", tc.file)); err != nil || string(b) != tc.body {
				t.Fatalf("the directory was changed: %q, %v", b, err)
			}
		})
	}
}
