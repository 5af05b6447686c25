package harness

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

// Progress prints one line per interval while ctx lives: elapsed time, and
// for each recorder its completions per second over the last interval, its
// errors so far and its p99. Long runs thus show they are alive and how
// they are going.
func Progress(ctx context.Context, w io.Writer, scenario string, interval time.Duration, recs ...*Recorder) {
	if interval <= 0 {
		interval = time.Second
	}
	start := time.Now()
	last := make([]int64, len(recs))
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var b strings.Builder
		fmt.Fprintf(&b, "[%s] %6.1fs", scenario, time.Since(start).Seconds())
		for i, r := range recs {
			s := r.Snapshot()
			done := s.OK + s.Items
			rate := float64(done-last[i]) / interval.Seconds()
			last[i] = done
			fmt.Fprintf(&b, " | %s %s/s err %d", s.Name, FormatValue(rate), s.Errors)
			if s.Samples > 0 {
				fmt.Fprintf(&b, " p99 %.1fms", s.P99)
			}
		}
		fmt.Fprintln(w, b.String())
	}
}
