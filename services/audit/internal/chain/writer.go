// Package chain is the audit chain writer: it consumes every service's
// domain events and appends one entry per event to the hash chain of the
// event's org, "audit.chain.<org>" on stream AUDIT, signing a checkpoint of
// each chain every so many entries or seconds.
//
// # One line per org
//
// Any number of writers may run (replicas share each source's durable
// consumer), and the chain of every org stays one line: entry n+1 is
// stored only if the chain's last stored entry is the entry n it links
// to. The stream enforces this, not the writers. A writer publishes its
// appends as a pipeline:
//
//   - The pipeline opens with one message published alone. Its
//     acknowledgement gives the stream sequence S it is stored at.
//   - Every further message carries Nats-Expected-Last-Sequence (the whole
//     stream's) = S+k-1 and Nats-Expected-Last-Msg-Id = the id of the
//     message published just before it, so it is stored only directly
//     after that message: the pipeline's messages are stored back to back
//     or not at all. Checking the sequence as well as the id matters when
//     a message is refused as a duplicate: its id is then the id of an
//     older message, never one stored at S+k-1 by this pipeline.
//   - An append whose org has nothing in flight also carries
//     Nats-Expected-Last-Subject-Sequence = the stream sequence of the
//     org's last entry as this writer knows it, which catches another
//     writer's appends to the org since.
//
// (Expected subject sequences alone cannot pipeline: a sequence predicted
// for an in-flight entry can be taken by another writer's entry of the same
// org, which the next pipelined entry would then be accepted after — a
// fork.)
//
// A refused message fails every message behind it; once the pipeline has
// drained they are retried, in order, after reloading the org's tail from
// the stream when the refusal says another writer appended to it. Under
// contention between replicas this costs retries, never correctness.
//
// # Exactly once
//
// Every append carries Nats-Msg-Id = the source event id. A source event
// is acknowledged only after its entry is. An event that may have been
// chained already — redelivered, held longer than a third of the ack wait
// (so possibly redelivered elsewhere), or whose append's outcome is
// unknown — is first looked up in the Postgres projection (which covers
// appends older than the stream's duplicate window) and then published
// alone, so that whatever the stream answers, nothing else depends on it.
package chain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/audit/internal/chainstream"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Writer appends audit entries. Build it with New and run it once with Run.
type Writer struct {
	cfg    Config
	deps   Deps
	log    *slog.Logger
	js     jetstream.JetStream
	reader *chainstream.Reader
	m      *metrics

	in      chan *item
	futures chan pending
	results chan result

	// State below is owned by the loop goroutine.
	orgs      map[string]*orgState
	ready     []*orgState
	waitIdle  []*orgState
	later     []*orgState
	dirty     []*orgState
	cpQueue   []cpRequest
	uncovered map[*orgState]struct{}
	flying    map[string]struct{} // event ids in flight
	holding   map[*item]struct{}  // every source event held
	inflight  int
	held      int
	barrier   bool
	draining  bool
	// The pipeline: burst is set while this writer's appends are known to
	// be the stream's last messages, the last one published being lastSent
	// (message id) at lastSeq (stream sequence, predicted).
	burst         bool
	lastSent      string
	lastSeq       uint64
	aloneInFlight bool
	idleSince     time.Time // when the pipeline last emptied
}

// item is one message the writer publishes: a source event's entry, or a
// checkpoint.
type item struct {
	msg      jetstream.Msg
	env      events.Envelope
	org      *orgState
	received time.Time
	// fresh is when the server's redelivery clock last started for the
	// message (its delivery, or the writer's last InProgress), as far as
	// this process can tell; reconnects is the connection's reconnect
	// count then: after a reconnect nothing sent before is certain.
	fresh      time.Time
	reconnects uint64
	attempt    uint64
	// uncertain: the event may be chained already; see the package doc.
	uncertain bool

	// Set when published: sent alone, the stream sequence it is expected
	// at, and whether it carried an expected subject sequence.
	alone          bool
	seq            uint64
	subjectChecked bool

	prep  prepared          // the entry, canonical but for index and prev_hash
	entry events.AuditEntry // set when published: index and hash
	cp    *events.SignedCheckpoint
}

// cpRequest asks for a checkpoint of org o at link at.
type cpRequest struct {
	o  *orgState
	at link
}

type pending struct {
	it  *item
	fut jetstream.PubAckFuture
}

type result struct {
	it  *item
	ack *jetstream.PubAck
	err error
}

// New checks the configuration; it connects to nothing.
func New(cfg Config, deps Deps) (*Writer, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := deps.validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(deps.Metrics)
	if err != nil {
		return nil, err
	}
	// A JetStream context of its own: its async publishes are this
	// writer's pipeline alone, bounded and timed out.
	js, err := jetstream.New(deps.NC,
		jetstream.WithPublishAsyncMaxPending(cfg.MaxInFlight+64),
		jetstream.WithPublishAsyncTimeout(cfg.PublishTimeout))
	if err != nil {
		return nil, fmt.Errorf("audit chain: jetstream: %w", err)
	}
	return &Writer{
		cfg: cfg, deps: deps, log: deps.Log.With("component", "audit_chain"), js: js,
		reader: chainstream.New(js), m: m,
		in:        make(chan *item, cfg.PullBatch),
		futures:   make(chan pending, cfg.MaxInFlight+1),
		results:   make(chan result, cfg.MaxInFlight+1),
		orgs:      map[string]*orgState{},
		uncovered: map[*orgState]struct{}{},
		flying:    map[string]struct{}{},
		holding:   map[*item]struct{}{},
	}, nil
}

// errClosed is returned by Run when the NATS connection is gone for good.
var errClosed = errors.New("audit chain: NATS connection closed")

