package enroll_test

import (
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"testing"

	"github.com/infrapilot/infrapilot/agent/internal/enroll"
	"github.com/infrapilot/infrapilot/agent/internal/state"
)

// fpRE is the fingerprint's shape; it is within what tenancy accepts
// (domain.CheckFingerprint: 1–256 printable ASCII characters), which
// enrolltest's control plane checks on every enrollment.
var fpRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// writeID writes a machine id file and returns its path.
func writeID(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "machine-id")
	if err := os.WriteFile(p, []byte(content), 0o444); err != nil {
		t.Fatal(err)
	}
	return p
}

func openDir(t *testing.T) state.Dir {
	t.Helper()
	d, err := state.Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func fingerprint(t *testing.T, d state.Dir, files ...string) (string, string) {
	t.Helper()
	if files == nil {
		files = []string{}
	}
	fp, src, err := enroll.Fingerprint(d, files)
	if err != nil {
		t.Fatal(err)
	}
	if !fpRE.MatchString(fp) {
		t.Fatalf("fingerprint %q is not 32 lower-case hex characters", fp)
	}
	return fp, src
}

func TestFingerprintIsStablePerMachineID(t *testing.T) {
	t.Parallel()
	const id = "4f3c2b1a0e9d8c7b6a5f4e3d2c1b0a99"
	a := writeID(t, id+"\n")
	b := writeID(t, "  "+id+"  \n")
	other := writeID(t, "0123456789abcdef0123456789abcdef\n")
	missing := filepath.Join(t.TempDir(), "none")

	fpA, src := fingerprint(t, openDir(t), a)
	if src != a {
		t.Fatalf("source %q, want %q", src, a)
	}
	if again, _ := fingerprint(t, openDir(t), a); again != fpA {
		t.Fatalf("not stable: %s then %s", fpA, again)
	}
	if fpB, _ := fingerprint(t, openDir(t), b); fpB != fpA {
		t.Fatalf("same machine id, other file: %s vs %s", fpB, fpA)
	}
	if fp, src := fingerprint(t, openDir(t), missing, a); fp != fpA || src != a {
		t.Fatalf("fallback to the second file: %s from %s", fp, src)
	}
	if fpO, _ := fingerprint(t, openDir(t), other); fpO == fpA {
		t.Fatal("different machine ids share a fingerprint")
	}
	// The fingerprint is a keyed hash, not the id (machine-id(5)).
	if fpA == id {
		t.Fatal("the fingerprint reveals the machine id")
	}
}

// A machine without a machine id (or with systemd's "uninitialized"
// placeholder) gets one generated once and kept in the state directory.
func TestFingerprintWithoutMachineID(t *testing.T) {
	t.Parallel()
	for name, files := range map[string][]string{
		"none":          {filepath.Join(t.TempDir(), "none")},
		"uninitialized": {writeID(t, "uninitialized\n")},
		"empty":         {writeID(t, "\n")},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			d := openDir(t)
			fp1, src := fingerprint(t, d, files...)
			if src == files[0] {
				t.Fatalf("source %q", src)
			}
			kept := d.File(enroll.MachineIDFile)
			st, err := os.Stat(kept)
			if err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("generated id: %v %v", st, err)
			}
			reopened, err := state.Open(d.Path())
			if err != nil {
				t.Fatal(err)
			}
			if fp2, src2 := fingerprint(t, reopened, files...); fp2 != fp1 || src2 != kept {
				t.Fatalf("not stable: %s then %s (from %s)", fp1, fp2, src2)
			}
			// The kept id wins over one the machine gains later: the
			// agent must stay the same agent.
			if fp3, _ := fingerprint(t, reopened, writeID(t, "0123456789abcdef0123456789abcdef")); fp3 != fp1 {
				t.Fatalf("kept id lost to a new machine id: %s vs %s", fp3, fp1)
			}
			if other, _ := fingerprint(t, openDir(t), files...); other == fp1 {
				t.Fatal("two machines without ids share a fingerprint")
			}
		})
	}
}

func TestHostFacts(t *testing.T) {
	t.Parallel()
	f, err := enroll.HostFacts("1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	h, _ := os.Hostname()
	if f.Hostname != h || f.OS != runtime.GOOS || f.Arch != runtime.GOARCH || f.Version != "1.2.3" {
		t.Fatalf("%+v", f)
	}
}
