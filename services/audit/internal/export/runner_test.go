package export

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
)

// sliceSource serves entries from memory, filtered by org and [from, to).
// When gate is set, it blocks after yielding blockAfter entries until the
// gate is closed (to observe a job while it streams).
type sliceSource struct {
	entries    []events.AuditEntry
	err        error
	gate       chan struct{}
	blockAfter int
}

func (s *sliceSource) Entries(ctx context.Context, org string, from, to time.Time) iter.Seq2[events.AuditEntry, error] {
	return func(yield func(events.AuditEntry, error) bool) {
		n := 0
		for _, e := range s.entries {
			t, _ := time.Parse(time.RFC3339Nano, e.Time)
			if e.OrgID != org || t.Before(from) || !t.Before(to) {
				continue
			}
			if s.gate != nil && n == s.blockAfter {
				select {
				case <-s.gate:
				case <-ctx.Done():
					yield(events.AuditEntry{}, ctx.Err())
					return
				}
			}
			n++
			if !yield(e, nil) {
				return
			}
		}
		if s.err != nil {
			yield(events.AuditEntry{}, s.err)
		}
	}
}

func manyEntries(t testing.TB, org string, n int) []events.AuditEntry {
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	raw := make([]events.AuditEntry, n)
	for i := range raw {
		raw[i] = events.AuditEntry{
			EventID: fmt.Sprintf("evt-%d", i), Time: base.Add(time.Duration(i) * time.Minute).Format(time.RFC3339Nano),
			Actor:  events.Actor{Kind: events.ActorUser, ID: "usr_1", IP: "198.51.100.7", UserAgent: "ua"},
			Action: "tenancy.member.added", Resource: events.AuditResource{Type: "org", ID: org},
			Outcome: events.OutcomeSuccess, Details: []byte(`{"user_id":"usr_2","role":"viewer"}`),
		}
	}
	return chainOf(t, org, raw)
}

func startRunner(t *testing.T, dir string, src Source) (*Runner, context.CancelFunc) {
	t.Helper()
	r, err := NewRunner(Config{Dir: dir, Options: goldenOpts}, src)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return r, stop
}

func waitStatus(t *testing.T, r *Runner, org, id string, want JobStatus) Job {
	t.Helper()
	var j Job
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		var err error
		j, err = r.Get(context.Background(), org, id)
		if err != nil {
			return err
		}
		if j.Status != want {
			return fmt.Errorf("status %s (%s), want %s", j.Status, j.Error, want)
		}
		return nil
	})
	return j
}

var novRange = Request{From: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}

func TestRunnerExportsEveryFormat(t *testing.T) {
	t.Parallel()
	entries := append(manyEntries(t, "org_a", 1000), manyEntries(t, "org_b", 10)...)
	r, _ := startRunner(t, t.TempDir(), &sliceSource{entries: entries})
	ctx := context.Background()
	for _, f := range Formats {
		req := novRange
		req.Format = f
		// A range that cuts the chain: minutes 100..599.
		req.From = req.From.Add(100 * time.Minute)
		req.To = req.From.Add(500 * time.Minute)
		j, err := r.Create(ctx, "org_a", req, "usr_1")
		if err != nil {
			t.Fatal(err)
		}
		j = waitStatus(t, r, "org_a", j.ID, JobDone)
		if j.Rows != 500 || j.Bytes == 0 || j.FinishedAt == nil {
			t.Fatalf("%s: job %+v", f, j)
		}
		rc, _, err := r.Open(ctx, "org_a", j.ID)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if want := encodeAll(t, f, entries[100:600]); !bytes.Equal(got, want) {
			t.Fatalf("%s: file differs from the encoder's output", f)
		}
		if int64(len(got)) != j.Bytes {
			t.Fatalf("%s: bytes %d, file %d", f, j.Bytes, len(got))
		}
	}
}

func TestRunnerJobsArePerOrg(t *testing.T) {
	t.Parallel()
	r, _ := startRunner(t, t.TempDir(), &sliceSource{entries: manyEntries(t, "org_a", 5)})
	ctx := context.Background()
	req := novRange
	req.Format = FormatJSONL
	j, err := r.Create(ctx, "org_a", req, "")
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, r, "org_a", j.ID, JobDone)
	if _, err := r.Get(ctx, "org_b", j.ID); events.ErrorCode(err) != events.CodeNotFound {
		t.Fatalf("org_b got org_a's job: %v", err)
	}
	if _, _, err := r.Open(ctx, "org_b", j.ID); events.ErrorCode(err) != events.CodeNotFound {
		t.Fatalf("org_b opened org_a's file: %v", err)
	}
	if l, _ := r.List(ctx, "org_b"); len(l) != 0 {
		t.Fatalf("org_b lists %v", l)
	}
	if l, _ := r.List(ctx, "org_a"); len(l) != 1 || l[0].ID != j.ID {
		t.Fatalf("org_a lists %v", l)
	}
	for _, bad := range []struct{ org, id string }{{"../org_a", j.ID}, {"org_a", "../../etc/passwd"}, {"org_a", "x"}} {
		if _, err := r.Get(ctx, bad.org, bad.id); events.ErrorCode(err) != events.CodeNotFound {
			t.Fatalf("Get(%q, %q) = %v", bad.org, bad.id, err)
		}
	}
}