// Run creates or updates the source consumers, then appends until ctx
// ends. It then stops taking events, keeps appending the ones it holds for
// up to DrainTimeout, hands the rest back to the stream (Nak), and returns.
func (w *Writer) Run(ctx context.Context) error {
	iters := make([]jetstream.MessagesContext, 0, len(w.cfg.Sources))
	defer func() {
		for _, it := range iters {
			it.Stop()
		}
	}()
	for _, src := range w.cfg.Sources {
		it, err := w.subscribe(ctx, src)
		if err != nil {
			return err
		}
		iters = append(iters, it)
	}
	stopIntake := make(chan struct{})
	var intake sync.WaitGroup
	for i, it := range iters {
		intake.Add(1)
		go func(it jetstream.MessagesContext, src Source) {
			defer intake.Done()
			w.intake(it, src, stopIntake)
		}(it, w.cfg.Sources[i])
	}
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		w.collect()
	}()
	w.log.Info("audit chain writer running", "sources", len(iters))

	err := w.loop(ctx, func() {
		close(stopIntake)
		for _, it := range iters {
			it.Stop()
		}
	})
	close(w.futures)
	intake.Wait()
	// Events an intake goroutine left in the channel were never queued.
	for {
		select {
		case it := <-w.in:
			_ = it.msg.Nak()
			continue
		default:
		}
		break
	}
	if err == nil {
		<-collected
	}
	return err
}

// subscribe creates or updates a source's durable consumer and starts
// pulling from it.
func (w *Writer) subscribe(ctx context.Context, src Source) (jetstream.MessagesContext, error) {
	cfg := events.Durable(src.Durable, src.Filter)
	cfg.AckWait = w.cfg.AckWait
	cfg.MaxAckPending = w.cfg.MaxAckPending
	cons, err := w.js.CreateOrUpdateConsumer(ctx, src.Stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("audit chain: consumer %s on %s: %w", src.Durable, src.Stream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(w.cfg.PullBatch))
	if err != nil {
		return nil, fmt.Errorf("audit chain: consume %s: %w", src.Durable, err)
	}
	return it, nil
}

// intake hands a source's events to the loop until stopped.
func (w *Writer) intake(it jetstream.MessagesContext, src Source, stop <-chan struct{}) {
	for {
		msg, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || w.deps.NC.IsClosed() {
				return
			}
			w.log.Warn("audit chain: pull", "source", src.Durable, "err", err)
			select { // do not spin on a lasting error
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		x := w.newItem(msg, src)
		if x == nil {
			continue
		}
		select {
		case w.in <- x:
		case <-stop:
			_ = msg.Nak()
			return
		}
	}
}

// newItem decodes a source message, dead-lettering one that is not an
// event envelope with a valid org (nil then).
func (w *Writer) newItem(msg jetstream.Msg, src Source) *item {
	meta, err := msg.Metadata()
	if err != nil {
		w.deadLetter(msg, src, 0, fmt.Errorf("no JetStream metadata: %w", err))
		return nil
	}
	env, err := events.Unmarshal(msg.Data())
	if err == nil && !events.ValidToken(env.OrgID) {
		err = events.Invalid("org id %q is not a valid subject token", env.OrgID)
	}
	if err != nil {
		w.deadLetter(msg, src, meta.NumDelivered, err)
		return nil
	}
	prep, err := prepare(EntryFor(env))
	if err != nil {
		w.deadLetter(msg, src, meta.NumDelivered, err)
		return nil
	}
	now := w.deps.Now()
	return &item{msg: msg, env: env, prep: prep, received: now, fresh: now, reconnects: w.deps.NC.Stats().Reconnects, attempt: meta.NumDelivered}
}

// deadLetter publishes a message the chain cannot take to
// events.DeadLetter("audit", consumer), then acks it; if the dead-letter
// publish fails, the message is redelivered later.
func (w *Writer) deadLetter(msg jetstream.Msg, src Source, attempts uint64, cause error) {
	dl := nats.NewMsg(events.DeadLetter("audit", src.Durable))
	dl.Data = msg.Data()
	dl.Header.Set(events.HeaderDLQSubject, msg.Subject())
	dl.Header.Set(events.HeaderDLQStream, src.Stream)
	if meta, err := msg.Metadata(); err == nil {
		dl.Header.Set(events.HeaderDLQSequence, fmt.Sprint(meta.Sequence.Stream))
		dl.Header.Set(nats.MsgIdHdr, fmt.Sprintf("%s:%d", src.Stream, meta.Sequence.Stream))
	}
	dl.Header.Set(events.HeaderDLQAttempts, fmt.Sprint(attempts))
	dl.Header.Set(events.HeaderDLQError, cause.Error())
	dl.Header.Set(events.HeaderDLQConsumer, src.Durable)
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.PublishTimeout)
	defer cancel()
	if _, err := w.js.PublishMsg(ctx, dl); err != nil {
		w.log.Error("audit chain: dead-letter failed; will retry", "source", src.Durable, "subject", msg.Subject(), "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	w.m.deadLetters.Inc()
	w.log.Error("audit chain: message is not an event; dead-lettered", "source", src.Durable, "subject", msg.Subject(), "err", cause)
	_ = msg.Ack()
}

// collect waits for acknowledgements in publish order and hands them to
// the loop. Order matters: an org's results must be settled in the order
// its entries were published.
func (w *Writer) collect() {
	for p := range w.futures {
		r := result{it: p.it}
		select {
		case ack := <-p.fut.Ok():
			r.ack = ack
		case err := <-p.fut.Err():
			r.err = err
		}
		w.results <- r
	}
}
