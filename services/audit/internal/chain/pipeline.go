package chain

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/infrapilot/infrapilot/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func genesis() string { return events.GenesisHash }

// MsgID is the Nats-Msg-Id of an event's entry: the event id, so that a
// redelivered event is stored once. The audit service's own events are on
// stream AUDIT already under their id, so their entries' ids are prefixed
// "chain-" to stay apart from them.
func MsgID(env events.Envelope) string {
	if stream, _ := events.StreamForEventType(env.Type); stream == events.StreamAudit {
		return "chain-" + env.ID
	}
	return env.ID
}

// send publishes x's entry after o's tip; alone marks the only append in
// flight. See the package doc for the expectations it carries.
func (w *Writer) send(x *item, alone bool) error {
	o := x.org
	index := o.tip.index + 1
	hash, data, err := x.prep.seal(index, o.tip.hash)
	if err != nil {
		return fmt.Errorf("audit chain: seal entry for event %s: %w", x.env.ID, err)
	}
	msg := nats.NewMsg(events.AuditChain(o.org))
	msg.Data = data
	id := MsgID(x.env)
	opts := []jetstream.PublishOpt{jetstream.WithMsgID(id)}
	if o.pending == 0 {
		opts = append(opts, jetstream.WithExpectLastSequencePerSubject(o.confirmed.seq))
		x.subjectChecked = true
	}
	fut, err := w.publish(msg, id, alone, opts)
	if err != nil {
		return err
	}
	x.entry = events.AuditEntry{Index: index, Hash: hash}
	o.tip = link{index: index, hash: hash}
	o.pending++
	w.flying[x.env.ID] = struct{}{}
	w.enqueue(x, fut)
	return nil
}

// publish sends one message of the pipeline. A pipelined message expects
// the stream's last message to be this writer's previous one, by sequence
// and by message id; a message sent alone expects nothing of the stream
// and opens the pipeline once acknowledged.
func (w *Writer) publish(msg *nats.Msg, id string, alone bool, opts []jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	if !alone {
		opts = append(opts, jetstream.WithExpectLastSequence(w.lastSeq), jetstream.WithExpectLastMsgID(w.lastSent))
	}
	fut, err := w.js.PublishMsgAsync(msg, opts...)
	if err != nil {
		return nil, err
	}
	w.lastSent = id
	w.lastSeq++ // the sequence this message is stored at, if it is
	w.aloneInFlight = alone
	return fut, nil
}

// sendCheckpoint publishes a signed checkpoint, in the pipeline or, when
// none is open, alone.
func (w *Writer) sendCheckpoint(req cpRequest) error {
	o := req.o
	cp := events.SignedCheckpoint{OrgID: o.org, Index: req.at.index, Hash: req.at.hash,
		Time: w.deps.Now().UTC().Format(TimeLayout)}
	if err := w.deps.Signer.Sign(&cp); err != nil {
		o.cpPending--
		w.log.Error("audit chain: sign checkpoint", "org", o.org, "err", err)
		return nil
	}
	data, err := json.Marshal(cp)
	if err != nil {
		return fmt.Errorf("audit chain: encode checkpoint: %w", err)
	}
	uid, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("audit chain: checkpoint id: %w", err)
	}
	id := "checkpoint-" + uid.String()
	msg := nats.NewMsg(events.AuditCheckpoint(o.org))
	msg.Data = data
	fut, err := w.publish(msg, id, !w.burst, []jetstream.PublishOpt{jetstream.WithMsgID(id)})
	if err != nil {
		o.cpPending--
		return w.sendFailed(o, err)
	}
	w.enqueue(&item{org: o, cp: &cp}, fut)
	return nil
}

func (w *Writer) enqueue(x *item, fut jetstream.PubAckFuture) {
	x.alone, x.seq = w.aloneInFlight, w.lastSeq
	w.inflight++
	w.m.inflight.Set(float64(w.inflight))
	w.futures <- pending{it: x, fut: fut}
}

// settle applies one acknowledgement, in publish order.
func (w *Writer) settle(r result) {
	x := r.it
	o := x.org
	w.inflight--
	w.m.inflight.Set(float64(w.inflight))
	stored := r.err == nil && !r.ack.Duplicate
	switch {
	case x.alone:
		w.aloneInFlight = false
		if stored {
			// The pipeline continues after this message.
			w.burst, w.lastSeq = true, r.ack.Sequence
		}
	case !stored:
		w.burst = false
	case r.ack.Sequence != x.seq:
		// Cannot happen: the expectations it carried pinned its place.
		// Start afresh once what is in flight has settled.
		w.log.Error("audit chain: an append was stored at an unexpected sequence", "want", x.seq, "got", r.ack.Sequence)
		w.burst, w.barrier = false, true
	}
	if x.cp != nil {
		w.settleCheckpoint(x, r)
	} else {
		delete(w.flying, x.env.ID)
		o.pending--
		w.settleEntry(o, x, r)
		if o.pending == 0 && !o.dirty {
			o.tip = o.confirmed
			w.makeReady(o)
		}
	}
	if w.inflight == 0 {
		w.idle()
		w.idleSince = w.deps.Now()
	}
}

