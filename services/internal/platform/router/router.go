// Package router is the shared consumer router of InfraPilot services: it
// runs handlers on durable JetStream pull consumers, built on watermill's
// message.Router and watermill-nats' JetStream subscriber.
//
// Delivery is at-least-once and every handler must be idempotent. Around
// each handler the router adds, in this order (outermost first): the
// delivery context (Delivery, correlation id and a logger in ctx), metrics,
// dead-lettering (watermill's PoisonQueue), the retry/dead-letter decision,
// and panic recovery.
//
// Retries happen on the broker, so they survive a crash: a handler error
// Naks the message with an exponential delay (Config.Backoff, from the
// broker's delivery count). When the delivery count reaches
// Config.MaxAttempts, or the error is Permanent, the message is published
// to events.DeadLetter(service, handler) on the DEADLETTER stream, and only
// once that publish is acknowledged is the source message acked.
package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/infrapilot/infrapilot/events"
	"github.com/nats-io/nats.go/jetstream"
)

// EventHandler handles one domain event. Decoding the payload is its job
// (events.Catalogue.Decode); an unknown type or version reaches it as
// well, and Decode returns *events.Unknown for it. Returning an error
// redelivers the event after a backoff; Permanent(err) dead-letters it.
type EventHandler func(ctx context.Context, env events.Envelope) error

// MessageHandler handles one raw message (telemetry, anything that is not
// an events.Envelope). The message's metadata holds its NATS headers.
type MessageHandler func(ctx context.Context, msg *message.Message) error

// Router runs message handlers on durable JetStream consumers. Register
// handlers with AddEventHandler or AddHandler, then call Run once.
type Router struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	wmLog   watermill.LoggerAdapter
	metrics *metrics

	mu       sync.Mutex
	handlers []*handlerSpec
	started  bool
}

type handlerSpec struct {
	name    string
	stream  string
	filters []string
	event   bool
	fn      MessageHandler

	consumer jetstream.Consumer // set by Run
}

// New checks cfg and deps and returns a router that runs nothing until Run.
func New(cfg Config, deps Deps) (*Router, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := deps.validate(); err != nil {
		return nil, err
	}
	log := deps.Logger.With("component", "router", "service", cfg.Service)
	m, err := newMetrics(cfg.Service, deps.Metrics)
	if err != nil {
		return nil, err
	}
	return &Router{cfg: cfg, deps: deps, log: log, wmLog: newWatermillLogger(log), metrics: m}, nil
}

// AddEventHandler registers fn for the domain events of stream that match
// filterSubjects (all of the stream when empty). name is the durable
// consumer's name, shared by every replica: renaming a handler creates a
// new consumer that re-reads the stream, so treat a rename as a migration.
// A message that is not a JSON envelope is dead-lettered without calling fn.
func (r *Router) AddEventHandler(name, stream string, filterSubjects []string, fn EventHandler) error {
	if fn == nil {
		return fmt.Errorf("router: handler %s: nil func", name)
	}
	return r.add(&handlerSpec{
		name: name, stream: stream, filters: filterSubjects, event: true,
		fn: func(ctx context.Context, _ *message.Message) error {
			st := stateFrom(ctx)
			if st.envErr != nil {
				return Permanent(st.envErr)
			}
			return fn(ctx, st.env)
		},
	})
}

// AddHandler registers a raw handler, for messages that are not event
// envelopes (agent telemetry). Otherwise it is like AddEventHandler.
func (r *Router) AddHandler(name, stream string, filterSubjects []string, fn MessageHandler) error {
	if fn == nil {
		return fmt.Errorf("router: handler %s: nil func", name)
	}
	return r.add(&handlerSpec{name: name, stream: stream, filters: filterSubjects, fn: fn})
}

func (r *Router) add(h *handlerSpec) error {
	if !events.ValidToken(h.name) {
		return fmt.Errorf("router: handler name %q is not a valid consumer name (subject token)", h.name)
	}
	if !events.ValidToken(h.stream) {
		return fmt.Errorf("router: handler %s: invalid stream name %q", h.name, h.stream)
	}
	for _, f := range h.filters {
		if f == "" {
			return fmt.Errorf("router: handler %s: empty filter subject", h.name)
		}
	}
	h.filters = slices.Clone(h.filters)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		return fmt.Errorf("router: handler %s added after Run", h.name)
	}
	for _, o := range r.handlers {
		if o.name == h.name {
			return fmt.Errorf("router: handler %s registered twice", h.name)
		}
	}
	r.handlers = append(r.handlers, h)
	return nil
}

// closeMargin is added to AckWait to bound the drain: a handler still
// running after AckWait has lost its message to a redelivery anyway.
const closeMargin = 5 * time.Second

// Run creates or updates every handler's durable consumer, then consumes
// until ctx ends. It then stops taking new messages, lets the handlers in
// flight finish and their acks reach the server, and returns. It returns
// an error if a consumer cannot be set up, or the drain times out.
func (r *Router) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.started {
		r.mu.Unlock()
		return errors.New("router: Run called twice")
	}
	r.started = true
	specs := slices.Clone(r.handlers)
	r.mu.Unlock()
	if len(specs) == 0 {
		// A service without consumers still runs under the host; there
		// is simply nothing to drain.
		<-ctx.Done()
		return nil
	}

	// Set every consumer up before watermill starts any: a Subscribe that
	// fails half-way through watermill's RunHandlers leaves the handlers
	// already started running with nothing to stop them cleanly.
	for _, h := range specs {
		if _, err := r.ensureConsumer(ctx, h); err != nil {
			return err
		}
	}
	wm, err := r.build(specs)
	if err != nil {
		return err
	}

	// watermill gets a context of its own: cancelling the one it runs on
	// skips the drain; wm.Close below is the graceful path.
	wmCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- wm.Run(wmCtx) }()
	select {
	case <-wm.Running():
	case err := <-done:
		return fmt.Errorf("router: start: %w", err)
	}
	r.log.Info("router running", "handlers", len(specs))

	select {
	case <-ctx.Done():
	case err := <-done:
		// Only when every subscription ended by itself.
		return fmt.Errorf("router: stopped unexpectedly: %w", errors.Join(err, errors.New("all handlers stopped")))
	}
	r.log.Info("router draining")
	closeErr := wm.Close()
	runErr := <-done
	if err := errors.Join(closeErr, runErr); err != nil {
		return fmt.Errorf("router: drain: %w", err)
	}
	r.log.Info("router stopped")
	return nil
}

// build assembles the watermill router: one subscriber and one middleware
// chain per handler (the dead-letter subject is per handler).
func (r *Router) build(specs []*handlerSpec) (*message.Router, error) {
	wm, err := message.NewRouter(message.RouterConfig{CloseTimeout: r.cfg.AckWait + closeMargin}, r.wmLog)
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	for _, h := range specs {
		sub, err := r.newSubscriber(h)
		if err != nil {
			return nil, err
		}
		mw, err := r.middlewares(h)
		if err != nil {
			return nil, err
		}
		fn := h.fn
		wh := wm.AddConsumerHandler(h.name, h.name, sub, func(msg *message.Message) error {
			return fn(msg.Context(), msg)
		})
		wh.AddMiddleware(mw...)
	}
	return wm, nil
}
