package chain

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
)

// link is a position in a chain: an entry's index and hash and the stream
// sequence it is stored at.
type link struct {
	index uint64
	hash  string
	seq   uint64
}

// orgState is what the loop knows of one org's chain.
type orgState struct {
	org string
	// loaded: confirmed holds the chain's tail as of a read of the stream
	// or this writer's own acknowledgements; needLoad asks for a fresh read
	// once nothing of the org is in flight.
	loaded, needLoad bool
	confirmed        link
	// tip is the last entry published, acknowledged or not; it equals
	// confirmed when nothing is in flight.
	tip     link
	pending int // entries in flight
	queue   []*item
	retry   []*item // refused in the current pipeline, in order

	inReady, inWaitIdle, inLater, dirty bool

	cpIndex        uint64
	cpPending      int // checkpoints queued or in flight
	uncoveredSince time.Time
}

// loop is the writer's one state-owning goroutine: it admits source events,
// publishes appends and checkpoints, and settles their acknowledgements.
// stopIntake is called once when ctx ends.
func (w *Writer) loop(ctx context.Context, stopIntake func()) error {
	// Reads the loop makes (chain tails, the projection) must still work
	// while it drains after ctx ends; each has its own timeout.
	ioCtx := context.WithoutCancel(ctx)
	tick := time.NewTicker(min(time.Second, w.cfg.CheckpointInterval/4, w.cfg.AckWait/10))
	defer tick.Stop()
	var deadline <-chan time.Time
	done := ctx.Done()
	for {
		var in chan *item
		if !w.draining && w.held < w.cfg.MaxHeld {
			in = w.in
		}
		select {
		case x := <-in:
			w.admit(x)
		case r := <-w.results:
			w.settle(r)
		case <-tick.C:
			if w.deps.NC.IsClosed() {
				return errClosed
			}
			w.onTick()
		case <-done:
			done = nil
			w.draining = true
			stopIntake()
			deadline = time.After(w.cfg.DrainTimeout)
		case <-deadline:
			w.handBack()
			return nil
		}
		if err := w.pump(ioCtx); err != nil {
			return err
		}
		if w.draining && w.held == 0 && w.inflight == 0 {
			return nil
		}
	}
}

// admit queues a source event behind its org's other events.
func (w *Writer) admit(x *item) {
	o := w.orgs[x.env.OrgID]
	if o == nil {
		o = &orgState{org: x.env.OrgID, needLoad: true}
		w.orgs[o.org] = o
	}
	x.org = o
	x.uncertain = x.attempt > 1
	w.held++
	w.holding[x] = struct{}{}
	o.queue = append(o.queue, x)
	w.makeReady(o)
}

// handBack returns every queued event to the stream for redelivery.
func (w *Writer) handBack() {
	for _, o := range w.orgs {
		for _, q := range [][]*item{o.retry, o.queue} {
			for _, x := range q {
				_ = x.msg.Nak()
				w.held--
				delete(w.holding, x)
			}
		}
		o.retry, o.queue = nil, nil
	}
}

func (w *Writer) makeReady(o *orgState) {
	if !o.inReady && len(o.queue) > 0 {
		o.inReady = true
		w.ready = append(w.ready, o)
	}
}

func (w *Writer) canSend() bool {
	return !w.barrier && !w.aloneInFlight && w.inflight < w.cfg.MaxInFlight
}

// maxIdleBurst is how long a pipeline stays open with nothing in flight.
// Within it the next append most likely still follows this writer's last
// one; after it, others have probably appended, and the next append opens
// a new pipeline instead of being refused.
const maxIdleBurst = 20 * time.Millisecond

// checkBurst closes a pipeline that has been idle too long.
func (w *Writer) checkBurst() {
	if w.burst && w.inflight == 0 && w.deps.Now().Sub(w.idleSince) > maxIdleBurst {
		w.burst = false
	}
}

// pump publishes what can be published now: checkpoints first, then the
// ready orgs' events, a few per org in turn.
func (w *Writer) pump(ctx context.Context) error {
	w.checkBurst()
	for len(w.cpQueue) > 0 && w.canSend() && (w.burst || w.inflight == 0) {
		req := w.cpQueue[0]
		w.cpQueue = w.cpQueue[1:]
		if err := w.sendCheckpoint(req); err != nil {
			return err
		}
	}
	for len(w.ready) > 0 && w.canSend() {
		o := w.ready[0]
		w.ready = w.ready[1:]
		o.inReady = false
		if err := w.sendFrom(ctx, o); err != nil {
			return err
		}
	}
	return nil
}

// perTurn is how many events one org sends before the next org's turn.
const perTurn = 64

// sendFrom publishes the events at the head of o's queue.
func (w *Writer) sendFrom(ctx context.Context, o *orgState) error {
	for n := 0; n < perTurn && len(o.queue) > 0; n++ {
		if !w.canSend() {
			w.makeReady(o)
			return nil
		}
		if o.needLoad || !o.loaded {
			if o.pending > 0 {
				return nil // settle makes o ready again when its pipeline is empty
			}
			if err := w.load(ctx, o); err != nil {
				w.log.Warn("audit chain: read chain tail; will retry", "org", o.org, "err", err)
				w.retryLater(o)
				return nil
			}
		}
		x := o.queue[0]
		if w.doubtful(x) {
			x.uncertain = true
		}
		if x.uncertain || !w.burst {
			stop, err := w.sendAlone(ctx, o, x)
			if err != nil || stop {
				return err
			}
			continue
		}
		if err := w.send(x, false); err != nil {
			return w.sendFailed(o, err)
		}
		o.queue = o.queue[1:]
	}
	w.makeReady(o)
	return nil
}

