// Package enroll is `infrapilot-agent enroll`: it makes this machine an
// agent of an org. It derives the machine's fingerprint, sends it with the
// host's facts and an enrollment token to the control plane (POST
// /api/v1/agents/enroll), and writes the identity and NATS credentials the
// answer carries into the state directory, where `run` finds them.
package enroll

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/infrapilot/infrapilot/agent/internal/state"
	"github.com/infrapilot/infrapilot/events"
)

// Config configures an enrollment.
type Config struct {
	// Server is the control plane's URL as the user typed it (ServerURL's
	// rules).
	Server string
	// Token is the enrollment token. It is sent in the request body only
	// and never appears in an error or in progress output.
	Token string
	// StateDir is where the identity and credentials are written.
	StateDir string
	// Force replaces an identity of another agent (or org), or one that
	// cannot be read, and enrolls with a server other than the one the
	// machine is enrolled with.
	Force bool
	// InsecureHTTP allows a plain http URL for a server that is not on
	// this machine.
	InsecureHTTP bool
	// Version is the agent's version, reported to the control plane.
	Version string
	// MachineIDFiles are read for the machine id; nil means
	// MachineIDFiles, empty means none (tests).
	MachineIDFiles []string
	// Client sends the request (default: 30 s timeout, redirects not
	// followed).
	Client *http.Client
	// Attempts bounds the connection attempts while the server refuses
	// connections (default 5), Backoff is the first wait between them,
	// doubled each time (default 1 s).
	Attempts int
	Backoff  time.Duration
	// Progress receives a line per retry (default: discarded).
	Progress io.Writer
	// Now is the clock for enrolled_at (default time.Now).
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.Client == nil {
		c.Client = newHTTPClient()
	}
	if c.Attempts <= 0 {
		c.Attempts = 5
	}
	if c.Backoff <= 0 {
		c.Backoff = time.Second
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Version == "" {
		c.Version = "dev"
	}
}

// Result is what an enrollment did.
type Result struct {
	// Identity is what was written to identity.json.
	Identity state.Identity
	// StateDir is the state directory's absolute path.
	StateDir string
	// CredsFile is the credentials file written, or "" when the control
	// plane issued none (a hub without authentication).
	CredsFile string
	// Reenrolled is true when the control plane knew the machine already
	// and kept its agent id (its previous credentials are revoked).
	Reenrolled bool
	// FingerprintSource says where the machine id came from.
	FingerprintSource string
	// Replaced is the identity of another agent that Force replaced; its
	// outbox, positions and status were discarded with it.
	Replaced *state.Identity
}

// runState is what `run` keeps for the agent it runs as. A replaced
// agent's must go: its outbox holds messages on the old agent's subjects,
// which the new credentials may not publish, so they would block the
// forwarder for good, and its positions and cursor describe what the old
// agent sent. "jetstream" is outbox.Open's store directory.
var runState = []string{"jetstream", state.LogsFile, state.EventsFile, state.StatusFile}

// Enroll enrolls the machine and writes its identity (identity.json) and
// credentials (agent.creds) to the state directory, both 0600 in a 0700
// directory. Nothing is written unless the control plane accepts the
// enrollment, except the lock file and, on a machine without a machine
// id, the generated one. It refuses, unless cfg.Force, to replace the
// identity of another agent: the state directory is the agent, and a
// machine already enrolled elsewhere should not silently change org.
//
// An agent running on the state directory (holding its lock) makes it
// fail before anything is sent: the new credentials would revoke the ones
// it runs with.
func Enroll(ctx context.Context, cfg Config) (res Result, err error) {
	cfg.setDefaults()
	token := strings.TrimSpace(cfg.Token)
	defer func() {
		if err != nil {
			err = redact(err, token)
		}
	}()
	if token == "" {
		return Result{}, errors.New("enroll: no enrollment token (--token)")
	}
	server, err := ServerURL(cfg.Server, cfg.InsecureHTTP)
	if err != nil {
		return Result{}, err
	}
	dir, err := state.Open(cfg.StateDir)
	if err != nil {
		return Result{}, err
	}
	lock, err := dir.Lock()
	if err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return Result{}, fmt.Errorf("enroll: an agent is running on %s: stop it first (systemctl stop infrapilot-agent)", dir.Path())
		}
		return Result{}, err
	}
	defer lock.Close()
	prev, err := previous(dir, server, cfg.Force)
	if err != nil {
		return Result{}, err
	}
	fp, source, err := Fingerprint(dir, cfg.MachineIDFiles)
	if err != nil {
		return Result{}, err
	}
	facts, err := HostFacts(cfg.Version)
	if err != nil {
		return Result{}, err
	}
	got, err := post(ctx, cfg, server+EnrollPath, events.EnrollAgentRequest{Token: token, Fingerprint: fp,
		Hostname: facts.Hostname, OS: facts.OS, Arch: facts.Arch, Version: facts.Version})
	if err != nil {
		return Result{}, err
	}
	if err := checkEnrollment(got); err != nil {
		return Result{}, err
	}
	res = Result{StateDir: dir.Path(), Reenrolled: got.Reenrolled, FingerprintSource: source,
		Identity: state.Identity{OrgID: got.OrgID, AgentID: got.AgentID, NATSURL: got.NATSURL,
			Server: server, Fingerprint: fp, EnrolledAt: cfg.Now().UTC().Truncate(time.Second)}}
	if prev != nil && (prev.OrgID != got.OrgID || prev.AgentID != got.AgentID) {
		if !cfg.Force {
			return Result{}, fmt.Errorf("enroll: %s holds agent %s of org %s, but the control plane enrolled this machine as agent %s of org %s; "+
				"nothing was changed here: rerun with --force to replace the old agent (its unsent data is discarded), or delete agent %s in InfraPilot",
				dir.Path(), prev.AgentID, prev.OrgID, got.AgentID, got.OrgID, got.AgentID)
		}
		for _, name := range runState {
			if err := os.RemoveAll(dir.File(name)); err != nil {
				return Result{}, fmt.Errorf("enroll: discarding the old agent's state: %w", err)
			}
		}
		res.Replaced = prev
	}
	if err := save(dir, res.Identity, got.Credentials); err != nil {
		return Result{}, err
	}
	if got.Credentials != "" {
		res.CredsFile = dir.File(state.CredsFile)
	}
	return res, matchOwner(dir)
}

