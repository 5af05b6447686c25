// Package harness is what every load scenario shares: open-loop load
// generation, latency recording in HDR histograms, live progress, and the
// result (JSON, a table with each figure beside its baseline, PNG plots).
//
// Honesty rules the package enforces: the load is open-loop (operations are
// scheduled at the target rate whatever the system's speed, and a latency is
// measured from the operation's scheduled time, so a stall shows up in the
// percentiles instead of silently lowering the rate — no coordinated
// omission); every figure is measured (never computed from a configured
// rate); every error is counted and reported by kind.
package harness

import (
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds from 1 µs to 5 minutes with three
// significant digits.
const (
	minLatencyUS = 1
	maxLatencyUS = int64(5 * time.Minute / time.Microsecond)
	sigFigs      = 3
)

// Recorder counts operations (or items such as log lines), their errors by
// kind and their latencies, and keeps a per-second series of completions.
// It is safe for concurrent use.
type Recorder struct {
	name  string
	start time.Time

	mu      sync.Mutex
	hist    *hdrhistogram.Histogram
	ok      int64
	errs    map[string]int64
	nerrs   int64
	items   int64
	perSec  []int64 // completions (ok operations or items) per second since start
	over    int64   // latencies above maxLatencyUS (recorded as the max)
	lastErr string
}

// NewRecorder returns an empty recorder; start is the time series' origin.
func NewRecorder(name string, start time.Time) *Recorder {
	return &Recorder{name: name, start: start, hist: hdrhistogram.New(minLatencyUS, maxLatencyUS, sigFigs), errs: map[string]int64{}}
}

// Name is the recorder's name.
func (r *Recorder) Name() string { return r.name }

// Observe records one completed operation: its latency and its error (nil
// for success). Errors are grouped by ErrorKind.
func (r *Recorder) Observe(now time.Time, latency time.Duration, err error) {
	us := latency.Microseconds()
	if us < minLatencyUS {
		us = minLatencyUS
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		kind := ErrorKind(err)
		r.errs[kind]++
		r.nerrs++
		r.lastErr = err.Error()
		return
	}
	if us > maxLatencyUS {
		us = maxLatencyUS
		r.over++
	}
	_ = r.hist.RecordValue(us)
	r.ok++
	r.bump(now, 1)
}

// Items records n items completed at now without a latency (lines stored,
// entries chained): the throughput series counts them.
func (r *Recorder) Items(now time.Time, n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.items += n
	r.bump(now, n)
}

// Error records a failure that is not tied to one timed operation.
func (r *Recorder) Error(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs[ErrorKind(err)]++
	r.nerrs++
	r.lastErr = err.Error()
}

// LatencyOnly records a latency sample that is not itself a completion
// (publish→queryable delays sampled from a stream of items).
func (r *Recorder) LatencyOnly(latency time.Duration) {
	us := latency.Microseconds()
	if us < minLatencyUS {
		us = minLatencyUS
	}
	if us > maxLatencyUS {
		us = maxLatencyUS
	}
	r.mu.Lock()
	_ = r.hist.RecordValue(us)
	r.mu.Unlock()
}

func (r *Recorder) bump(now time.Time, n int64) {
	sec := int(now.Sub(r.start) / time.Second)
	if sec < 0 {
		sec = 0
	}
	for len(r.perSec) <= sec {
		r.perSec = append(r.perSec, 0)
	}
	r.perSec[sec] += n
}

// Stats is a snapshot of a recorder.
type Stats struct {
	Name   string           `json:"name"`
	OK     int64            `json:"ok"`
	Items  int64            `json:"items,omitempty"`
	Errors int64            `json:"errors"`
	ByKind map[string]int64 `json:"errors_by_kind,omitempty"`
	// LastError is the text of the latest error, for the operator.
	LastError string `json:"last_error,omitempty"`
	// Latency percentiles in milliseconds (zero without samples).
	Samples int64   `json:"samples"`
	P50     float64 `json:"p50_ms"`
	P95     float64 `json:"p95_ms"`
	P99     float64 `json:"p99_ms"`
	P999    float64 `json:"p999_ms"`
	Max     float64 `json:"max_ms"`
	Mean    float64 `json:"mean_ms"`
	// Overflow counts latencies beyond the histogram's range (5 min).
	Overflow int64 `json:"overflow,omitempty"`
	// PerSecond is completions per second since the start.
	PerSecond []int64 `json:"per_second"`
	// Percentiles is the latency distribution (percentile → ms) for plots.
	Percentiles []Percentile `json:"percentiles,omitempty"`
}

// Percentile is one point of a latency distribution.
type Percentile struct {
	Quantile float64 `json:"q"`
	MS       float64 `json:"ms"`
}

// Snapshot returns the recorder's current figures.
func (r *Recorder) Snapshot() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	ms := func(us int64) float64 { return float64(us) / 1000 }
	s := Stats{Name: r.name, OK: r.ok, Items: r.items, Errors: r.nerrs, LastError: r.lastErr, Samples: r.hist.TotalCount(),
		Overflow: r.over, PerSecond: append([]int64(nil), r.perSec...)}
	if len(r.errs) > 0 {
		s.ByKind = make(map[string]int64, len(r.errs))
		for k, v := range r.errs {
			s.ByKind[k] = v
		}
	}
	if s.Samples > 0 {
		s.P50, s.P95, s.P99 = ms(r.hist.ValueAtQuantile(50)), ms(r.hist.ValueAtQuantile(95)), ms(r.hist.ValueAtQuantile(99))
		s.P999, s.Max, s.Mean = ms(r.hist.ValueAtQuantile(99.9)), ms(r.hist.Max()), r.hist.Mean()/1000
		for _, q := range []float64{0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100} {
			v := r.hist.ValueAtQuantile(q)
			if q == 0 {
				v = r.hist.Min() // ValueAtQuantile(0) answers 0
			}
			s.Percentiles = append(s.Percentiles, Percentile{Quantile: q, MS: ms(v)})
		}
	}
	return s
}

// Rate is the completions per second over the whole run so far, measured
// from the recorder's series: total completions divided by the seconds
// elapsed between start and now.
func (s Stats) Rate(elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	n := s.OK + s.Items
	return float64(n) / elapsed.Seconds()
}

// Kinded lets an error choose the kind it is counted under.
type Kinded interface{ Kind() string }

// ErrorKind groups errors for the report: the Kind of a Kinded error,
// "timeout" for deadline errors, "backlog" for ErrBacklog, else "error".
func ErrorKind(err error) string {
	var k Kinded
	switch {
	case errors.As(err, &k):
		return k.Kind()
	case errors.Is(err, ErrBacklog):
		return "backlog"
	case errors.Is(err, errDeadline()):
		return "timeout"
	}
	return "error"
}

// SortedKinds lists error kinds by count, largest first.
func SortedKinds(m map[string]int64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return m[out[i]] > m[out[j]] || (m[out[i]] == m[out[j]] && out[i] < out[j]) })
	return out
}