// sendAlone publishes x as the only append in flight: to open a pipeline
// (its acknowledgement tells the stream sequence the pipeline continues
// from), or because x's event may be chained already. Such an event is
// first looked up in the projection and skipped when found. stop reports
// that o's turn is over.
func (w *Writer) sendAlone(ctx context.Context, o *orgState, x *item) (stop bool, err error) {
	if w.inflight > 0 {
		if !o.inWaitIdle {
			o.inWaitIdle = true
			w.waitIdle = append(w.waitIdle, o)
		}
		return true, nil
	}
	if x.uncertain {
		lctx, cancel := context.WithTimeout(ctx, w.cfg.PublishTimeout)
		seen, err := w.deps.Seen(lctx, o.org, x.env.ID)
		cancel()
		if err != nil {
			w.log.Warn("audit chain: look up event; will retry", "org", o.org, "event_id", x.env.ID, "err", err)
			w.retryLater(o)
			return true, nil
		}
		if seen {
			o.queue = o.queue[1:]
			w.m.skipped.Inc()
			w.finish(x)
			return false, nil
		}
	}
	if err := w.send(x, true); err != nil {
		return true, w.sendFailed(o, err)
	}
	o.queue = o.queue[1:]
	return true, nil
}

// sendFailed handles a publish that could not even be sent.
func (w *Writer) sendFailed(o *orgState, err error) error {
	if errors.Is(err, nats.ErrConnectionClosed) || w.deps.NC.IsClosed() {
		return errClosed
	}
	w.log.Warn("audit chain: publish; will retry", "org", o.org, "err", err)
	w.retryLater(o)
	return nil
}

func (w *Writer) retryLater(o *orgState) {
	if !o.inLater {
		o.inLater = true
		w.later = append(w.later, o)
	}
}

// doubtful reports whether x's event may have been redelivered to another
// writer, or be in flight here already.
func (w *Writer) doubtful(x *item) bool {
	_, flying := w.flying[x.env.ID]
	return flying || w.stale(x, w.deps.Now())
}

// stale reports whether the server may have handed x's event to another
// writer: x was not refreshed for a third of the ack wait, or the
// connection was re-established since.
func (w *Writer) stale(x *item, now time.Time) bool {
	return x.reconnects != w.deps.NC.Stats().Reconnects || now.Sub(x.fresh) > w.cfg.AckWait/3
}

// refresh restarts the server's redelivery clock of the events held
// longest, so that no other writer is handed them while they wait here.
// An event already stale stays uncertain: a refresh cannot undo a
// redelivery that may have happened.
func (w *Writer) refresh() {
	now := w.deps.Now()
	for x := range w.holding {
		if now.Sub(x.fresh) <= w.cfg.AckWait/6 {
			continue
		}
		if w.stale(x, now) {
			x.uncertain = true
		}
		if err := x.msg.InProgress(); err == nil {
			x.fresh, x.reconnects = now, w.deps.NC.Stats().Reconnects
		}
	}
}

// onTick keeps held events fresh, retries orgs that hit a transient error
// and publishes the checkpoints that are due by time.
func (w *Writer) onTick() {
	w.refresh()
	later := w.later
	w.later = nil
	for _, o := range later {
		o.inLater = false
		w.makeReady(o)
	}
	now := w.deps.Now()
	for o := range w.uncovered {
		if o.cpPending == 0 && o.confirmed.index > o.cpIndex && now.Sub(o.uncoveredSince) >= w.cfg.CheckpointInterval {
			w.queueCheckpoint(o)
		}
	}
}

// load reads o's chain tail (and, the first time, its last checkpoint)
// from the stream. Nothing of o may be in flight.
func (w *Writer) load(ctx context.Context, o *orgState) error {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.PublishTimeout)
	defer cancel()
	tail, ok, err := w.reader.Tail(ctx, o.org)
	if err != nil {
		return err
	}
	o.confirmed = link{hash: genesis()}
	if ok {
		if tail.OrgID != o.org || tail.Index == 0 || len(tail.Hash) != 64 {
			return errors.New("the chain's last entry is malformed")
		}
		o.confirmed = link{index: tail.Index, hash: tail.Hash, seq: tail.Seq}
	}
	o.tip = o.confirmed
	if !o.loaded {
		cp, ok, err := w.reader.LastCheckpoint(ctx, o.org)
		if err != nil {
			return err
		}
		if ok {
			o.cpIndex = cp.Index
		}
		if o.confirmed.index > o.cpIndex {
			o.uncoveredSince = w.deps.Now()
			w.uncovered[o] = struct{}{}
		}
	}
	o.loaded, o.needLoad = true, false
	return nil
}
