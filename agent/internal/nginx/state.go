package nginx

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/infrapilot/infrapilot/events"
)

// stateFile holds the last-known-good set; it survives restarts so that a
// restarted agent knows what is live, what to compare the disk with and
// what to restore.
const stateFile = "state.json"

// persisted is the content of state.json.
type persisted struct {
	V int `json:"v"`
	// Revision is the last revision applied (in part or whole), or the
	// one that switched the agent to external mode.
	Revision uint64 `json:"revision"`
	// External: InfraPilot does not manage nginx; nothing is checked or
	// restored.
	External bool `json:"external,omitempty"`
	// Generation is the live generation (Dir/current points to it).
	Generation string `json:"generation,omitempty"`
	CheckPort  int    `json:"check_port,omitempty"`
	// Files are the files of the live generation: the desired files that
	// passed, and the previous version of the hosts that did not.
	Files []events.NginxFile `json:"files,omitempty"`
	// Manifest is the SHA-256 of every file of the live generation.
	Manifest map[string]string `json:"manifest,omitempty"`
	// Result is what applying Revision gave, repeated when the same
	// revision comes again.
	Result *events.NginxApplyResult `json:"result,omitempty"`
	// Seq is the last generation number handed out.
	Seq uint64 `json:"seq"`
}

// lkg reports whether a last-known-good generation exists.
func (p *persisted) lkg() bool { return p.Generation != "" && len(p.Files) > 0 }

func (c *Controller) load() error {
	b, err := os.ReadFile(c.path(stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		c.seq = c.highestGeneration()
		return nil
	}
	if err != nil {
		return fmt.Errorf("nginx: %w", err)
	}
	if err := json.Unmarshal(b, &c.st); err != nil {
		return fmt.Errorf("nginx: %s: %w", stateFile, err)
	}
	c.seq = max(c.st.Seq, c.highestGeneration())
	return nil
}

// save replaces state.json atomically, 0600: it holds every rendered
// file, which says what runs on this server.
func (c *Controller) save() error {
	c.st.V = 1
	c.st.Seq = c.seq
	b, err := json.MarshalIndent(c.st, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(c.path(stateFile), b, 0o600)
}

// highestGeneration is the highest numbered directory under gen/, so
// that numbers are never reused even if state.json is lost.
func (c *Controller) highestGeneration() uint64 {
	entries, _ := os.ReadDir(c.path("gen"))
	var hi uint64
	for _, e := range entries {
		if n, err := strconv.ParseUint(e.Name(), 10, 64); err == nil && n > hi {
			hi = n
		}
	}
	return hi
}

// writeAtomic writes a file through a temporary file in the same
// directory, synced and renamed, so a crash leaves the old or the new
// content.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("nginx: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("nginx: %w", err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("nginx: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("nginx: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("nginx: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("nginx: %w", err)
	}
	return nil
}

func digest(content string) string {
	h := sha256.Sum256([]byte(content))
	return hex.EncodeToString(h[:])
}

func manifest(files []events.NginxFile) map[string]string {
	m := make(map[string]string, len(files))
	for _, f := range files {
		m[f.Path] = digest(f.Content)
	}
	return m
}
