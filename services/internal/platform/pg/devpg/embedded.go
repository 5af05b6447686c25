package devpg

// The embedded-postgres fallback, for machines without PostgreSQL
// installed (typically a developer's laptop).
//
// NOT EXERCISED BY THIS PACKAGE'S TESTS: the machines this project is
// built on have system binaries (so this path is never taken) and cannot
// reach Maven Central, where embedded-postgres downloads binaries from.
// Only its refusal to run as root and its error on a failed download are
// checked (TestEmbeddedDownloadFailure, run as a normal user).
//
// What differs from the system-binaries path, because embedded-postgres
// runs initdb and pg_ctl itself:
//   - it cannot drop root, so as root Start fails with advice instead;
//   - it initdb's with password authentication; the server is started with
//     hba_file pointing at a trust file of ours so URL() is the same in both
//     modes;
//   - it deletes and re-creates the cluster when PG_VERSION is missing or
//     of another version, so Start refuses such directories itself and
//     picks the embedded version from an existing cluster's PG_VERSION;
//   - Start and Stop take no context: the download (no overall timeout in
//     the library, 30 s to connect) and the start (60 s) are not
//     interruptible.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	embeddedpostgres "github.com/fergusstrange/embedded-postgres"
)

// embeddedRepoURL is where embedded-postgres downloads binaries from;
// tests point it at a local server.
var embeddedRepoURL = "https://repo1.maven.org/maven2"

// embeddedVersions maps a cluster's major version to the binaries
// embedded-postgres v1.34.0 offers. New clusters use 15, the version of
// Debian 12's system PostgreSQL that CI and production tests run on.
var embeddedVersions = map[int]embeddedpostgres.PostgresVersion{
	18: embeddedpostgres.V18, 17: embeddedpostgres.V17, 16: embeddedpostgres.V16,
	15: embeddedpostgres.V15, 14: embeddedpostgres.V14, 13: embeddedpostgres.V13,
	12: embeddedpostgres.V12, 11: embeddedpostgres.V11, 10: embeddedpostgres.V10,
}

const defaultEmbeddedMajor = 15

const noBinaries = "no PostgreSQL binaries found (looked at $" + EnvBinDir + ", /usr/lib/postgresql/*/bin and pg_ctl on PATH)"

func (s *Server) startEmbedded(ctx context.Context, existing int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		return fmt.Errorf("devpg: %s, and the embedded-postgres fallback cannot run as root (initdb refuses root and the library cannot drop privileges); install PostgreSQL (Debian: apt-get install postgresql) or set %s",
			noBinaries, EnvBinDir)
	}
	major := existing
	if major == 0 {
		if entries, err := os.ReadDir(s.pgdata); err == nil && len(entries) > 0 {
			return fmt.Errorf("devpg: %s is not empty but holds no PostgreSQL cluster (no PG_VERSION); move it away", s.pgdata)
		}
		major = defaultEmbeddedMajor
	}
	version, ok := embeddedVersions[major]
	if !ok {
		return fmt.Errorf("devpg: %s, and embedded-postgres has no PostgreSQL %d for the cluster in %s; install PostgreSQL %d or set %s",
			noBinaries, major, s.pgdata, major, EnvBinDir)
	}
	if s.sockDir != "" {
		if err := os.MkdirAll(s.sockDir, 0o700); err != nil {
			return fmt.Errorf("devpg: %w", err)
		}
	}
	hba := filepath.Join(s.cfg.DataDir, "pg_hba.dev.conf")
	if err := os.WriteFile(hba, []byte("# Written by infrapilot dev for embedded-postgres.\nlocal all all trust\nhost all all 127.0.0.1/32 trust\n"), 0o600); err != nil {
		return fmt.Errorf("devpg: %w", err)
	}
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("devpg: %w", err)
	}
	if err := s.clearLeftovers(ctx); err != nil {
		logFile.Close()
		return err
	}
	s.cfg.Log.Info("dev postgres: no system binaries, using embedded-postgres (downloads binaries on first use)", "version", string(version))
	s.emb = embeddedpostgres.NewDatabase(embeddedpostgres.DefaultConfig().
		Version(version).
		Port(uint32(s.port)).
		Username("postgres").
		Password("postgres"). // needed by its initdb; hba_file below makes it unused
		Database("postgres"). // ours is created by ensureDatabase, as in the other path
		DataPath(s.pgdata).
		RuntimePath(filepath.Join(s.cfg.DataDir, "pg-runtime")). // emptied by the library at every start
		BinaryRepositoryURL(embeddedRepoURL).
		StartTimeout(60 * time.Second).
		Logger(logFile). // copied there from the library's temp file at start and stop
		StartParameters(map[string]string{
			"listen_addresses":        "127.0.0.1",
			"unix_socket_directories": s.sockDir,
			"hba_file":                hba,
		}))
	if err := s.emb.Start(); err != nil {
		s.emb = nil
		logFile.Close()
		return fmt.Errorf("devpg: %s; the embedded-postgres fallback (which downloads PostgreSQL %s from %s) failed: %w; install PostgreSQL (Debian: apt-get install postgresql) or set %s",
			noBinaries, version, embeddedRepoURL, err, EnvBinDir)
	}
	s.embLog = logFile
	return nil
}
