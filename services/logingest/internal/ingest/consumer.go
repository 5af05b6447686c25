package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config configures one batching consumer. Zero fields take defaults.
type Config struct {
	// Name is the durable consumer's name, shared by every replica.
	// Renaming it re-reads the stream (which the store tolerates).
	Name string
	// Stream and Subject select the messages.
	Stream, Subject string
	// MaxRows and MaxBytes bound a store batch (defaults 20000 rows,
	// 16 MiB of decoded text); FlushInterval bounds how long a message
	// waits for its batch to fill (default 500ms): the lag between an
	// agent's publish and the line being queryable.
	MaxRows       int
	MaxBytes      int
	FlushInterval time.Duration
	// FetchBatch is how many messages one pull asks for (default 256).
	FetchBatch int
	// AckWait is the broker's redelivery timeout (default 60s);
	// MaxAckPending bounds unacknowledged messages across replicas
	// (default 20000). A batch waiting for the store holds its messages
	// with InProgress, so AckWait only bounds a crashed consumer's delay.
	AckWait       time.Duration
	MaxAckPending int
	// MinBackoff and MaxBackoff bound the retry delay of a failed store
	// write (defaults 100ms and 30s).
	MinBackoff, MaxBackoff time.Duration
}

func (c *Config) setDefaults() {
	if c.MaxRows <= 0 {
		c.MaxRows = 20000
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 16 << 20
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = 500 * time.Millisecond
	}
	if c.FetchBatch <= 0 {
		c.FetchBatch = 256
	}
	if c.AckWait <= 0 {
		c.AckWait = time.Minute
	}
	if c.MaxAckPending <= 0 {
		c.MaxAckPending = 20000
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 30 * time.Second
	}
}

// Sink decodes messages into rows and writes batches of rows. Write must
// be idempotent: after a crash between a write and the acks, the same
// rows come again.
type Sink[T any] struct {
	// Decode turns a message into rows and their approximate size; an
	// error dead-letters the message (no retry can fix a malformed one).
	Decode func(subject string, data []byte) ([]T, int, error)
	// Write stores a batch.
	Write func(ctx context.Context, rows []T) error
	// Flushed, when set, is told about every stored batch (for metrics
	// and tests).
	Flushed func(rows, msgs int, took time.Duration)
}

// Consumer is a batching durable consumer.
type Consumer[T any] struct {
	cfg     Config
	js      jetstream.JetStream
	sink    Sink[T]
	log     *slog.Logger
	service string
	dead    func() // counts a dead letter
}

// NewConsumer returns a consumer; Run starts it.
func NewConsumer[T any](cfg Config, service string, js jetstream.JetStream, sink Sink[T], log *slog.Logger, deadLetter func()) *Consumer[T] {
	cfg.setDefaults()
	if deadLetter == nil {
		deadLetter = func() {}
	}
	return &Consumer[T]{cfg: cfg, js: js, sink: sink, log: log.With("consumer", cfg.Name), service: service, dead: deadLetter}
}

// batch is what has been fetched and not yet stored.
type batch[T any] struct {
	msgs   []jetstream.Msg
	rows   []T
	bytes  int
	oldest time.Time
}

// Run consumes until ctx ends. On the way out it stores and acknowledges
// the batch in hand (within the drain time the host allows), so a clean
// stop redelivers nothing; after a crash, the unacknowledged messages are
// redelivered and the idempotent Write stores each row once.
func (c *Consumer[T]) Run(ctx context.Context) error {
	cc := events.Durable(c.cfg.Name, c.cfg.Subject)
	cc.AckWait, cc.MaxAckPending = c.cfg.AckWait, c.cfg.MaxAckPending
	cons, err := c.js.CreateOrUpdateConsumer(ctx, c.cfg.Stream, cc)
	if err != nil {
		return fmt.Errorf("ingest: consumer %s: %w", c.cfg.Name, err)
	}
	// Two batches at a time: while one is written to the store (by the
	// writer goroutine), the next is fetched and decoded, so decoding and
	// the store's round trips overlap instead of taking turns (the load
	// harness found this loop serial at ~87k lines/s with a core to
	// spare). Handing a batch over blocks until the previous write is
	// done, so at most two batches' messages are held and Write is never
	// called concurrently.
	toWrite := make(chan batch[T])
	written := make(chan struct{})
	// The writer outlives ctx by up to the drain time, so the batch being
	// written when the consumer stops is still stored and acknowledged.
	wctx, wcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer wcancel()
	var held atomic.Int64 // messages of the batch being written
	go func() {
		defer close(written)
		for wb := range toWrite {
			n := int64(len(wb.msgs))
			if err := c.flush(wctx, &wb); err != nil {
				c.log.Debug("stopping with a batch unwritten; it will be redelivered", "messages", n)
			}
			held.Add(-n)
		}
	}()
	hand := func(b *batch[T]) {
		held.Add(int64(len(b.msgs)))
		toWrite <- *b
		*b = batch[T]{}
	}
	var b batch[T]
	for ctx.Err() == nil {
		// Idle, a pull waits half an interval; the batch it starts counts
		// its age from the pull's start, so no line waits much longer than
		// FlushInterval whenever it arrived during the pull.
		wait := c.cfg.FlushInterval / 2
		if len(b.msgs) > 0 {
			wait = c.cfg.FlushInterval - time.Since(b.oldest)
		}
		if len(b.msgs) > 0 && (wait <= 0 || len(b.rows) >= c.cfg.MaxRows || b.bytes >= c.cfg.MaxBytes) {
			hand(&b)
			continue
		}
		n := min(c.cfg.FetchBatch, c.cfg.MaxAckPending-len(b.msgs)-int(held.Load()))
		if n <= 0 {
			// Every message the broker lets us hold is in these batches.
			if len(b.msgs) > 0 {
				hand(&b)
			} else if !sleep(ctx, 10*time.Millisecond) {
				break
			}
			continue
		}
		pulled := time.Now()
		msgs, err := fetch(cons, n, max(wait, 10*time.Millisecond))
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			c.log.Warn("fetch failed", "err", err)
			if !sleep(ctx, c.cfg.MinBackoff) {
				break
			}
			continue
		}
		for _, m := range msgs {
			rows, size, err := c.sink.Decode(m.Subject(), m.Data())
			if err != nil {
				c.deadLetter(ctx, m, err)
				continue
			}
			if len(b.msgs) == 0 {
				b.oldest = pulled
			}
			b.msgs = append(b.msgs, m)
			b.rows = append(b.rows, rows...)
			b.bytes += size
		}
	}
	stopWriter := time.AfterFunc(c.cfg.AckWait/2, wcancel)
	defer stopWriter.Stop()
	close(toWrite)
	<-written
	if len(b.msgs) > 0 {
		// Stopping: store and ack what we hold, so it is not redelivered
		// to the next instance after AckWait. A failure here only delays.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.AckWait/2)
		defer cancel()
		if err := c.flush(dctx, &b); err != nil {
			c.log.Warn("final flush failed; the batch will be redelivered", "messages", len(b.msgs), "err", err)
		}
	}
	return nil
}