func (w *Writer) settleEntry(o *orgState, x *item, r result) {
	switch {
	case r.err == nil && !r.ack.Duplicate:
		o.confirmed = link{index: x.entry.Index, hash: x.entry.Hash, seq: r.ack.Sequence}
		w.finish(x)
		w.m.appended.Inc()
		w.m.latency.Observe(w.deps.Now().Sub(x.received).Seconds())
		w.cover(o)
	case r.err == nil:
		// The event was chained before (its id is in the stream's
		// duplicate window) and nothing was stored now.
		w.m.skipped.Inc()
		w.finish(x)
		if !x.uncertain {
			w.log.Warn("audit chain: an event seen for the first time was already chained", "org", o.org, "event_id", x.env.ID)
		}
		w.halt(o)
	default:
		reason := refusal(r.err)
		if reason == "wrong_last_sequence" && !x.subjectChecked {
			reason = "wrong_last_sequence_stream"
		}
		w.m.retries.WithLabelValues(reason).Inc()
		switch reason {
		case "wrong_last_msg_id":
			// Another message got between this writer's appends: the
			// org's chain did not change on this writer's account.
		case "wrong_last_sequence":
			o.needLoad = true // another writer appended to the org
		case "wrong_last_sequence_stream":
			// Another message got between this writer's appends.
		default:
			// Timed out, disconnected…: the entry may be stored.
			x.uncertain = true
			o.needLoad = true
			w.log.Warn("audit chain: append outcome unknown; will check and retry", "org", o.org, "event_id", x.env.ID, "err", r.err)
		}
		o.retry = append(o.retry, x)
		w.halt(o)
	}
}

// finish acknowledges a source event whose entry is in the chain.
func (w *Writer) finish(x *item) {
	_ = x.msg.Ack()
	w.held--
	delete(w.holding, x)
}

func (w *Writer) settleCheckpoint(x *item, r result) {
	o := x.org
	o.cpPending--
	if r.err != nil || r.ack.Duplicate {
		w.m.retries.WithLabelValues("checkpoint").Inc()
		if !x.alone {
			w.barrier = true // appends behind it fail too; retried after idle
		}
		return
	}
	o.cpIndex = max(o.cpIndex, x.cp.Index)
	w.m.checkpoints.Inc()
	if o.confirmed.index <= o.cpIndex {
		delete(w.uncovered, o)
	} else {
		o.uncoveredSince = w.deps.Now()
	}
}

// cover records that o has entries no checkpoint covers, and queues a
// checkpoint of every entry whose index is a multiple of CheckpointEvery.
func (w *Writer) cover(o *orgState) {
	if o.confirmed.index <= o.cpIndex {
		return
	}
	if _, ok := w.uncovered[o]; !ok {
		w.uncovered[o] = struct{}{}
		o.uncoveredSince = w.deps.Now()
	}
	if o.confirmed.index%w.cfg.CheckpointEvery == 0 {
		w.queueCheckpoint(o)
	}
}

// queueCheckpoint queues a checkpoint of o's last acknowledged entry.
func (w *Writer) queueCheckpoint(o *orgState) {
	o.cpPending++
	w.cpQueue = append(w.cpQueue, cpRequest{o: o, at: o.confirmed})
}

// halt stops publishing until everything in flight is settled; o's
// refused entries are then retried first.
func (w *Writer) halt(o *orgState) {
	w.barrier = true
	if !o.dirty {
		o.dirty = true
		w.dirty = append(w.dirty, o)
	}
}

// idle runs when nothing is in flight: the pipeline starts afresh.
func (w *Writer) idle() {
	if w.barrier {
		w.barrier = false
		for _, o := range w.dirty {
			o.dirty = false
			o.queue = append(o.retry, o.queue...)
			o.retry = nil
			o.tip = o.confirmed
			w.makeReady(o)
		}
		w.dirty = nil
	}
	for _, o := range w.waitIdle {
		o.inWaitIdle = false
		w.makeReady(o)
	}
	w.waitIdle = nil
}

// refusal names why JetStream refused an append.
func refusal(err error) string {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case jsErrCodeWrongLastMsgID:
			return "wrong_last_msg_id"
		case jetstream.JSErrCodeStreamWrongLastSequence, jetstream.JSErrCodeStreamWrongLastSequenceConstant:
			return "wrong_last_sequence"
		}
		return "refused"
	}
	if errors.Is(err, jetstream.ErrAsyncPublishTimeout) {
		return "timeout"
	}
	return "unknown"
}

// jsErrCodeWrongLastMsgID is JetStream's "wrong last msg ID" (the client
// library has no name for it).
const jsErrCodeWrongLastMsgID jetstream.ErrorCode = 10070
