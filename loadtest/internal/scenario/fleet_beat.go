package scenario

import (
	"container/heap"
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/loadtest/internal/harness"
	"github.com/infrapilot/infrapilot/loadtest/internal/simagent"
	"github.com/infrapilot/infrapilot/loadtest/internal/target"
	"github.com/nats-io/nats.go"
)

// The fleet's telemetry: every agent sends a heartbeat and a metrics
// sample every interval (the sample half an interval after the beat), at
// a random phase, so the load is spread evenly as in a real fleet. A few
// scheduler goroutines share the agents (a heap of due times each): the
// fleet costs one connection and one reader goroutine per agent, nothing
// more. The schedule is open-loop: a send that is late is recorded with
// its lateness, never skipped.

// beatJob is one agent's next due send.
type beatJob struct {
	a       *simagent.Agent
	due     time.Time
	metrics bool // the metrics sample (else the heartbeat)
	stopped *atomic.Bool
}

type beatHeap []*beatJob

func (h beatHeap) Len() int           { return len(h) }
func (h beatHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h beatHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *beatHeap) Push(x any)        { *h = append(*h, x.(*beatJob)) }
func (h *beatHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// beater sends the fleet's telemetry.
type beater struct {
	interval time.Duration
	// heartbeats records each heartbeat with its lateness against the
	// schedule; metrics each sample's PubAck latency from its due time.
	heartbeats, metrics *harness.Recorder
	stopped             map[string]*atomic.Bool
	wg                  sync.WaitGroup
}

// startBeater starts workers scheduler goroutines over agents until ctx
// ends.
func startBeater(ctx context.Context, agents []*simagent.Agent, interval time.Duration, workers int, hb, ms *harness.Recorder) *beater {
	b := &beater{interval: interval, heartbeats: hb, metrics: ms, stopped: map[string]*atomic.Bool{}}
	heaps := make([]beatHeap, max(workers, 1))
	now := time.Now()
	for i, a := range agents {
		st := &atomic.Bool{}
		b.stopped[a.AgentID] = st
		phase := time.Duration(rand.Int64N(int64(interval)))
		w := i % len(heaps)
		heaps[w] = append(heaps[w], &beatJob{a: a, due: now.Add(phase), stopped: st},
			&beatJob{a: a, due: now.Add(phase + interval/2), metrics: true, stopped: st})
	}
	for i := range heaps {
		heap.Init(&heaps[i])
		b.wg.Add(1)
		go func(h *beatHeap) {
			defer b.wg.Done()
			b.run(ctx, h)
		}(&heaps[i])
	}
	return b
}

// stop makes agent id stop sending (its connection is closed by the
// caller): from then on it is silent, as a machine that went away.
func (b *beater) stop(id string) {
	if st := b.stopped[id]; st != nil {
		st.Store(true)
	}
}

// wait waits for the schedulers to end (after ctx).
func (b *beater) wait() { b.wg.Wait() }

func (b *beater) run(ctx context.Context, h *beatHeap) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for h.Len() > 0 {
		j := (*h)[0]
		if d := time.Until(j.due); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		if ctx.Err() != nil {
			return
		}
		heap.Pop(h)
		if j.stopped.Load() {
			continue
		}
		due := j.due
		// An agent stopped while its send was under way fails with
		// ErrClosed: that is the stop, not an error of the hub.
		stoppedNow := func(err error) bool { return errors.Is(err, simagent.ErrClosed) && j.stopped.Load() }
		if j.metrics {
			j.a.Metrics(time.Now(), func(_ simagent.PubAck, err error) {
				if !stoppedNow(err) {
					now := time.Now()
					b.metrics.Observe(now, now.Sub(due), err)
				}
			})
		} else if err := j.a.Heartbeat(time.Now()); !stoppedNow(err) {
			now := time.Now()
			b.heartbeats.Observe(now, now.Sub(due), err)
		}
		j.due = due.Add(b.interval)
		heap.Push(h, j)
	}
}

// hubObserver counts, through a service connection, the heartbeats and
// metrics of the run's agents that reach the hub's APP account, where
// the tenancy service receives them: what the hub delivered, not what the
// agents sent.
type hubObserver struct {
	nc                  *nats.Conn
	subs                []*nats.Subscription
	heartbeats, metrics *harness.Recorder
	seen                sync.Map // agent id → struct{}
	ours                map[string]bool
}

func observeHub(ctx context.Context, t *target.Target, org string, agents []*simagent.Agent, hb, ms *harness.Recorder) (*hubObserver, error) {
	nc, err := t.NATS(ctx)
	if err != nil {
		return nil, err
	}
	o := &hubObserver{nc: nc, heartbeats: hb, metrics: ms, ours: map[string]bool{}}
	for _, a := range agents {
		o.ours[a.AgentID] = true
	}
	for _, s := range []struct {
		subject string
		rec     *harness.Recorder
	}{{events.AgentHeartbeat(org, "*"), hb}, {events.AgentMetrics(org, "*"), ms}} {
		rec := s.rec
		sub, err := nc.Subscribe(s.subject, func(m *nats.Msg) {
			parts := strings.Split(m.Subject, ".")
			if len(parts) == 4 && o.ours[parts[2]] {
				rec.Items(time.Now(), 1)
				o.seen.Store(parts[2], struct{}{})
			}
		})
		if err != nil {
			nc.Close()
			return nil, err
		}
		_ = sub.SetPendingLimits(-1, 256<<20)
		o.subs = append(o.subs, sub)
	}
	if err := nc.Flush(); err != nil {
		nc.Close()
		return nil, err
	}
	return o, nil
}

// distinct is how many of the run's agents the hub heard from.
func (o *hubObserver) distinct() int {
	n := 0
	o.seen.Range(func(_, _ any) bool { n++; return true })
	return n
}

// dropped is how many messages the observer's own subscriptions dropped
// (a slow consumer here, not a loss in the hub).
func (o *hubObserver) dropped() int64 {
	var n int64
	for _, s := range o.subs {
		if d, err := s.Dropped(); err == nil {
			n += int64(d)
		}
	}
	return n
}

func (o *hubObserver) close() { o.nc.Close() }
