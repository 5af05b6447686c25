package devpg

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// startSystem prepares the directories, runs initdb if needed and starts
// the server with the system binaries.
func (s *Server) startSystem(ctx context.Context, existing int) error {
	if os.Geteuid() == 0 {
		cred, err := postgresCredential()
		if err != nil {
			return err
		}
		s.runAs = cred
		if err := makeTraversable(s.cfg.DataDir, cred); err != nil {
			return err
		}
	}
	binMajor, err := binaryMajor(s.bin)
	if err != nil {
		return err
	}
	if existing != 0 && existing != binMajor {
		return fmt.Errorf("devpg: the cluster in %s was created by PostgreSQL %d but %s is PostgreSQL %d; point %s at a PostgreSQL %d bin directory (or pg_upgrade the cluster)",
			s.pgdata, existing, s.bin, binMajor, EnvBinDir, existing)
	}
	if err := s.prepareFiles(); err != nil {
		return err
	}
	if existing == 0 {
		if err := s.initdb(ctx); err != nil {
			return err
		}
	}
	if err := s.chownTree(s.pgdata); err != nil {
		return err
	}
	if err := s.writeConf(); err != nil {
		return err
	}
	if err := s.clearLeftovers(ctx); err != nil {
		return err
	}
	out, err := s.pgctl(ctx, "start", "-w", "-t", secs(pgctlTimeout), "-D", s.pgdata, "-l", s.logPath)
	if err != nil {
		// pg_ctl may have been killed (ctx) after launching the server.
		s.stopAfterFailure()
		return fmt.Errorf("devpg: pg_ctl start: %w\n%s%s", err, out, s.logTail())
	}
	return nil
}

// prepareFiles creates the socket directory and the log file, owned by the
// user the server runs as.
func (s *Server) prepareFiles() error {
	paths := []string{s.logPath}
	if s.sockDir != "" {
		if err := os.MkdirAll(s.sockDir, 0o700); err != nil {
			return fmt.Errorf("devpg: %w", err)
		}
		paths = append(paths, s.sockDir)
	}
	f, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("devpg: %w", err)
	}
	f.Close()
	for _, p := range paths {
		if err := s.chown(p); err != nil {
			return err
		}
	}
	return nil
}

// initdb creates the cluster in a scratch directory and renames it into
// place, so an interrupted initdb never leaves a half-made cluster that a
// later start would mistake for a real one.
func (s *Server) initdb(ctx context.Context) error {
	if entries, err := os.ReadDir(s.pgdata); err == nil && len(entries) > 0 {
		return fmt.Errorf("devpg: %s is not empty but holds no PostgreSQL cluster (no PG_VERSION); move it away", s.pgdata)
	}
	_ = os.Remove(s.pgdata) // an empty directory
	tmp := s.pgdata + ".initdb"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("devpg: %w", err)
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return fmt.Errorf("devpg: %w", err)
	}
	if err := s.chown(tmp); err != nil {
		return err
	}
	// --locale=C: a missing system locale can never break initdb, and
	// sorting does not depend on the developer's machine. --no-sync only
	// skips initdb's final flush; the server itself keeps fsync on.
	cmd := s.command(ctx, "initdb", "-D", tmp, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("devpg: initdb %s: %w\n%s", s.pgdata, err, out)
	}
	if err := os.Rename(tmp, s.pgdata); err != nil {
		return fmt.Errorf("devpg: %w", err)
	}
	s.cfg.Log.Info("dev postgres cluster created", "data", s.pgdata)
	return nil
}

// writeConf writes the settings devpg manages into PGDATA/infrapilot.conf,
// included from postgresql.conf, instead of passing them with pg_ctl -o:
// pg_ctl runs -o through /bin/sh, and a plain `pg_ctl start` by hand then
// brings the server up the same way.
func (s *Server) writeConf() error {
	conf := fmt.Sprintf(`# Managed by infrapilot dev (devpg): rewritten at every start, edits are lost.
# Put your own settings in postgresql.conf above the include line.
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = %s
`, s.port, confString(s.sockDir))
	path := filepath.Join(s.pgdata, "infrapilot.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return fmt.Errorf("devpg: %w", err)
	}
	if err := s.chown(path); err != nil {
		return err
	}
	main := filepath.Join(s.pgdata, "postgresql.conf")
	body, err := os.ReadFile(main)
	if err != nil {
		return fmt.Errorf("devpg: %w", err)
	}
	const include = "include_if_exists = 'infrapilot.conf'"
	if strings.Contains(string(body), include) {
		return nil
	}
	f, err := os.OpenFile(main, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("devpg: %w", err)
	}
	_, err = fmt.Fprintf(f, "\n# Added by infrapilot dev: the settings it manages (last, so they win).\n%s\n", include)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("devpg: %w", err)
	}
	return nil
}

// ensureDatabase creates the dev database unless it exists.
func (s *Server) ensureDatabase(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, s.urlFor("postgres"))
	if err != nil {
		return fmt.Errorf("devpg: connect: %w%s", err, s.logTail())
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, s.cfg.Database).Scan(&exists); err != nil {
		return fmt.Errorf("devpg: %w", err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{s.cfg.Database}.Sanitize()); err != nil {
		return fmt.Errorf("devpg: create database %s: %w", s.cfg.Database, err)
	}
	return nil
}

// logTail returns the end of the server log for error messages.
func (s *Server) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	lines = lines[max(0, len(lines)-15):]
	return "\nlast lines of " + s.logPath + ":\n" + strings.Join(lines, "\n")
}

// clusterMajor reads the major version of the cluster in pgdata, 0 when
// there is none.
func clusterMajor(pgdata string) int {
	b, err := os.ReadFile(filepath.Join(pgdata, "PG_VERSION"))
	if err != nil {
		return 0
	}
	v := strings.TrimSpace(string(b))
	if i := strings.IndexByte(v, '.'); i >= 0 { // 9.6 and older
		v = v[:i]
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0
	}
	return n
}

// confString quotes a postgresql.conf string value.
func confString(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }
