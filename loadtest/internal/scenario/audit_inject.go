package scenario

import (
	"context"
	"fmt"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/loadtest/internal/harness"
	"github.com/infrapilot/infrapilot/loadtest/internal/target"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The chain-capacity phase of the audit scenario: domain events published
// straight onto a domain stream (as a service appends them) as fast as one
// client can, so that the audit chain, not the API in front of it, is what
// limits the rate. Compared with raw async publish this is the fair ratio:
// same publisher, same stream kind, plus the chain's work.

// injectService is the domain stream the probes go to: one whose service
// is not part of the self-hosted instance (no projection reads it), that
// the audit service chains like every domain stream.
const injectService = "policy"

// loadProbe is the payload of an injected event.
type loadProbe struct {
	Seq int64 `json:"seq"`
}

// EventType implements events.Payload.
func (loadProbe) EventType() string { return injectService + ".loadtest.probe" }

// EventVersion implements events.Payload.
func (loadProbe) EventVersion() int { return 1 }

// injectEvents publishes probe events round-robin over orgs, pipelined
// (4096 awaiting their ack), for d or until max were sent. Each ack is a
// completion of rec. It returns how many were acknowledged.
func injectEvents(ctx context.Context, t *target.Target, orgs []auditOrg, d time.Duration, max int64, rec *harness.Recorder) (int64, error) {
	nc, err := t.NATS(ctx)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, _ *nats.Msg, _ *jetstream.PubAck) { rec.Items(time.Now(), 1) }),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) { rec.Error(err) }))
	if err != nil {
		return 0, err
	}
	if _, err := js.Stream(ctx, events.DomainStream(injectService)); err != nil {
		return 0, fmt.Errorf("stream %s: %w", events.DomainStream(injectService), err)
	}
	end := time.Now().Add(d)
	var sent int64
	for ; sent < max && time.Now().Before(end) && ctx.Err() == nil; sent++ {
		o := orgs[sent%int64(len(orgs))]
		env, err := events.New(loadProbe{Seq: sent}, events.Aggregate{Type: "loadtest", ID: "probe"},
			events.Meta{OrgID: o.id, Actor: target.LoadtestActor})
		if err != nil {
			return 0, err
		}
		data, err := env.Marshal()
		if err != nil {
			return 0, err
		}
		msg := nats.NewMsg(events.DomainEvent(injectService, o.id, "loadtest", "probe"))
		msg.Data = data
		msg.Header.Set(nats.MsgIdHdr, env.ID)
		if _, err := js.PublishMsgAsync(msg); err != nil {
			rec.Error(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
	case <-ctx.Done():
	}
	s := rec.Snapshot()
	return s.Items, nil
}

// chainCapacity runs the injection phase and returns its recorders and
// the chained rate (entries/s from the phase's start to the last entry).
func chainCapacity(ctx context.Context, t *target.Target, env Env, orgs []auditOrg, d, settle time.Duration, max int64) ([]harness.Stats, float64, []string, error) {
	start := time.Now()
	published := harness.NewRecorder("injected events", start)
	chained := harness.NewRecorder("chained (injected)", start)
	lag := harness.NewRecorder("event→chained (injected)", start)
	obs, err := observeChains(ctx, t, orgs, start, chained, lag)
	if err != nil {
		return nil, 0, nil, err
	}
	defer obs.stop()
	pctx, stopProgress := context.WithCancel(ctx)
	go harness.Progress(pctx, env.Out, "audit chain", env.ProgressInterval, published, chained)
	defer stopProgress()
	cpu := harness.StartCPU(CPUGroupsOf(t))
	profiled := HubProfile(ctx, t, env, "audit-chain", d)
	acked, err := injectEvents(ctx, t, orgs, d, max, published)
	if err != nil {
		return nil, 0, nil, err
	}
	pubEnd := time.Now()
	settleEnd := time.Now().Add(settle)
	for obs.count() < acked && time.Now().Before(settleEnd) && ctx.Err() == nil {
		// Polling the observer: the chain's progress is what is awaited.
		time.Sleep(100 * time.Millisecond)
	}
	uses := cpu.Stop()
	stopProgress()
	obs.stop()
	n, last := obs.result()
	var rate float64
	if n > 0 {
		rate = float64(n) / last.Sub(start).Seconds()
	}
	notes := []string{fmt.Sprintf("chain capacity: %d probe events (type %s) published on stream %s in %s at %s/s; %d chained, the last %s after the first was published",
		acked, loadProbe{}.EventType(), events.DomainStream(injectService), pubEnd.Sub(start).Round(time.Millisecond),
		harness.FormatValue(float64(acked)/pubEnd.Sub(start).Seconds()), n, last.Sub(start).Round(time.Millisecond))}
	if n < acked {
		notes = append(notes, fmt.Sprintf("chain capacity: %d of %d injected events were not chained within --settle %s", acked-n, acked, settle))
	}
	if c := harness.CPUNote(uses); c != "" {
		notes = append(notes, "chain capacity: "+c)
	}
	if p := profiled(); p != "" {
		notes = append(notes, "chain capacity: "+p)
	}
	return []harness.Stats{published.Snapshot(), chained.Snapshot(), lag.Snapshot()}, rate, notes, nil
}
