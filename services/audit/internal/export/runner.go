package export

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/infrapilot/infrapilot/events"
)

// Config configures a Runner.
type Config struct {
	// Dir holds the jobs and their files: <Dir>/<org>/<id>.json and the
	// export beside it. Required. Jobs run on the instance that created
	// them; a restart on the same Dir resumes unfinished ones.
	Dir string
	// Workers is how many exports run at once (default 2).
	Workers int
	// MaxActivePerOrg caps an org's queued and running jobs (default 3),
	// so one tenant cannot fill the queue; more answers rate_limited.
	MaxActivePerOrg int
	// Options tune the CEF and syslog renderings.
	Options Options
	// Keep is how long a finished job and its file are kept (default 7
	// days); Run deletes older ones every hour.
	Keep time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Log receives job failures (slog.Default when nil).
	Log *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Workers <= 0 {
		c.Workers = 2
	}
	if c.MaxActivePerOrg <= 0 {
		c.MaxActivePerOrg = 3
	}
	if c.Keep <= 0 {
		c.Keep = 7 * 24 * time.Hour
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
}

// Runner runs export jobs in the background. Create queues a job and
// returns at once; Run's workers stream the entries of the job's range
// from the Source through the format's encoder into a file, one entry at a
// time, so an export never sits in memory. Every lookup is by org and id:
// a job of another org answers not_found, exactly like a missing one.
type Runner struct {
	cfg   Config
	src   Source
	queue chan string // org/id keys; the job itself is in jobs

	mu   sync.Mutex
	jobs map[string]*Job // key org + "/" + id: jobs known to this instance
}

// NewRunner checks cfg, creates the directory and loads the jobs already
// in it: queued ones, and running ones interrupted by a crash or a stop,
// are queued again (their partial file is rewritten from the start). It
// starts nothing; Run does.
func NewRunner(cfg Config, src Source) (*Runner, error) {
	cfg.setDefaults()
	if cfg.Dir == "" {
		return nil, errors.New("export: Config.Dir is required")
	}
	if src == nil {
		return nil, errors.New("export: nil Source")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, err
	}
	r := &Runner{cfg: cfg, src: src, jobs: map[string]*Job{}}
	all, err := r.loadAll()
	if err != nil {
		return nil, err
	}
	slices.SortFunc(all, func(a, b Job) int { return a.CreatedAt.Compare(b.CreatedAt) })
	var pending []string
	for i := range all {
		j := all[i]
		if j.Status == JobQueued || j.Status == JobRunning {
			j.Status, j.StartedAt, j.Rows, j.Bytes = JobQueued, nil, 0, 0
			pending = append(pending, key(j.OrgID, j.ID))
		}
		r.jobs[key(j.OrgID, j.ID)] = &j
	}
	// The queue holds every pending job: at most MaxActivePerOrg per org is
	// admitted, but the number of orgs is open, so size it generously and
	// refuse (unavailable) rather than block when it is full.
	r.queue = make(chan string, max(1024, 2*len(pending)))
	for _, k := range pending {
		r.queue <- k
	}
	return r, nil
}

func key(org, id string) string { return org + "/" + id }

// Create validates req and queues an export job for org.
func (r *Runner) Create(ctx context.Context, org string, req Request, requestedBy string) (Job, error) {
	if !events.ValidToken(org) {
		return Job{}, events.Invalid("invalid org id")
	}
	if err := req.Validate(); err != nil {
		return Job{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Job{}, err
	}
	j := Job{
		ID: id.String(), OrgID: org, Format: req.Format, From: req.From.UTC(), To: req.To.UTC(),
		Status: JobQueued, RequestedBy: requestedBy, CreatedAt: r.cfg.Now().UTC(),
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	active := 0
	for _, o := range r.jobs {
		if o.OrgID == org && (o.Status == JobQueued || o.Status == JobRunning) {
			active++
		}
	}
	if active >= r.cfg.MaxActivePerOrg {
		e := events.Errorf(events.CodeRateLimited, "%d exports are already queued or running; wait for one to finish", active)
		e.RetryAfter = 10
		return Job{}, e
	}
	if err := r.saveJob(j); err != nil {
		return Job{}, err
	}
	select {
	case r.queue <- key(org, j.ID):
	default:
		_ = os.Remove(r.files(org, j.ID, j.Format).meta)
		return Job{}, events.Errorf(events.CodeUnavailable, "the export queue is full; try again later")
	}
	r.jobs[key(org, j.ID)] = &j
	return j, nil
}

// Get returns org's job id. A job of another org is not found.
func (r *Runner) Get(_ context.Context, org, id string) (Job, error) {
	if !validIDs(org, id) {
		return Job{}, errNoJob()
	}
	r.mu.Lock()
	j, ok := r.jobs[key(org, id)]
	var out Job
	if ok {
		out = *j
	}
	r.mu.Unlock()
	if ok {
		return out, nil
	}
	// Not started here: another instance sharing the directory may own it.
	return r.loadJob(org, id)
}

// List returns org's jobs known to this instance, newest first.
func (r *Runner) List(_ context.Context, org string) ([]Job, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []Job{}
	for _, j := range r.jobs {
		if j.OrgID == org {
			out = append(out, *j)
		}
	}
	slices.SortFunc(out, func(a, b Job) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out, nil
}

// Open returns the export file of org's finished job id, to be streamed
// to the client and closed. A job that is not done yet is a conflict.
func (r *Runner) Open(ctx context.Context, org, id string) (io.ReadCloser, Job, error) {
	j, err := r.Get(ctx, org, id)
	if err != nil {
		return nil, Job{}, err
	}
	if j.Status != JobDone {
		return nil, j, events.Errorf(events.CodeConflict, "export %s is %s, not done", id, j.Status)
	}
	f, err := os.Open(r.files(org, id, j.Format).data)
	if err != nil {
		return nil, j, err
	}
	return f, j, nil
}

// Run runs the queued jobs on Config.Workers workers until ctx ends. A job
// cut off by the end of ctx stays "running" on disk and is queued again
// by the next NewRunner on the same directory.
func (r *Runner) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range r.cfg.Workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case k := <-r.queue:
					r.runJob(ctx, k)
				}
			}
		})
	}
	wg.Go(func() {
		t := time.NewTicker(time.Hour)
		defer t.Stop()
		for {
			r.Prune()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	wg.Wait()
	return nil
}

// Prune deletes the finished jobs older than Config.Keep and their files.
func (r *Runner) Prune() {
	cutoff := r.cfg.Now().Add(-r.cfg.Keep)
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, j := range r.jobs {
		if j.FinishedAt == nil || j.FinishedAt.After(cutoff) {
			continue
		}
		files := r.files(j.OrgID, j.ID, j.Format)
		_ = os.Remove(files.data)
		if err := os.Remove(files.meta); err == nil || os.IsNotExist(err) {
			delete(r.jobs, k)
		}
	}
}

// update changes the job in memory under the lock and returns a copy.
func (r *Runner) update(k string, fn func(*Job)) Job {
	r.mu.Lock()
	defer r.mu.Unlock()
	j := r.jobs[k]
	fn(j)
	return *j
}

func (r *Runner) runJob(ctx context.Context, k string) {
	now := r.cfg.Now().UTC()
	j := r.update(k, func(j *Job) { j.Status, j.StartedAt, j.Rows, j.Bytes = JobRunning, &now, 0, 0 })
	log := r.cfg.Log.With("org_id", j.OrgID, "export_id", j.ID, "format", j.Format)
	if err := r.saveJob(j); err != nil {
		log.Error("export: save job", "err", err)
	}
	err := r.write(ctx, k, j)
	if ctx.Err() != nil {
		return // interrupted: resumed by the next start
	}
	end := r.cfg.Now().UTC()
	j = r.update(k, func(j *Job) {
		j.FinishedAt = &end
		if err != nil {
			j.Status, j.Error = JobFailed, events.AsError(err).Message
		} else {
			j.Status = JobDone
		}
	})
	if err != nil {
		log.Error("export failed", "err", err)
	}
	if err := r.saveJob(j); err != nil {
		log.Error("export: save job", "err", err)
	}
}

// progressEvery is how many rows pass between two progress updates.
const progressEvery = 256

// write streams the job's entries into its .part file and renames it into
// place once complete and synced, so a done job's file is always whole.
func (r *Runner) write(ctx context.Context, k string, j Job) (err error) {
	files := r.files(j.OrgID, j.ID, j.Format)
	f, err := os.OpenFile(files.part, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if f != nil {
			_ = f.Close()
			_ = os.Remove(files.part)
		}
	}()
	cw := &countingWriter{w: f}
	bw := bufio.NewWriterSize(cw, 64<<10)
	enc, err := NewEncoder(j.Format, bw, r.cfg.Options)
	if err != nil {
		return err
	}
	var rows uint64
	for e, err := range r.src.Entries(ctx, j.OrgID, j.From, j.To) {
		if err != nil {
			return err
		}
		if err := enc.Encode(e); err != nil {
			return err
		}
		rows++
		if rows%progressEvery == 0 {
			n := cw.n
			r.update(k, func(j *Job) { j.Rows, j.Bytes = rows, n })
		}
	}
	if err := enc.Flush(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		f = nil
		_ = os.Remove(files.part)
		return err
	}
	f = nil
	if err := os.Rename(files.part, files.data); err != nil {
		return err
	}
	n := cw.n
	r.update(k, func(j *Job) { j.Rows, j.Bytes = rows, n })
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