// previous returns the identity the state directory holds, if any. A
// directory enrolled with another server, or whose identity cannot be
// read, is refused before anything is sent unless force: enrolling would
// spend a use of the token for a machine that is then refused.
func previous(dir state.Dir, server string, force bool) (*state.Identity, error) {
	var id state.Identity
	err := dir.ReadJSON(state.IdentityFile, &id)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case err != nil && !force:
		return nil, fmt.Errorf("enroll: %w; rerun with --force to replace it", err)
	case err != nil:
		return &state.Identity{}, nil
	case id.Server != "" && id.Server != server && !force:
		return nil, fmt.Errorf("enroll: %s holds agent %s of org %s, enrolled with %s; rerun with --force to enroll with %s instead",
			dir.Path(), id.AgentID, id.OrgID, id.Server, server)
	}
	return &id, nil
}

// checkEnrollment refuses an answer `run` could not use, before anything
// is written.
func checkEnrollment(e events.AgentEnrollment) error {
	if !events.ValidToken(e.AgentID) || !events.ValidToken(e.OrgID) {
		return fmt.Errorf("enroll: the control plane answered an invalid agent id %q or org id %q", e.AgentID, e.OrgID)
	}
	if u, err := url.Parse(e.NATSURL); err != nil || u.Scheme == "" || u.Host == "" {
		return fmt.Errorf("enroll: the control plane answered no usable hub URL (%q)", e.NATSURL)
	}
	if e.Credentials != "" && (!strings.Contains(e.Credentials, "NATS USER JWT") || !strings.Contains(e.Credentials, "USER NKEY SEED")) {
		return errors.New("enroll: the control plane's credentials are not a NATS credentials file")
	}
	return nil
}

// save writes the credentials, then the identity. identity.json is what
// makes the directory enrolled, so it goes last: a crash in between
// leaves the old identity (whose agent the new credentials may already
// belong to, when re-enrolling) or none. A control plane that issues no
// credentials leaves none behind: a stale file would be offered to a hub
// that no longer knows it.
func save(dir state.Dir, id state.Identity, creds string) error {
	if creds == "" {
		if err := os.Remove(dir.File(state.CredsFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("enroll: %w", err)
		}
	} else {
		if !strings.HasSuffix(creds, "\n") {
			creds += "\n"
		}
		if err := dir.WriteFile(state.CredsFile, []byte(creds)); err != nil {
			return err
		}
	}
	return dir.SaveIdentity(id)
}

// matchOwner gives the files enroll may have created the state
// directory's owner. install.sh runs enroll as root in a directory owned
// by the service's user, which must be able to read the identity and
// credentials and take the lock; the directory's owner says who that is.
func matchOwner(dir state.Dir) error {
	if os.Geteuid() != 0 {
		return nil
	}
	st, err := os.Stat(dir.Path())
	if err != nil {
		return fmt.Errorf("enroll: %w", err)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok || (sys.Uid == 0 && sys.Gid == 0) {
		return nil
	}
	for _, name := range []string{state.IdentityFile, state.CredsFile, state.LockFile, MachineIDFile} {
		if err := os.Lchown(dir.File(name), int(sys.Uid), int(sys.Gid)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("enroll: %w", err)
		}
	}
	return nil
}

// redact removes the token from an error's text, whatever put it there
// (a server echoing the request, say): the error is printed, and a
// terminal's scrollback or a CI log is no place for a token. A string
// shorter than minRedact is no real token (those are ipe_ and 32 hex
// digits), and replacing it would garble the message instead.
func redact(err error, token string) error {
	if len(token) < minRedact || !strings.Contains(err.Error(), token) {
		return err
	}
	var e *Error
	if errors.As(err, &e) {
		e.Detail = strings.ReplaceAll(e.Detail, token, "[token]")
		for i := range e.Fields {
			e.Fields[i].Message = strings.ReplaceAll(e.Fields[i].Message, token, "[token]")
			e.Fields[i].Field = strings.ReplaceAll(e.Fields[i].Field, token, "[token]")
		}
	}
	if !strings.Contains(err.Error(), token) {
		return err
	}
	return &redactedError{msg: strings.ReplaceAll(err.Error(), token, "[token]"), err: err}
}

const minRedact = 8

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
