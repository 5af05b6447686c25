// Package commands is the agent's command responder: it serves the
// operations of events/api_agent.go on events.AgentCommands(org, agent),
// through the agent's leaf node, and runs interactive sessions (exec, log
// follow) whose input arrives on that agent's session subjects and whose
// output it publishes on events.AgentSessionOutput.
//
// Replies follow the services' convention, so the gateway reads an agent
// as it reads a service: a JSON body on success; on failure the
// Nats-Service-Error-Code and Nats-Service-Error headers and the JSON of
// the *events.Error. Every error goes through one mapping (reply).
package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/infrapilot/infrapilot/agent/internal/docker"
	"github.com/infrapilot/infrapilot/events"
	"github.com/nats-io/nats.go"
)

// DefaultTimeout bounds a request whose caller sent no deadline.
const DefaultTimeout = 30 * time.Second

// Config configures a Responder.
type Config struct {
	OrgID, AgentID string
	// Info is what OpAgentPing answers (its Engine is filled in from the
	// engine when empty).
	Info events.AgentInfo
	// Workers bounds concurrent requests (default 16); a request beyond
	// them is answered "unavailable" at once.
	Workers int
	// MaxSessions bounds concurrent sessions (default 16).
	MaxSessions int
	// IdleTimeout ends a session whose caller went quiet (default
	// events.SessionIdleTimeout).
	IdleTimeout time.Duration
	// Extra are operations served besides the built-in ones, by op name
	// (events.OpAgentNginxApply…): parts of the agent that live outside
	// this package (the nginx controller, ACME) answer through the same
	// responder, workers and error mapping. A name the responder serves
	// already is refused by New.
	Extra map[string]Handler
	Log   *slog.Logger
}

// Responder serves one agent's commands.
type Responder struct {
	cfg    Config
	nc     *nats.Conn
	dc     *docker.Client
	ops    map[string]Handler
	prefix string
	sem    chan struct{}

	mu       sync.Mutex
	sessions map[string]*session
	base     context.Context
	wg       sync.WaitGroup
}

// Handler serves one operation: body is the request's JSON; the result
// is marshalled as the reply, an error becomes an error reply (an
// *events.Error keeps its code). Handle builds one from a typed function.
type Handler func(ctx context.Context, body []byte) (any, error)

