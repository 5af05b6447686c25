package scenario

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/infrapilot/infrapilot/loadtest/internal/harness"
	"github.com/infrapilot/infrapilot/loadtest/internal/target"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Raw-capacity measurements on the hub. Capacity is measured closed-loop
// (as fast as one client goes): it is the ceiling the open-loop scenarios
// are compared with, not a latency under a given load.

const (
	baselineStream  = "LOADTEST_BASELINE"
	baselineSubject = "loadtest.baseline"
	baselinePayload = 256
)

// scratchStream (re)creates the scratch stream LOADTEST_BASELINE: a file
// stream like InfraPilot's own, deleted by the returned function.
func scratchStream(ctx context.Context, js jetstream.JetStream) (func(), error) {
	_ = js.DeleteStream(ctx, baselineStream) // a leftover of an interrupted run
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: baselineStream, Subjects: []string{baselineSubject + ".>"},
		Storage: jetstream.FileStorage, Retention: jetstream.LimitsPolicy, Replicas: 1,
		MaxBytes: 4 << 30, Discard: jetstream.DiscardOld,
	})
	if err != nil {
		return nil, fmt.Errorf("create scratch stream %s: %w", baselineStream, err)
	}
	return func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = js.DeleteStream(dctx, baselineStream)
	}, nil
}

// measureJSSync publishes 256 B messages one at a time, each waiting for
// its ack, for d.
func measureJSSync(ctx context.Context, t *target.Target, d time.Duration, rec *harness.Recorder) error {
	nc, err := t.NATS(ctx)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	drop, err := scratchStream(ctx, js)
	if err != nil {
		return err
	}
	defer drop()
	payload := make([]byte, baselinePayload)
	subj := baselineSubject + ".sync"
	end := time.Now().Add(d)
	for time.Now().Before(end) && ctx.Err() == nil {
		start := time.Now()
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := js.Publish(pctx, subj, payload)
		cancel()
		now := time.Now()
		rec.Observe(now, now.Sub(start), err)
	}
	return nil
}

// measureJSAsync publishes 256 B messages pipelined (up to 4096 awaiting
// their ack) for d; a message counts when its ack arrives, its latency is
// from publish to ack (the send time travels in the payload's first
// bytes).
func measureJSAsync(ctx context.Context, t *target.Target, d time.Duration, rec *harness.Recorder) error {
	nc, err := t.NATS(ctx)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, m *nats.Msg, _ *jetstream.PubAck) {
			now := time.Now()
			sent := int64(binary.BigEndian.Uint64(m.Data))
			rec.Observe(now, now.Sub(time.Unix(0, sent)), nil)
		}),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
			rec.Error(err)
		}))
	if err != nil {
		return err
	}
	drop, err := scratchStream(ctx, js)
	if err != nil {
		return err
	}
	defer drop()
	subj := baselineSubject + ".async"
	end := time.Now().Add(d)
	for time.Now().Before(end) && ctx.Err() == nil {
		payload := make([]byte, baselinePayload)
		binary.BigEndian.PutUint64(payload, uint64(time.Now().UnixNano()))
		// PublishAsync blocks (stall wait) while 4096 acks are pending:
		// that back-pressure is what bounds the rate.
		if _, err := js.PublishAsync(subj, payload); err != nil {
			rec.Error(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		rec.Error(errors.New("async publishes still pending 30s after the last one"))
	case <-ctx.Done():
	}
	return nil
}

// measureNATSEcho measures core NATS request-reply round trips (256 B)
// to an echo responder on a second connection, one at a time, for d: the
// floor of any gateway→service call.
func measureNATSEcho(ctx context.Context, t *target.Target, d time.Duration, rec *harness.Recorder) error {
	srv, err := t.NATS(ctx)
	if err != nil {
		return err
	}
	defer srv.Close()
	cli, err := t.NATS(ctx)
	if err != nil {
		return err
	}
	defer cli.Close()
	subj := "loadtest.echo." + nats.NewInbox()[len(nats.InboxPrefix):]
	sub, err := srv.Subscribe(subj, func(m *nats.Msg) { _ = m.Respond(m.Data) })
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	if err := srv.Flush(); err != nil {
		return err
	}
	payload := make([]byte, baselinePayload)
	end := time.Now().Add(d)
	for time.Now().Before(end) && ctx.Err() == nil {
		start := time.Now()
		_, err := cli.Request(subj, payload, 5*time.Second)
		now := time.Now()
		rec.Observe(now, now.Sub(start), err)
	}
	return nil
}
