package router

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/ThreeDotsLabs/watermill"
	wmjs "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/jetstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/infrapilot/infrapilot/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Metadata keys the unmarshaler adds to every message, next to the
// message's own headers. The leading underscore keeps them apart from
// header names and out of dead-lettered copies.
const (
	metaSubject      = "_nats_subject"
	metaStream       = "_nats_stream"
	metaSequence     = "_nats_sequence"
	metaNumDelivered = "_nats_num_delivered"
	metaConsumer     = "_nats_consumer"
)

// unmarshaler turns a JetStream message into a watermill message: UUID =
// Nats-Msg-Id (the event id), else "<stream>:<seq>"; metadata = the headers
// (first value of each) plus the subject and the JetStream delivery
// metadata.
//
// It never returns an error: watermill-nats logs an Unmarshal error and then
// dereferences the returned message anyway (message_handler.go), so an
// error would be a nil-pointer panic in the consume goroutine. A message
// the router cannot make sense of is handed on and dead-lettered instead.
type unmarshaler struct{}

func (unmarshaler) Unmarshal(msg jetstream.Msg) (*message.Message, error) {
	hdr := msg.Headers()
	md := make(message.Metadata, len(hdr)+5)
	for k, v := range hdr {
		if len(v) > 0 {
			md[k] = v[0]
		}
	}
	md[metaSubject] = msg.Subject()

	id := hdr.Get(nats.MsgIdHdr)
	if meta, err := msg.Metadata(); err == nil {
		md[metaStream] = meta.Stream
		md[metaSequence] = strconv.FormatUint(meta.Sequence.Stream, 10)
		md[metaNumDelivered] = strconv.FormatUint(meta.NumDelivered, 10)
		md[metaConsumer] = meta.Consumer
		if id == "" {
			id = fmt.Sprintf("%s:%d", meta.Stream, meta.Sequence.Stream)
		}
	}
	if id == "" {
		id = watermill.NewUUID()
	}
	wm := message.NewMessage(id, msg.Data())
	wm.Metadata = md
	return wm, nil
}

// deliveryOf reads what the unmarshaler recorded.
func deliveryOf(handler string, msg *message.Message) Delivery {
	seq, _ := strconv.ParseUint(msg.Metadata.Get(metaSequence), 10, 64)
	attempt, err := strconv.ParseUint(msg.Metadata.Get(metaNumDelivered), 10, 64)
	if err != nil || attempt == 0 {
		attempt = 1
	}
	return Delivery{
		Handler:   handler,
		Subject:   msg.Metadata.Get(metaSubject),
		Stream:    msg.Metadata.Get(metaStream),
		Sequence:  seq,
		Attempt:   attempt,
		MessageID: msg.UUID,
	}
}

// ensureConsumer creates or updates the handler's durable pull consumer:
// name = handler name, config = events.Durable plus the router's AckWait
// and MaxAckPending. Every replica of the handler binds to the same durable,
// so they share (load-balance) its messages.
func (r *Router) ensureConsumer(ctx context.Context, h *handlerSpec) (jetstream.Consumer, error) {
	if h.consumer != nil {
		return h.consumer, nil
	}
	cfg := events.Durable(h.name, h.filters...)
	cfg.AckWait = r.cfg.AckWait
	cfg.MaxAckPending = r.cfg.MaxAckPending
	c, err := r.deps.JS.CreateOrUpdateConsumer(ctx, h.stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("router: handler %s: create or update consumer on stream %s: %w", h.name, h.stream, err)
	}
	h.consumer = c
	return c, nil
}

// newSubscriber builds the watermill-nats JetStream subscriber of one
// handler, wrapped so that stopping it drains instead of dropping acks.
func (r *Router) newSubscriber(h *handlerSpec) (*drainingSubscriber, error) {
	sc := &stoppableConsumer{}
	inner, err := wmjs.NewSubscriber(wmjs.SubscriberConfig{
		Conn:   r.deps.Conn,
		Logger: r.wmLog,
		// The subscriber stops waiting for the handler's ack after this
		// long; keep it equal to the broker's AckWait, after which the
		// message is redelivered anyway.
		AckWaitTimeout: r.cfg.AckWait,
		// Replaces watermill-nats' initializers, which create streams and
		// consumers named "watermill__<topic>" (and delete ephemeral ones
		// on close). Ours binds to the handler's durable and returns no
		// closer: the durable outlives the process.
		ResourceInitializer: func(ctx context.Context, _ jetstream.JetStream, _ string) (jetstream.Consumer, func(context.Context, watermill.LoggerAdapter), error) {
			c, err := r.ensureConsumer(ctx, h)
			sc.Consumer = c
			return sc, nil, err
		},
		NakDelay: r.cfg.Backoff,
		ConsumeOptions: []jetstream.PullConsumeOpt{
			jetstream.PullMaxMessages(r.cfg.Prefetch),
			jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
				r.log.Warn("router: consume error", "handler", h.name, "err", err)
			}),
		},
		Unmarshaler: unmarshaler{},
	})
	if err != nil {
		return nil, fmt.Errorf("router: handler %s: subscriber: %w", h.name, err)
	}
	return &drainingSubscriber{inner: inner, consumer: sc, closing: make(chan struct{})}, nil
}

