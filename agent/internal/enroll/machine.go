package enroll

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"

	"github.com/infrapilot/infrapilot/agent/internal/state"
)

// MachineIDFiles are where Linux keeps the machine id (machine-id(5)):
// systemd's, then D-Bus's on systems without systemd.
var MachineIDFiles = []string{"/etc/machine-id", "/var/lib/dbus/machine-id"}

// MachineIDFile is the machine id enroll generates in the state directory
// of a machine that has none (a minimal container image, say), so that
// the fingerprint stays the same across re-enrollments.
const MachineIDFile = "machine-id"

// fingerprintApp keys the fingerprint to InfraPilot. machine-id(5) asks
// applications not to reveal the id itself but a keyed hash of it with an
// application-specific key, so the control plane (and whoever reads its
// registry) learns nothing it could match with another product's ids.
const fingerprintApp = "infrapilot-agent fingerprint v1"

// FingerprintLen is the length of a fingerprint: 32 lower-case hex
// characters (128 bits of HMAC-SHA-256), well within what tenancy accepts
// (1–256 printable ASCII characters).
const FingerprintLen = 32

// Fingerprint returns the machine's fingerprint and where its machine id
// came from. It is stable for a machine, so that re-installing the agent
// re-enrolls the same agent.
//
// The id kept in the state directory wins when it exists: it only exists
// because the machine had no id at first enrollment, and switching to one
// that appeared since would make the machine a new agent. Without either,
// a random id is generated and kept there (0600). files defaults to
// MachineIDFiles.
func Fingerprint(dir state.Dir, files []string) (fp, source string, err error) {
	if files == nil {
		files = MachineIDFiles
	}
	kept := dir.File(MachineIDFile)
	id, err := readMachineID(kept)
	if err != nil {
		return "", "", err
	}
	source = kept
	for _, f := range files {
		if id != nil {
			break
		}
		if id, err = readMachineID(f); err != nil {
			return "", "", err
		}
		source = f
	}
	if id == nil {
		b := make([]byte, 16)
		_, _ = rand.Read(b) // crypto/rand.Read never fails
		id = []byte(hex.EncodeToString(b))
		if err := dir.WriteFile(MachineIDFile, append(id, '\n')); err != nil {
			return "", "", err
		}
		source = kept + " (generated: the machine has no machine id)"
	}
	return fingerprintOf(id), source, nil
}

func fingerprintOf(machineID []byte) string {
	m := hmac.New(sha256.New, machineID)
	m.Write([]byte(fingerprintApp))
	return hex.EncodeToString(m.Sum(nil))[:FingerprintLen]
}

// readMachineID returns the id in path, or nil when the file is missing,
// empty or "uninitialized" (systemd's mark before the first boot has
// committed an id).
func readMachineID(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("enroll: machine id: %w", err)
	}
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "uninitialized" {
		return nil, nil
	}
	return b, nil
}

// Facts are what enrollment tells the control plane about the machine.
type Facts struct {
	Hostname string
	OS       string
	Arch     string
	Version  string
}

// HostFacts returns this machine's facts with the agent's version.
func HostFacts(version string) (Facts, error) {
	h, err := os.Hostname()
	if err != nil {
		return Facts{}, fmt.Errorf("enroll: hostname: %w", err)
	}
	return Facts{Hostname: h, OS: runtime.GOOS, Arch: runtime.GOARCH, Version: version}, nil
}
