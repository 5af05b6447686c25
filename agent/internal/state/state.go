// Package state is the agent's state directory: who the agent is
// (identity.json, written by enrollment), its NATS credentials
// (agent.creds), what it has read (log positions, event cursor), its
// status for `infrapilot-agent status`, and the outbox's JetStream store.
// The directory is 0700 and every file 0600: the credentials are secrets,
// and the rest says what runs on the server.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// File names inside the state directory.
const (
	IdentityFile = "identity.json"
	CredsFile    = "agent.creds"
	StatusFile   = "status.json"
	LogsFile     = "logs.json"
	EventsFile   = "events.json"
	LockFile     = "agent.lock"
)

// DefaultDir is the state directory of an agent installed as a service.
const DefaultDir = "/var/lib/infrapilot-agent"

// Identity is what enrollment leaves behind: everything `run` needs to
// join the hub as this agent.
type Identity struct {
	OrgID   string `json:"org_id"`
	AgentID string `json:"agent_id"`
	// NATSURL is the hub's leafnode URL (nats-leaf://… or tls://…).
	NATSURL string `json:"nats_url"`
	// Server is the control plane's base URL enrollment used.
	Server      string    `json:"server,omitempty"`
	Fingerprint string    `json:"fingerprint,omitempty"`
	EnrolledAt  time.Time `json:"enrolled_at,omitzero"`
}

// Dir is an agent state directory.
type Dir struct{ path string }

// Open makes sure path exists as a directory only its owner can use and
// returns it. An existing directory with wider permissions is narrowed.
func Open(path string) (Dir, error) {
	if path == "" {
		return Dir{}, errors.New("state: no directory")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return Dir{}, err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return Dir{}, fmt.Errorf("state: %w", err)
	}
	if err := os.Chmod(abs, 0o700); err != nil {
		return Dir{}, fmt.Errorf("state: %w", err)
	}
	return Dir{path: abs}, nil
}

// Path is the directory's path.
func (d Dir) Path() string { return d.path }

// File is the path of a file in the directory.
func (d Dir) File(name string) string { return filepath.Join(d.path, name) }

// WriteFile replaces a file atomically (write to a temporary file, sync,
// rename) with mode 0600, so a crash leaves the old or the new content,
// never a mix.
func (d Dir) WriteFile(name string, data []byte) error {
	f, err := os.CreateTemp(d.path, "."+name+".*")
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("state: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("state: write %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("state: sync %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if err := os.Rename(tmp, d.File(name)); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	return nil
}

// WriteJSON writes v as indented JSON with WriteFile.
func (d Dir) WriteJSON(name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("state: encode %s: %w", name, err)
	}
	return d.WriteFile(name, append(b, '\n'))
}

// ReadJSON reads a JSON file into v. A missing file returns an error
// matching fs.ErrNotExist.
func (d Dir) ReadJSON(name string, v any) error {
	b, err := os.ReadFile(d.File(name))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("state: %s is corrupt: %w", name, err)
	}
	return nil
}

// Identity reads identity.json. A missing file means the agent is not
// enrolled: the error matches fs.ErrNotExist.
func (d Dir) Identity() (Identity, error) {
	var id Identity
	if err := d.ReadJSON(IdentityFile, &id); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Identity{}, fmt.Errorf("state: not enrolled (no %s in %s): %w", IdentityFile, d.path, err)
		}
		return Identity{}, err
	}
	if id.OrgID == "" || id.AgentID == "" || id.NATSURL == "" {
		return Identity{}, fmt.Errorf("state: %s lacks org_id, agent_id or nats_url", d.File(IdentityFile))
	}
	return id, nil
}

// SaveIdentity writes identity.json.
func (d Dir) SaveIdentity(id Identity) error { return d.WriteJSON(IdentityFile, id) }

// CredsPath is the path of the agent's NATS credentials file, or "" when
// there is none (an agent of a hub without authentication).
func (d Dir) CredsPath() string {
	p := d.File(CredsFile)
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// Lock takes an exclusive lock on the directory so that two agents never
// share it; it is released when the returned file is closed or the
// process ends.
func (d Dir) Lock() (*os.File, error) {
	f, err := os.OpenFile(d.File(LockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("state: %s is in use by another agent: %w", d.path, err)
	}
	return f, nil
}

// Status is what a running agent reports about itself in status.json,
// refreshed every few seconds, for `infrapilot-agent status`.
type Status struct {
	PID        int       `json:"pid"`
	Version    string    `json:"version"`
	AgentID    string    `json:"agent_id"`
	OrgID      string    `json:"org_id"`
	StartedAt  time.Time `json:"started_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	Engine     string    `json:"engine,omitempty"`
	EngineErr  string    `json:"engine_error,omitempty"`
	LinkUp     bool      `json:"link_up"`
	Pending    uint64    `json:"outbox_pending"`
	Forwarded  uint64    `json:"outbox_forwarded"`
	Duplicates uint64    `json:"outbox_duplicates"`
	Dead       uint64    `json:"outbox_dead"`
	LastError  string    `json:"last_error,omitempty"`
	Followed   int       `json:"logs_followed"`
	Stopped    bool      `json:"stopped,omitempty"`
}
