package export

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"
	"github.com/infrapilot/infrapilot/events"
)

// JobStatus is the state of an export job.
type JobStatus string

// The states of an export job: queued → running → done | failed.
const (
	JobQueued  JobStatus = "queued"
	JobRunning JobStatus = "running"
	JobDone    JobStatus = "done"
	JobFailed  JobStatus = "failed"
)

// Request asks for an export of the entries whose time lies in [From, To).
type Request struct {
	Format Format    `json:"format"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
}

// Validate checks the request and returns an invalid-input error naming
// each bad field.
func (r Request) Validate() error {
	var fields []events.FieldError
	if !r.Format.Valid() {
		fields = append(fields, events.FieldError{Field: "format", Message: "must be one of csv, jsonl, cef, syslog"})
	}
	if r.From.IsZero() {
		fields = append(fields, events.FieldError{Field: "from", Message: "is required"})
	}
	if r.To.IsZero() {
		fields = append(fields, events.FieldError{Field: "to", Message: "is required"})
	} else if !r.To.After(r.From) {
		fields = append(fields, events.FieldError{Field: "to", Message: "must be after from"})
	}
	if len(fields) > 0 {
		return events.Invalid("invalid export request").WithFields(fields...)
	}
	return nil
}

// Job is an export job as the API shows it. Rows and Bytes grow while the
// job runs.
type Job struct {
	ID          string     `json:"id"`
	OrgID       string     `json:"org_id"`
	Format      Format     `json:"format"`
	From        time.Time  `json:"from"`
	To          time.Time  `json:"to"`
	Status      JobStatus  `json:"status"`
	Rows        uint64     `json:"rows"`
	Bytes       int64      `json:"bytes"`
	Error       string     `json:"error,omitempty"`
	RequestedBy string     `json:"requested_by,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
}

// FileName is the name a download of the job is offered under.
func (j Job) FileName() string {
	return fmt.Sprintf("audit-%s-%s.%s", j.OrgID, j.ID, j.Format.Ext())
}

// jobFiles are the paths of one job under the runner's directory:
// <dir>/<org>/<id>.json (the job), <id>.<ext>.part while it is written and
// <id>.<ext> once done. Org and id are checked (subject token, UUID)
// before a path is built, so no request can reach outside the directory.
type jobFiles struct{ meta, part, data string }

func (r *Runner) files(org, id string, f Format) jobFiles {
	base := filepath.Join(r.cfg.Dir, org, id)
	return jobFiles{meta: base + ".json", part: base + "." + f.Ext() + ".part", data: base + "." + f.Ext()}
}

func validIDs(org, id string) bool {
	if !events.ValidToken(org) {
		return false
	}
	u, err := uuid.Parse(id)
	return err == nil && u.String() == id
}

// saveJob writes the job's metadata atomically (temp file + rename), so a
// crash leaves the previous or the new version, never a torn one.
func (r *Runner) saveJob(j Job) error {
	p := r.files(j.OrgID, j.ID, j.Format).meta
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	raw, err := json.Marshal(j)
	if err != nil {
		return err
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

func (r *Runner) loadJob(org, id string) (Job, error) {
	raw, err := os.ReadFile(filepath.Join(r.cfg.Dir, org, id+".json"))
	if errors.Is(err, fs.ErrNotExist) {
		return Job{}, errNoJob()
	}
	if err != nil {
		return Job{}, err
	}
	var j Job
	if err := json.Unmarshal(raw, &j); err != nil {
		return Job{}, fmt.Errorf("export: job %s: %w", id, err)
	}
	if j.OrgID != org || j.ID != id {
		return Job{}, errNoJob()
	}
	return j, nil
}

// loadAll reads every job under the directory.
func (r *Runner) loadAll() ([]Job, error) {
	orgs, err := os.ReadDir(r.cfg.Dir)
	if err != nil {
		return nil, err
	}
	var out []Job
	for _, o := range orgs {
		if !o.IsDir() || !events.ValidToken(o.Name()) {
			continue
		}
		ids, err := filepath.Glob(filepath.Join(r.cfg.Dir, o.Name(), "*.json"))
		if err != nil {
			return nil, err
		}
		for _, p := range ids {
			id := filepath.Base(p[:len(p)-len(".json")])
			if !validIDs(o.Name(), id) {
				continue
			}
			j, err := r.loadJob(o.Name(), id)
			if err != nil {
				r.cfg.Log.Warn("export: unreadable job skipped", "path", p, "err", err)
				continue
			}
			out = append(out, j)
		}
	}
	return out, nil
}

func errNoJob() error { return events.NotFound("export job not found") }
