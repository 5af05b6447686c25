package devpg

import (
	"cmp"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Where auto-detection looks; variables so tests can point them elsewhere.
var (
	pgLibDir = "/usr/lib/postgresql" // Debian/Ubuntu: <pgLibDir>/<version>/bin
	lookPath = exec.LookPath
)

// requiredBinaries must all be present in a bin directory.
var requiredBinaries = []string{"pg_ctl", "initdb", "postgres"}

// findBinDir picks the PostgreSQL bin directory (see Config.BinDir).
// wantMajor is the version of an existing cluster, 0 for none. It returns
// "" without error when nothing is installed.
func findBinDir(explicit string, wantMajor int) (string, error) {
	if explicit != "" {
		if err := hasBinaries(explicit); err != nil {
			return "", fmt.Errorf("devpg: BinDir: %w", err)
		}
		return explicit, nil
	}
	if env := os.Getenv(EnvBinDir); env != "" {
		if err := hasBinaries(env); err != nil {
			return "", fmt.Errorf("devpg: $%s: %w", EnvBinDir, err)
		}
		return env, nil
	}
	if dir := libBinDir(wantMajor); dir != "" {
		return dir, nil
	}
	if p, err := lookPath("pg_ctl"); err == nil {
		// /usr/local/bin/pg_ctl is often a symlink into the real bin
		// directory, which is where initdb and postgres live too.
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		if dir := filepath.Dir(p); hasBinaries(dir) == nil {
			return dir, nil
		}
	}
	return "", nil
}

// libBinDir returns <pgLibDir>/<version>/bin for wantMajor when installed,
// else for the highest installed version, else "".
func libBinDir(wantMajor int) string {
	entries, err := os.ReadDir(pgLibDir)
	if err != nil {
		return ""
	}
	type cand struct {
		major, minor int
		dir          string
	}
	var cands []cand
	for _, e := range entries {
		major, minor, ok := parseVersionDir(e.Name())
		if !ok {
			continue
		}
		dir := filepath.Join(pgLibDir, e.Name(), "bin")
		if hasBinaries(dir) == nil {
			cands = append(cands, cand{major, minor, dir})
		}
	}
	if len(cands) == 0 {
		return ""
	}
	for _, c := range cands {
		if c.major == wantMajor {
			return c.dir
		}
	}
	best := slices.MaxFunc(cands, func(a, b cand) int {
		return cmp.Or(cmp.Compare(a.major, b.major), cmp.Compare(a.minor, b.minor))
	})
	return best.dir
}

// parseVersionDir parses "15" or "9.6".
func parseVersionDir(name string) (major, minor int, ok bool) {
	a, b, dotted := strings.Cut(name, ".")
	major, err := strconv.Atoi(a)
	if err != nil {
		return 0, 0, false
	}
	if dotted {
		if minor, err = strconv.Atoi(b); err != nil {
			return 0, 0, false
		}
	}
	return major, minor, true
}

// hasBinaries checks that dir holds executable pg_ctl, initdb and postgres.
func hasBinaries(dir string) error {
	for _, name := range requiredBinaries {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("%s has no executable %s", dir, name)
		}
	}
	return nil
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)`)

// binaryMajor asks pg_ctl for its major version. --version is answered
// before pg_ctl's refusal to run as root, so it runs as ourselves.
func binaryMajor(dir string) (int, error) {
	out, err := exec.Command(filepath.Join(dir, "pg_ctl"), "--version").Output()
	if err != nil {
		return 0, fmt.Errorf("devpg: %s --version: %w", filepath.Join(dir, "pg_ctl"), err)
	}
	m := versionRE.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("devpg: cannot read the version from %q", strings.TrimSpace(string(out)))
	}
	return strconv.Atoi(string(m[1]))
}
