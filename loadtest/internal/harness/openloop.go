package harness

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrBacklog counts an operation that was due but could not start because
// MaxInFlight operations were still running: the system under test fell
// behind the offered load. It is an error, not a slower rate.
var ErrBacklog = errors.New("backlog: too many operations in flight")

func errDeadline() error { return context.DeadlineExceeded }

// OpenLoop is an open-loop load: Rate operations per second for Duration,
// each started at its scheduled time whatever happened to earlier ones.
type OpenLoop struct {
	Rate     float64
	Duration time.Duration
	// MaxInFlight bounds concurrent operations (default 4096); a due
	// operation beyond it is recorded as ErrBacklog.
	MaxInFlight int
	// Timeout bounds one operation (default 10 s).
	Timeout time.Duration
}

// Run runs op at the scheduled times and records each into rec, its
// latency measured from its scheduled start (so time spent waiting to be
// started, if the generator itself lags, is counted too). i is the
// operation's index. Run returns when every started operation finished.
func (l OpenLoop) Run(ctx context.Context, rec *Recorder, op func(ctx context.Context, i int64) error) {
	if l.Rate <= 0 || l.Duration <= 0 {
		return
	}
	if l.MaxInFlight <= 0 {
		l.MaxInFlight = 4096
	}
	if l.Timeout <= 0 {
		l.Timeout = 10 * time.Second
	}
	interval := time.Duration(float64(time.Second) / l.Rate)
	total := int64(l.Rate * l.Duration.Seconds())
	sem := make(chan struct{}, l.MaxInFlight)
	var wg sync.WaitGroup
	start := time.Now()
	for i := int64(0); i < total; i++ {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			// Sleeping until the next due time is the generator's pacing,
			// not a wait for an effect.
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				wg.Wait()
				return
			case <-t.C:
			}
		} else if ctx.Err() != nil {
			break
		}
		select {
		case sem <- struct{}{}:
		default:
			rec.Observe(time.Now(), 0, ErrBacklog)
			continue
		}
		wg.Add(1)
		go func(i int64, due time.Time) {
			defer wg.Done()
			defer func() { <-sem }()
			octx, cancel := context.WithTimeout(ctx, l.Timeout)
			err := op(octx, i)
			cancel()
			now := time.Now()
			rec.Observe(now, now.Sub(due), err)
		}(i, due)
	}
	wg.Wait()
}