// stoppableConsumer is the handler's durable consumer as handed to
// watermill-nats. It interposes on Consume so that the router can stop the
// pull and know when watermill-nats' callback (one message at a time: it
// waits for the handler's ack before returning) is no longer running.
type stoppableConsumer struct {
	jetstream.Consumer

	mu       sync.Mutex
	stopping bool
	cc       jetstream.ConsumeContext
	active   sync.WaitGroup
}

// Consume implements jetstream.Consumer.
func (c *stoppableConsumer) Consume(handler jetstream.MessageHandler, opts ...jetstream.PullConsumeOpt) (jetstream.ConsumeContext, error) {
	cc, err := c.Consumer.Consume(func(msg jetstream.Msg) {
		c.mu.Lock()
		if c.stopping {
			c.mu.Unlock()
			// Arrived after the stop: not ours to handle any more. An
			// immediate Nak hands it to another replica without waiting
			// for AckWait.
			_ = msg.Nak()
			return
		}
		c.active.Add(1)
		c.mu.Unlock()
		defer c.active.Done()
		handler(msg)
	}, opts...)
	c.mu.Lock()
	c.cc = cc
	c.mu.Unlock()
	return cc, err
}

// stop stops pulling and returns once no callback is running. Messages
// buffered in the client and not yet started are dropped by the pull
// consumer's Stop and redelivered after AckWait.
func (c *stoppableConsumer) stop() {
	c.mu.Lock()
	c.stopping = true
	cc := c.cc
	c.mu.Unlock()
	if cc != nil {
		cc.Stop()
	}
	c.active.Wait()
}

// drainingSubscriber wraps watermill-nats' jetstream.Subscriber to give the
// router a graceful stop. Left to itself, the subscriber
//
//   - drops the ack of a message whose handler is still running when its
//     context ends or it is closed (message_handler.go selects on ctx.Done
//     and s.closing while waiting for the Ack), so a handler that finishes
//     during shutdown is redelivered although it succeeded;
//   - closes its output channel when its context ends and only then drains
//     the pull consumer, whose buffered messages still go through its
//     callback, where a select may pick the send on the closed channel: a
//     "send on closed channel" panic in the NATS delivery goroutine, which
//     kills the process (reproduced with v2.1.3 by cancelling a
//     subscription that had messages buffered); and
//   - calls Drain on the *nats.Conn it was given in Close, which would take
//     the service's shared connection down with the router.
//
// So the inner subscriber runs on a context of its own and its Close is
// never called. On stop the wrapper stops the pull, Naks what the inner
// subscriber still offers, waits until its callback has returned (the
// handler in flight finished and its ack was confirmed by the server), and
// only then cancels the inner context.
type drainingSubscriber struct {
	inner      *wmjs.Subscriber
	consumer   *stoppableConsumer
	closing    chan struct{}
	closeOnce  sync.Once
	wg         sync.WaitGroup
	subscribed bool
}

// Subscribe implements message.Subscriber. The returned channel closes
// after ctx ends or Close is called and the message in flight has been
// settled. A drainingSubscriber serves one subscription: the router makes
// one per handler.
func (s *drainingSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if s.subscribed {
		return nil, fmt.Errorf("router: handler %s subscribed twice", topic)
	}
	s.subscribed = true
	// Detached from ctx (keeping its values): watermill cancels ctx as
	// soon as the router starts closing. Handlers see this context too,
	// so a drain does not cancel the work in flight.
	innerCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	in, err := s.inner.Subscribe(innerCtx, topic)
	if err != nil {
		cancel()
		return nil, err
	}
	out := make(chan *message.Message)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(out)
		defer cancel()
		s.forward(ctx, in, out)
		s.drain(in)
	}()
	return out, nil
}

// forward hands messages on until ctx ends or s is closed.
func (s *drainingSubscriber) forward(ctx context.Context, in <-chan *message.Message, out chan<- *message.Message) {
	for {
		select {
		case m, ok := <-in:
			if !ok {
				return
			}
			select {
			case out <- m:
			case <-ctx.Done():
				m.Nack()
				return
			case <-s.closing:
				m.Nack()
				return
			}
		case <-ctx.Done():
			return
		case <-s.closing:
			return
		}
	}
}

// drain stops the consumer and Naks whatever the inner subscriber still
// offers until its callback is idle; after that nothing can reach the
// inner output channel, so cancelling its context is safe.
func (s *drainingSubscriber) drain(in <-chan *message.Message) {
	idle := make(chan struct{})
	go func() {
		s.consumer.stop()
		close(idle)
	}()
	for {
		select {
		case m, ok := <-in:
			if !ok {
				<-idle
				return
			}
			m.Nack()
		case <-idle:
			return
		}
	}
}

// Close stops the subscription and waits until it has settled its message
// in flight. It leaves the NATS connection open.
func (s *drainingSubscriber) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	s.wg.Wait()
	return nil
}
