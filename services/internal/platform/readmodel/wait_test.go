package readmodel_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/services/internal/platform/readmodel"
)

// TestAwait covers how a wait ends: at once when the version is there, on
// the local projection's wake-up, by polling (another replica projected),
// on the timeout and on ctx.
func TestAwait(t *testing.T) {
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		// setup moves the read model to version 3 (or not) while the wait
		// runs; it gets the waiter and the version cell.
		setup func(w *readmodel.Waiter, v *atomic.Uint64)
		ctx   func() (context.Context, context.CancelFunc)
		want  uint64 // the version when Await returned, at least
		min   time.Duration
		max   time.Duration
	}{
		{name: "already projected", timeout: time.Minute,
			setup: func(_ *readmodel.Waiter, v *atomic.Uint64) { v.Store(5) }, want: 5, max: 5 * time.Second},
		{name: "woken by the local projection", timeout: time.Minute,
			setup: func(w *readmodel.Waiter, v *atomic.Uint64) {
				go func() { v.Store(3); w.Projected() }()
			}, want: 3, max: 5 * time.Second},
		{name: "projected elsewhere, seen by polling", timeout: time.Minute,
			setup: func(_ *readmodel.Waiter, v *atomic.Uint64) {
				time.AfterFunc(2*readmodel.PollInterval, func() { v.Store(3) })
			}, want: 3, max: 5 * time.Second},
		{name: "times out", timeout: 100 * time.Millisecond,
			setup: func(*readmodel.Waiter, *atomic.Uint64) {}, min: 100 * time.Millisecond, max: 5 * time.Second},
		{name: "ctx ends", timeout: time.Minute,
			setup: func(*readmodel.Waiter, *atomic.Uint64) {},
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 100*time.Millisecond)
			},
			min: 100 * time.Millisecond, max: 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := readmodel.NewWaiter(tc.timeout, nil)
			var v atomic.Uint64
			ctx, cancel := context.WithCancel(context.Background())
			if tc.ctx != nil {
				ctx, cancel = tc.ctx()
			}
			defer cancel()
			start := time.Now()
			tc.setup(w, &v)
			w.Await(ctx, "thing", "t1", 3, func(context.Context) (uint64, error) { return v.Load(), nil })
			if got := v.Load(); got < tc.want {
				t.Fatalf("Await returned at version %d, want %d", got, tc.want)
			}
			if d := time.Since(start); d < tc.min || d > tc.max {
				t.Fatalf("Await took %s", d)
			}
		})
	}
}