// New prepares a responder on a connection to the agent's leaf server; it
// subscribes to nothing until Run.
func New(cfg Config, nc *nats.Conn, dc *docker.Client) (*Responder, error) {
	if !events.ValidToken(cfg.OrgID) || !events.ValidToken(cfg.AgentID) {
		return nil, fmt.Errorf("commands: invalid org %q or agent %q", cfg.OrgID, cfg.AgentID)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 16
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 16
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = events.SessionIdleTimeout
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	r := &Responder{cfg: cfg, nc: nc, dc: dc, sem: make(chan struct{}, cfg.Workers),
		prefix: events.AgentCommand(cfg.OrgID, cfg.AgentID, ""), sessions: map[string]*session{}}
	r.ops = r.operations()
	for op, h := range cfg.Extra {
		if _, dup := r.ops[op]; dup || h == nil || op == "" || strings.HasPrefix(op, "session.") {
			return nil, fmt.Errorf("commands: extra operation %q is invalid or served already", op)
		}
		r.ops[op] = h
	}
	return r, nil
}

// Run serves commands until ctx ends, then ends every session.
func (r *Responder) Run(ctx context.Context) error {
	r.mu.Lock()
	r.base = ctx
	r.mu.Unlock()
	sub, err := r.nc.Subscribe(events.AgentCommands(r.cfg.OrgID, r.cfg.AgentID), r.dispatch)
	if err != nil {
		return fmt.Errorf("commands: subscribe: %w", err)
	}
	if err := r.nc.Flush(); err != nil {
		return fmt.Errorf("commands: subscribe: %w", err)
	}
	<-ctx.Done()
	_ = sub.Unsubscribe()
	r.closeSessions()
	r.wg.Wait()
	return nil
}

// dispatch routes one message: session traffic in order, on the
// subscription's goroutine (it only queues); operations on a worker.
func (r *Responder) dispatch(m *nats.Msg) {
	rest := strings.TrimPrefix(m.Subject, r.prefix)
	if strings.HasPrefix(rest, "session.") {
		r.sessionMessage(m, strings.TrimPrefix(rest, "session."))
		return
	}
	h, ok := r.ops[rest]
	if !ok {
		r.reply(context.Background(), m, rest, nil, events.NotFound("unknown operation %q", rest))
		return
	}
	select {
	case r.sem <- struct{}{}:
	default:
		r.reply(context.Background(), m, rest, nil, events.Errorf(events.CodeUnavailable, "agent is busy"))
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer func() { <-r.sem }()
		ctx, cancel := r.requestContext(m)
		defer cancel()
		if ctx.Err() != nil {
			return // the caller gave up already
		}
		defer func() {
			if p := recover(); p != nil {
				r.reply(ctx, m, rest, nil, events.Errorf(events.CodeInternal, "panic in %s: %v", rest, p))
			}
		}()
		resp, err := h(ctx, m.Data)
		r.reply(ctx, m, rest, resp, err)
	}()
}

// requestContext is bounded by the caller's Ip-Deadline header.
func (r *Responder) requestContext(m *nats.Msg) (context.Context, context.CancelFunc) {
	r.mu.Lock()
	base := r.base
	r.mu.Unlock()
	deadline := time.Now().Add(DefaultTimeout)
	if m.Header != nil {
		if t, err := time.Parse(time.RFC3339Nano, m.Header.Get(events.HeaderDeadline)); err == nil {
			deadline = t
		}
	}
	return context.WithDeadline(base, deadline)
}

// reply is the one place a result or an error becomes a reply.
func (r *Responder) reply(ctx context.Context, m *nats.Msg, op string, resp any, err error) {
	if m.Reply == "" {
		return
	}
	out := nats.NewMsg(m.Reply)
	if err != nil {
		e := events.AsError(err)
		if errors.Is(err, context.DeadlineExceeded) && e.Code == events.CodeInternal {
			e = events.Errorf(events.CodeUnavailable, "%s timed out", op)
		}
		if e.Code == events.CodeInternal {
			r.cfg.Log.Error("command failed", "op", op, "err", err)
		}
		out.Header.Set(events.HeaderServiceErrorCode, string(e.Code))
		out.Header.Set(events.HeaderServiceError, e.Message)
		out.Data, _ = json.Marshal(e)
	} else {
		data, merr := json.Marshal(resp)
		if merr != nil {
			r.reply(ctx, m, op, nil, merr)
			return
		}
		out.Data = data
	}
	if perr := r.nc.PublishMsg(out); perr != nil {
		r.cfg.Log.Warn("command reply failed", "op", op, "err", perr)
	}
}

// Handle adapts a typed operation for Config.Extra: the body decodes into
// Req (unknown fields and trailing data rejected; an empty body is the
// zero Req), as for the built-in operations.
func Handle[Req, Resp any](fn func(ctx context.Context, req Req) (Resp, error)) Handler {
	return handle(fn)
}

// handle adapts a typed operation: the body decodes into Req (unknown
// fields and trailing data rejected; an empty body is the zero Req).
func handle[Req, Resp any](fn func(ctx context.Context, req Req) (Resp, error)) Handler {
	return func(ctx context.Context, body []byte) (any, error) {
		var req Req
		if len(bytes.TrimSpace(body)) > 0 {
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req); err != nil {
				return nil, events.Invalid("malformed request body: %v", err)
			}
			if dec.More() {
				return nil, events.Invalid("malformed request body: trailing data")
			}
		}
		return fn(ctx, req)
	}
}
