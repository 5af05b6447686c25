package harness

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"
)

// checkFor polls cond every millisecond until it holds (true) or d
// passes (false). It may run outside the test goroutine.
func checkFor(d time.Duration, cond func() bool) bool {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.After(d)
	for !cond() {
		select {
		case <-deadline:
			return false
		case <-tick.C:
		}
	}
	return true
}

// TestOpenLoopBacklog: when every operation blocks, the generator does not
// slow down to the system's pace; each operation due while MaxInFlight are
// pending is counted as a backlog error.
func TestOpenLoopBacklog(t *testing.T) {
	const inFlight, total = 10, 100
	rec := NewRecorder("ops", time.Now())
	release := make(chan struct{})
	go func() {
		if !checkFor(10*time.Second, func() bool { return rec.Snapshot().ByKind["backlog"] == total-inFlight }) {
			t.Errorf("no %d backlog errors within 10s", total-inFlight)
		}
		close(release)
	}()
	OpenLoop{Rate: 1000, Duration: 100 * time.Millisecond, MaxInFlight: inFlight}.Run(context.Background(), rec,
		func(ctx context.Context, _ int64) error {
			<-release
			return nil
		})
	s := rec.Snapshot()
	if s.OK != inFlight || s.Errors != total-inFlight || s.ByKind["backlog"] != total-inFlight {
		t.Fatalf("ok %d errors %d %v, want %d ok and %d backlog", s.OK, s.Errors, s.ByKind, inFlight, total-inFlight)
	}
}

// TestOpenLoopStallShowsInP99: a system that stalls for its first 100 ms
// and then answers at once delays every operation scheduled during the
// stall. Latency is measured from the scheduled time, so those delays are
// in the percentiles (a closed loop would have sent one request and seen
// one slow answer).
func TestOpenLoopStallShowsInP99(t *testing.T) {
	const stall = 100 * time.Millisecond
	rec := NewRecorder("ops", time.Now())
	gate := make(chan struct{})
	timer := time.AfterFunc(stall, func() { close(gate) })
	defer timer.Stop()
	OpenLoop{Rate: 1000, Duration: 500 * time.Millisecond}.Run(context.Background(), rec,
		func(ctx context.Context, _ int64) error {
			<-gate
			return nil
		})
	s := rec.Snapshot()
	if s.OK != 500 || s.Errors != 0 {
		t.Fatalf("ok %d errors %d, want 500 and 0", s.OK, s.Errors)
	}
	// Operations scheduled at t in [0, 100 ms) finish at 100 ms: the
	// slowest 20 % waited up to 100 ms, the rest hardly at all.
	if s.P99 < 0.8*float64(stall.Milliseconds()) || s.Max < 0.9*float64(stall.Milliseconds()) {
		t.Errorf("p99 %.1f ms, max %.1f ms: the stall is missing", s.P99, s.Max)
	}
	if s.P50 > 0.5*float64(stall.Milliseconds()) {
		t.Errorf("p50 %.1f ms: operations after the stall should be fast", s.P50)
	}
}

// TestOpenLoopTimeout: an operation past Timeout ends with a deadline
// error, counted as "timeout".
func TestOpenLoopTimeout(t *testing.T) {
	rec := NewRecorder("ops", time.Now())
	OpenLoop{Rate: 100, Duration: 50 * time.Millisecond, Timeout: 20 * time.Millisecond}.Run(context.Background(), rec,
		func(ctx context.Context, _ int64) error {
			<-ctx.Done()
			return ctx.Err()
		})
	s := rec.Snapshot()
	if s.OK != 0 || s.ByKind["timeout"] != 5 {
		t.Fatalf("ok %d, errors %v; want 5 timeouts", s.OK, s.ByKind)
	}
}

type kindErr string

func (k kindErr) Error() string { return string(k) }
func (k kindErr) Kind() string  { return string(k) }

func TestErrorKind(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{ErrBacklog, "backlog"},
		{fmt.Errorf("call: %w", context.DeadlineExceeded), "timeout"},
		{fmt.Errorf("wrapped: %w", kindErr("http_503")), "http_503"},
		{errors.New("connection refused"), "error"},
	} {
		if got := ErrorKind(tc.err); got != tc.want {
			t.Errorf("ErrorKind(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// TestPercentilesFromHDR: latencies 1 … 1000 ms give HDR percentiles
// within the histogram's three significant digits.
func TestPercentilesFromHDR(t *testing.T) {
	start := time.Now()
	rec := NewRecorder("ops", start)
	for i := 1; i <= 1000; i++ {
		rec.Observe(start, time.Duration(i)*time.Millisecond, nil)
	}
	rec.Observe(start, 0, errors.New("refused")) // errors carry no latency
	s := rec.Snapshot()
	for _, tc := range []struct {
		name      string
		got, want float64
	}{{"p50", s.P50, 500}, {"p95", s.P95, 950}, {"p99", s.P99, 990}, {"p99.9", s.P999, 999}, {"max", s.Max, 1000}, {"mean", s.Mean, 500.5}} {
		if math.Abs(tc.got-tc.want) > tc.want*0.002 {
			t.Errorf("%s = %.3f ms, want %.0f ± 0.2%%", tc.name, tc.got, tc.want)
		}
	}
	if s.Samples != 1000 || s.OK != 1000 || s.Errors != 1 || s.ByKind["error"] != 1 || s.LastError != "refused" {
		t.Errorf("counts: %+v", s)
	}
	if len(s.Percentiles) == 0 || s.Percentiles[len(s.Percentiles)-1].Quantile != 100 {
		t.Errorf("percentiles for plots: %v", s.Percentiles)
	}
}

// TestPerSecondSeries: completions and items land in the second they
// happened in, counted from the recorder's start.
func TestPerSecondSeries(t *testing.T) {
	start := time.Now()
	rec := NewRecorder("lines", start)
	rec.Items(start.Add(100*time.Millisecond), 500)
	rec.Items(start.Add(2500*time.Millisecond), 300)
	rec.Observe(start.Add(2900*time.Millisecond), time.Millisecond, nil)
	s := rec.Snapshot()
	want := []int64{500, 0, 301}
	if fmt.Sprint(s.PerSecond) != fmt.Sprint(want) {
		t.Fatalf("per second %v, want %v", s.PerSecond, want)
	}
	if got := s.Rate(4 * time.Second); got != 801.0/4 {
		t.Errorf("rate %v, want %v", got, 801.0/4)
	}
}
