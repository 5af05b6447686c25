package devpg

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// fakeBin makes dir hold executable stand-ins for the given binaries.
func fakeBin(t *testing.T, dir string, names ...string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// noSystemBinaries hides every installed PostgreSQL from auto-detection.
func noSystemBinaries(t *testing.T) {
	t.Helper()
	oldLib, oldLook := pgLibDir, lookPath
	pgLibDir = filepath.Join(t.TempDir(), "none")
	lookPath = func(string) (string, error) { return "", exec.ErrNotFound }
	t.Cleanup(func() { pgLibDir, lookPath = oldLib, oldLook })
	t.Setenv(EnvBinDir, "")
}

func TestFindBinDir(t *testing.T) {
	noSystemBinaries(t)
	root := t.TempDir()
	all := []string{"pg_ctl", "initdb", "postgres"}
	lib := filepath.Join(root, "lib")
	fakeBin(t, filepath.Join(lib, "9.6", "bin"), all...)
	fakeBin(t, filepath.Join(lib, "13", "bin"), all...)
	fakeBin(t, filepath.Join(lib, "15", "bin"), all...)
	fakeBin(t, filepath.Join(lib, "17", "bin"), "pg_ctl", "initdb") // incomplete: no server
	if err := os.MkdirAll(filepath.Join(lib, "common"), 0o755); err != nil {
		t.Fatal(err)
	}
	pgLibDir = lib

	check := func(name, explicit string, want int, wantDir string) {
		t.Helper()
		got, err := findBinDir(explicit, want)
		if err != nil || got != wantDir {
			t.Fatalf("%s: findBinDir = %q, %v; want %q", name, got, err, wantDir)
		}
	}
	check("highest complete", "", 0, filepath.Join(lib, "15", "bin"))
	check("matches the cluster", "", 13, filepath.Join(lib, "13", "bin"))
	check("old dotted version", "", 9, filepath.Join(lib, "9.6", "bin"))
	check("cluster version not installed", "", 12, filepath.Join(lib, "15", "bin"))
	check("explicit wins", filepath.Join(lib, "13", "bin"), 0, filepath.Join(lib, "13", "bin"))

	t.Setenv(EnvBinDir, filepath.Join(lib, "9.6", "bin"))
	check("environment", "", 15, filepath.Join(lib, "9.6", "bin"))

	// An explicit setting that is wrong is an error, not a reason to guess.
	t.Setenv(EnvBinDir, filepath.Join(lib, "17", "bin"))
	if _, err := findBinDir("", 0); err == nil || !strings.Contains(err.Error(), EnvBinDir) {
		t.Fatalf("bad %s: err = %v", EnvBinDir, err)
	}
	t.Setenv(EnvBinDir, "")
	if _, err := findBinDir(filepath.Join(root, "nowhere"), 0); err == nil || !strings.Contains(err.Error(), "BinDir") {
		t.Fatalf("bad BinDir: err = %v", err)
	}

	// PATH: pg_ctl is a symlink into the real bin directory.
	pgLibDir = filepath.Join(root, "none")
	real := fakeBin(t, filepath.Join(root, "opt", "pg", "bin"), all...)
	links := filepath.Join(root, "usr-local-bin")
	if err := os.MkdirAll(links, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(real, "pg_ctl"), filepath.Join(links, "pg_ctl")); err != nil {
		t.Fatal(err)
	}
	lookPath = func(string) (string, error) { return filepath.Join(links, "pg_ctl"), nil }
	check("PATH symlink", "", 0, real)

	lookPath = func(string) (string, error) { return "", exec.ErrNotFound }
	check("nothing installed", "", 0, "")
}

// As root without system binaries, the embedded fallback is refused with
// advice rather than failing inside initdb.
func TestEmbeddedRefusesRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("root only; TestEmbeddedDownloadFailure covers normal users")
	}
	noSystemBinaries(t)
	_, err := Start(testCtx(t), Config{DataDir: dataDir(t)})
	if err == nil || !strings.Contains(err.Error(), "cannot run as root") || !strings.Contains(err.Error(), EnvBinDir) {
		t.Fatalf("err = %v", err)
	}
}

// Without system binaries a normal user gets embedded-postgres, whose
// download fails here (a local repository answering 404 stands in for
// Maven Central, which these machines cannot reach); the error must say
// what happened and what to do. As root the test re-runs itself as the
// postgres user, since the fallback refuses root.
func TestEmbeddedDownloadFailure(t *testing.T) {
	if os.Geteuid() == 0 {
		rerunAsPostgres(t, "TestEmbeddedDownloadFailure")
		return
	}
	noSystemBinaries(t)
	t.Setenv("HOME", t.TempDir()) // the library's binary cache lives in $HOME
	repo := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(repo.Close)
	old := embeddedRepoURL
	embeddedRepoURL = repo.URL
	t.Cleanup(func() { embeddedRepoURL = old })

	dir := t.TempDir()
	t.Setenv("TMPDIR", t.TempDir()) // the library leaves a log file in the temp dir
	_, err := Start(testCtx(t), Config{DataDir: dir})
	if err == nil {
		t.Fatal("Start succeeded without binaries")
	}
	t.Log(err)
	for _, want := range []string{"no PostgreSQL binaries found", "embedded-postgres", repo.URL, "no version found", "apt-get install postgresql", EnvBinDir} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error does not mention %q: %v", want, err)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "pg")); len(entries) > 0 {
		t.Fatalf("a failed download left a cluster behind: %v", entries)
	}
}

// rerunAsPostgres runs one test of this binary as the postgres user, from
// a copy the postgres user can reach.
func rerunAsPostgres(t *testing.T, name string) {
	t.Helper()
	cred, err := postgresCredential()
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := dataDir(t)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "devpg.test")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^"+name+"$", "-test.count=1", "-test.v")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	out, err := cmd.CombinedOutput()
	t.Logf("as postgres:\n%s", out)
	var exit *exec.ExitError
	if errors.As(err, &exit) || err != nil {
		t.Fatalf("%s as the postgres user: %v", name, err)
	}
	if !strings.Contains(string(out), "--- PASS: "+name) {
		t.Fatalf("%s did not pass as the postgres user", name)
	}
}