// flush writes the batch, retrying with backoff until it succeeds or ctx
// ends, then acks its messages. While retrying it tells the broker the
// messages are in progress, so they are not redelivered meanwhile.
func (c *Consumer[T]) flush(ctx context.Context, b *batch[T]) error {
	start := time.Now()
	delay := c.cfg.MinBackoff
	lastProgress := start
	for attempt := 1; ; attempt++ {
		err := c.sink.Write(ctx, b.rows)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.log.Warn("store write failed; retrying", "attempt", attempt, "in", delay, "rows", len(b.rows), "err", err)
		if time.Since(lastProgress) > c.cfg.AckWait/3 {
			for _, m := range b.msgs {
				_ = m.InProgress()
			}
			lastProgress = time.Now()
		}
		if !sleep(ctx, delay) {
			return ctx.Err()
		}
		delay = min(2*delay, c.cfg.MaxBackoff)
	}
	for _, m := range b.msgs {
		// A lost ack only means a redelivery, which Write absorbs.
		_ = m.Ack()
	}
	if c.sink.Flushed != nil {
		c.sink.Flushed(len(b.rows), len(b.msgs), time.Since(start))
	}
	*b = batch[T]{}
	return nil
}

// deadLetter moves a message no retry can fix to the DEADLETTER stream
// (subject events.DeadLetter(service, consumer), with the router's
// Ip-Dlq-* headers) and acks it once that publish is acknowledged. If
// the publish fails, the message is left for redelivery.
func (c *Consumer[T]) deadLetter(ctx context.Context, m jetstream.Msg, cause error) {
	subject := events.DeadLetter(c.service, c.cfg.Name)
	out := nats.NewMsg(subject)
	out.Data = m.Data()
	meta, _ := m.Metadata()
	var seq, attempts uint64
	if meta != nil {
		seq, attempts = meta.Sequence.Stream, meta.NumDelivered
	}
	out.Header.Set(events.HeaderDLQSubject, m.Subject())
	out.Header.Set(events.HeaderDLQStream, c.cfg.Stream)
	out.Header.Set(events.HeaderDLQSequence, strconv.FormatUint(seq, 10))
	out.Header.Set(events.HeaderDLQAttempts, strconv.FormatUint(attempts, 10))
	out.Header.Set(events.HeaderDLQError, clip(cause.Error(), 1024))
	out.Header.Set(events.HeaderDLQConsumer, c.cfg.Name)
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := c.js.PublishMsg(pctx, out, jetstream.WithMsgID(fmt.Sprintf("%s:%d:%s", c.cfg.Stream, seq, c.cfg.Name))); err != nil {
		c.log.Error("dead-letter publish failed; message will be redelivered", "subject", m.Subject(), "err", err)
		_ = m.Nak()
		return
	}
	_ = m.Ack()
	c.dead()
	c.log.Error("message dead-lettered", "subject", m.Subject(), "seq", seq, "err", cause, "dlq_subject", subject)
}

// fetch returns up to n messages, waiting at most maxWait. The wait is
// the pull request's server-side expiry, never a client-side cancel,
// which would drop messages already on their way (they would then sit
// unacknowledged until AckWait).
func fetch(cons jetstream.Consumer, n int, maxWait time.Duration) ([]jetstream.Msg, error) {
	batch, err := cons.Fetch(n, jetstream.FetchMaxWait(maxWait))
	if err != nil {
		return nil, err
	}
	var out []jetstream.Msg
	for m := range batch.Messages() {
		out = append(out, m)
	}
	if err := batch.Error(); err != nil && len(out) == 0 && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, nats.ErrTimeout) {
		return nil, err
	}
	return out, nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
