package devpg

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// command builds the exec.Cmd for a PostgreSQL binary:
//   - as the postgres user when we are root (initdb, pg_ctl and postgres
//     refuse root);
//   - in its own process group, so a Ctrl-C, which the terminal sends to
//     its foreground group, reaches the dev process and not PostgreSQL:
//     the dev process then stops everything in order. (pg_ctl start also
//     puts the server in a new session itself.)
//   - without PG* environment variables, so a stray PGDATA, PGPORT or
//     PGOPTIONS cannot redirect it;
//   - with DataDir as working directory, which the postgres user can reach
//     (it may not be able to reach ours).
func (s *Server) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, name), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: s.runAs}
	cmd.Dir = s.cfg.DataDir
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "PG") })
	return cmd
}

// pgctl runs pg_ctl and returns its combined output. pg_ctl start points
// the server's stdout and stderr at the log file, so the output pipe closes
// when pg_ctl exits and this does not wait for the server.
func (s *Server) pgctl(ctx context.Context, args ...string) ([]byte, error) {
	return s.command(ctx, "pg_ctl", args...).CombinedOutput()
}

// postgresCredential is the credential of the postgres system user.
func postgresCredential() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("devpg: running as root, PostgreSQL must run as the postgres system user, which was not found (%v); create it (useradd --system postgres) or run as a normal user", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("devpg: postgres user: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{uint32(gid)}}, nil
}

// chown gives path to the user the server runs as (only when we are root).
func (s *Server) chown(path string) error {
	if s.runAs == nil {
		return nil
	}
	if err := os.Lchown(path, int(s.runAs.Uid), int(s.runAs.Gid)); err != nil {
		return fmt.Errorf("devpg: %w", err)
	}
	return nil
}

// chownTree makes sure the cluster belongs to the server's user; a cluster
// copied or restored as root would otherwise not start. The top directory
// decides whether the walk is needed at all.
func (s *Server) chownTree(root string) error {
	if s.runAs == nil {
		return nil
	}
	fi, err := os.Stat(root)
	if err != nil {
		return fmt.Errorf("devpg: %w", err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid == s.runAs.Uid {
		return nil
	}
	s.cfg.Log.Warn("dev postgres: giving the cluster to the postgres user", "data", root)
	return filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return s.chown(p)
	})
}

// makeTraversable lets the postgres user reach dataDir. dataDir belongs to
// the dev process, so it gets search permission for others if needed
// (search only: its entries stay unlisted). Its ancestors are the user's,
// not ours: if one blocks the way (root's home is 0700), the error says
// which and what to do.
func makeTraversable(dataDir string, cred *syscall.Credential) error {
	fi, err := os.Stat(dataDir)
	if err != nil {
		return fmt.Errorf("devpg: %w", err)
	}
	if !canTraverse(fi, cred) {
		if err := os.Chmod(dataDir, fi.Mode().Perm()|0o001); err != nil {
			return fmt.Errorf("devpg: %w", err)
		}
	}
	for d := filepath.Dir(dataDir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("devpg: %w", err)
		}
		if !canTraverse(fi, cred) {
			return fmt.Errorf("devpg: the postgres user (PostgreSQL cannot run as root) cannot reach %s because %s (mode %v) is not searchable by it; use a DataDir outside %s (e.g. under /var/lib/infrapilot) or run: chmod o+x %s",
				dataDir, d, fi.Mode().Perm(), d, d)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// canTraverse applies the Unix permission rule (owner bits, else group
// bits, else other bits) for search permission. ACLs are not considered.
func canTraverse(fi fs.FileInfo, cred *syscall.Credential) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	perm := fi.Mode().Perm()
	switch {
	case st.Uid == cred.Uid:
		return perm&0o100 != 0
	case st.Gid == cred.Gid || slices.Contains(cred.Groups, st.Gid):
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

// clearLeftovers makes the data directory startable after an unclean end:
//   - a server still running on it (the dev process died, the server in its
//     own session did not) gets a fast shutdown (SIGINT, as pg_ctl -m fast);
//   - backends orphaned by a killed postmaster, which keep its shared memory
//     attached and block a new start, get a moment to exit and are then
//     killed; with the postmaster gone nothing else would end them;
//   - once no server process of the directory is left, a postmaster.pid is
//     stale whatever it says, and is removed: postgres alone refuses to
//     start while the PID in it exists, and after a crash that PID can be a
//     zombie or a reused PID of an unrelated process.
//
// Without /proc (not Linux) it does nothing: postgres itself still removes
// a pid file whose process is gone.
func (s *Server) clearLeftovers(ctx context.Context) error {
	if !haveProcfs() {
		return nil
	}
	pidFile := filepath.Join(s.pgdata, "postmaster.pid")
	if pid, err := readPID(pidFile); err == nil && isServerProc(pid, s.pgdata) {
		s.cfg.Log.Warn("dev postgres: stopping a server left running on the data directory", "pid", pid)
		if err := syscall.Kill(pid, syscall.SIGINT); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("devpg: stop leftover server %d: %w", pid, err)
		}
		wctx, cancel := context.WithTimeout(ctx, pgctlTimeout)
		defer cancel()
		if err := waitGone(wctx, s.pgdata); err != nil {
			return fmt.Errorf("devpg: stop leftover server %d: %w", pid, err)
		}
	}

	wctx, cancel := context.WithTimeout(ctx, leftoverGrace)
	defer cancel()
	if err := waitGone(wctx, s.pgdata); err != nil {
		procs, _ := serverProcs(s.pgdata)
		s.cfg.Log.Warn("dev postgres: killing orphaned server processes", "pids", procs)
		for _, pid := range procs {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		kctx, kcancel := context.WithTimeout(ctx, 5*time.Second)
		defer kcancel()
		if err := waitGone(kctx, s.pgdata); err != nil {
			return fmt.Errorf("devpg: %w", err)
		}
	}

	if _, err := os.Stat(pidFile); err == nil {
		pid, _ := readPID(pidFile)
		s.cfg.Log.Warn("dev postgres: removing a stale postmaster.pid", "pid", pid)
		if err := os.Remove(pidFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("devpg: %w", err)
		}
	}
	return nil
}

// waitGone polls until no server process of pgdata is left, or ctx ends.
func waitGone(ctx context.Context, pgdata string) error {
	if !haveProcfs() {
		return nil
	}
	for {
		procs, err := serverProcs(pgdata)
		if err != nil {
			return err
		}
		if len(procs) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres processes %v of %s still running: %w", procs, pgdata, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// serverProcs lists the processes of a PostgreSQL server on pgdata. The
// postmaster chdir()s into its data directory and its children inherit
// that, so /proc/<pid>/cwd identifies them; the executable name rules out
// anything else sitting there, such as a developer's shell.
func serverProcs(pgdata string) ([]int, error) {
	real, err := filepath.EvalSymlinks(pgdata)
	if err != nil {
		return nil, nil // no data directory, no server
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if isServerProcReal(pid, real) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// isServerProc reports whether pid is a PostgreSQL process of pgdata.
func isServerProc(pid int, pgdata string) bool {
	real, err := filepath.EvalSymlinks(pgdata)
	return err == nil && isServerProcReal(pid, real)
}

func isServerProcReal(pid int, realData string) bool {
	proc := "/proc/" + strconv.Itoa(pid)
	cwd, err := os.Readlink(proc + "/cwd")
	if err != nil || cwd != realData {
		return false
	}
	if exe, err := os.Readlink(proc + "/exe"); err == nil {
		base := filepath.Base(strings.TrimSuffix(exe, " (deleted)"))
		return base == "postgres" || base == "postmaster"
	}
	comm, err := os.ReadFile(proc + "/comm")
	return err == nil && strings.TrimSpace(string(comm)) == "postgres"
}

// readPID reads the postmaster PID, the first line of postmaster.pid.
func readPID(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("bad postmaster.pid %q", first)
	}
	return pid, nil
}

func haveProcfs() bool {
	_, err := os.Readlink("/proc/self/cwd")
	return err == nil
}
