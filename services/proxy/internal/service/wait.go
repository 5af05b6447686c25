package service

import (
	"context"
	"sync"
	"time"
)

// signal wakes every waiter when the local projection has written.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

func newSignal() *signal { return &signal{ch: make(chan struct{})} }

func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

func (s *signal) broadcast() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.ch)
	s.ch = make(chan struct{})
}

// pollInterval is how often a waiter looks at the read model when no local
// write wakes it: the projection may run on another replica.
const pollInterval = 25 * time.Millisecond

// await gives read-your-writes: it returns once the read model holds
// version (or a newer one) of the aggregate, or after the configured wait.
// The change itself is stored either way, so running out of time is logged
// and not an error: the reply is still the truth, only a read that follows
// at once may not see it yet.
func (s *Service) await(ctx context.Context, orgID, aggType, id string, version uint64) {
	deadline := time.NewTimer(s.cfg.ProjectionWait)
	defer deadline.Stop()
	for {
		woken := s.applied.wait()
		v, err := s.db.Version(ctx, orgID, aggType, id)
		if err == nil && v >= version {
			return
		}
		tick := time.NewTimer(pollInterval)
		select {
		case <-woken:
		case <-tick.C:
		case <-deadline.C:
			tick.Stop()
			s.log.Warn("read model did not catch up in time", "aggregate", aggType, "id", id, "version", version, "err", err)
			return
		case <-ctx.Done():
			tick.Stop()
			return
		}
		tick.Stop()
	}
}
