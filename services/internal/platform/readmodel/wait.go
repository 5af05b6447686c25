package readmodel

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// PollInterval is how often a waiter looks at the read model when no local
// write wakes it: the projection may run on another replica.
const PollInterval = 25 * time.Millisecond

// Waiter gives commands read-your-writes: a command that appended an event
// waits until the read model holds its version. The local projection wakes
// waiters at once after each write (Projected); a write by another
// replica's projection is seen by polling.
type Waiter struct {
	timeout time.Duration
	log     *slog.Logger

	mu sync.Mutex
	ch chan struct{} // closed and replaced by Projected
}

// NewWaiter returns a waiter whose waits last at most timeout; a wait that
// runs out is logged on log.
func NewWaiter(timeout time.Duration, log *slog.Logger) *Waiter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Waiter{timeout: timeout, log: log, ch: make(chan struct{})}
}

// Projected wakes every current waiter: the local projection has written.
func (w *Waiter) Projected() {
	w.mu.Lock()
	defer w.mu.Unlock()
	close(w.ch)
	w.ch = make(chan struct{})
}

func (w *Waiter) woken() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ch
}

// Await returns once current reports version (or a newer one) of the
// aggregate aggType/id, after the waiter's timeout, or when ctx ends. The
// change itself is stored either way, so running out of time is logged and
// not an error: the command's reply is still the truth, only a read that
// follows at once may not see it yet.
func (w *Waiter) Await(ctx context.Context, aggType, id string, version uint64, current func(context.Context) (uint64, error)) {
	deadline := time.NewTimer(w.timeout)
	defer deadline.Stop()
	for {
		// Taken before reading, so a write between the read and the
		// select still wakes this round.
		woken := w.woken()
		v, err := current(ctx)
		if err == nil && v >= version {
			return
		}
		tick := time.NewTimer(PollInterval)
		select {
		case <-woken:
		case <-tick.C:
		case <-deadline.C:
			tick.Stop()
			w.log.Warn("read model did not catch up in time", "aggregate", aggType, "id", id, "version", version, "err", err)
			return
		case <-ctx.Done():
			tick.Stop()
			return
		}
		tick.Stop()
	}
}