func TestRunnerValidation(t *testing.T) {
	t.Parallel()
	r, err := NewRunner(Config{Dir: t.TempDir(), MaxActivePerOrg: 2}, &sliceSource{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err = r.Create(ctx, "org_a", Request{Format: "pdf", To: novRange.From, From: novRange.To}, "")
	e := events.AsError(err)
	if e.Code != events.CodeInvalid || len(e.Fields) != 2 {
		t.Fatalf("err = %+v", e)
	}
	req := novRange
	req.Format = FormatCSV
	for range 2 { // the runner is not running: jobs stay queued
		if _, err := r.Create(ctx, "org_a", req, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Create(ctx, "org_a", req, ""); events.ErrorCode(err) != events.CodeRateLimited {
		t.Fatalf("third active export: %v", err)
	}
	if _, err := r.Create(ctx, "org_b", req, ""); err != nil {
		t.Fatalf("another org is not limited: %v", err)
	}
}

func TestRunnerStreamsAndReportsProgress(t *testing.T) {
	t.Parallel()
	src := &sliceSource{entries: manyEntries(t, "org_a", 3000), gate: make(chan struct{}), blockAfter: 2000}
	r, _ := startRunner(t, t.TempDir(), src)
	ctx := context.Background()
	req := novRange
	req.Format = FormatJSONL
	j, err := r.Create(ctx, "org_a", req, "")
	if err != nil {
		t.Fatal(err)
	}
	// While the source is held mid-range, the job is running, its rows are
	// counted and bytes are already on disk: the export is streamed.
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		j, _ = r.Get(ctx, "org_a", j.ID)
		if j.Status != JobRunning || j.Rows < 1792 || j.Bytes == 0 {
			return fmt.Errorf("job %+v", j)
		}
		return nil
	})
	part := filepath.Join(r.cfg.Dir, "org_a", j.ID+".jsonl.part")
	if st, err := os.Stat(part); err != nil || st.Size() == 0 {
		t.Fatalf("partial file: %v", err)
	}
	if _, _, err := r.Open(ctx, "org_a", j.ID); events.ErrorCode(err) != events.CodeConflict {
		t.Fatalf("download of a running export: %v", err)
	}
	close(src.gate)
	if j = waitStatus(t, r, "org_a", j.ID, JobDone); j.Rows != 3000 {
		t.Fatalf("rows = %d", j.Rows)
	}
	if _, err := os.Stat(part); !os.IsNotExist(err) {
		t.Fatalf("partial file left behind: %v", err)
	}
}

func TestRunnerFailureAndResume(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	req := novRange
	req.Format = FormatCEF

	// A failing source fails the job with a message that leaks nothing.
	r, _ := startRunner(t, dir, &sliceSource{entries: manyEntries(t, "org_a", 3), err: errors.New("pg: connection reset")})
	j, err := r.Create(ctx, "org_a", req, "")
	if err != nil {
		t.Fatal(err)
	}
	if j = waitStatus(t, r, "org_a", j.ID, JobFailed); j.Error != "internal error" {
		t.Fatalf("error = %q", j.Error)
	}
	if _, _, err := r.Open(ctx, "org_a", j.ID); events.ErrorCode(err) != events.CodeConflict {
		t.Fatalf("download of a failed export: %v", err)
	}

	// A job cut off by a stop is resumed by the next runner on the dir.
	src := &sliceSource{entries: manyEntries(t, "org_a", 600), gate: make(chan struct{}), blockAfter: 300}
	dir2 := t.TempDir()
	r, stop := startRunner(t, dir2, src)
	j, err = r.Create(ctx, "org_a", req, "")
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, r, "org_a", j.ID, JobRunning)
	stop()
	if got, _ := r.loadJob("org_a", j.ID); got.Status != JobRunning {
		t.Fatalf("on disk after stop: %+v", got)
	}
	r2, _ := startRunner(t, dir2, &sliceSource{entries: src.entries})
	if j = waitStatus(t, r2, "org_a", j.ID, JobDone); j.Rows != 600 {
		t.Fatalf("resumed job: %+v", j)
	}
	rc, _, err := r2.Open(ctx, "org_a", j.ID)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, encodeAll(t, FormatCEF, src.entries)) {
		t.Fatal("resumed export differs")
	}
}

func TestRunnerPrunesOldJobs(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	dir := t.TempDir()
	r, err := NewRunner(Config{Dir: dir, Keep: time.Hour, Now: clock}, &sliceSource{entries: manyEntries(t, "org_a", 2)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	req := novRange
	req.Format = FormatCSV
	j, _ := r.Create(ctx, "org_a", req, "")
	waitStatus(t, r, "org_a", j.ID, JobDone)
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	r.Prune()
	if _, err := r.Get(ctx, "org_a", j.ID); events.ErrorCode(err) != events.CodeNotFound {
		t.Fatalf("old job kept: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "org_a", "*")); len(left) != 0 {
		t.Fatalf("files left: %v", left)
	}
}
