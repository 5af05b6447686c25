// Package endpoint serves a service's request-reply operations on the micro
// package of nats.go: one micro service per InfraPilot service, endpoints in
// the group "svc.<service>", a queue group so replicas share the load, typed
// JSON handlers, one mapping from errors to micro error replies, and the
// health endpoint every service answers.
package endpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/reqctx"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultTimeout bounds a request whose caller sent no deadline.
const DefaultTimeout = 30 * time.Second

// Check is one dependency check of the health endpoint; nil means healthy.
// A check that returns an Info reports its text without making the service
// degraded (an optional dependency that is not configured, say).
type Check func(ctx context.Context) error

// Info is a Check's informational result: reported as its text, healthy.
type Info string

// Error implements error.
func (i Info) Error() string { return string(i) }

// Config describes a service's endpoints.
type Config struct {
	Service  string
	Version  string
	Instance string
	// Concurrency is how many requests of one operation a process serves
	// at once (default DefaultConcurrency). NATS delivers a subscription's
	// messages one at a time, so a micro endpoint serves one request at a
	// time; an operation that waits a few milliseconds on Postgres and
	// JetStream then caps at a few hundred requests a second however idle
	// the machine is (the load harness measured 250/s for
	// enrollment_token_create). The server therefore registers the service
	// Concurrency times in the same queue group, as that many replicas
	// would: NATS spreads requests over them, and each keeps micro's
	// discovery and statistics exact (a handler answering from another
	// goroutine would race with micro's bookkeeping). Handlers must be safe
	// to run concurrently, which they already are across operations and
	// across replicas (optimistic concurrency on every aggregate).
	Concurrency int
	// Checks run on every health request, by name (for example "postgres").
	Checks map[string]Check
}

// Server is a service's set of request-reply endpoints. Handlers are added
// before Start; Stop drains them.
type Server struct {
	cfg     Config
	nc      *nats.Conn
	log     *slog.Logger
	metrics *metrics
	handles []handle
	svcs    []micro.Service
	base    context.Context
}

// DefaultConcurrency is Config.Concurrency's default.
const DefaultConcurrency = 8

type handle struct {
	op string
	fn func(ctx context.Context, req micro.Request)
}

// New prepares a server; it subscribes to nothing until Start.
func New(cfg Config, nc *nats.Conn, log *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	if !events.ValidToken(cfg.Service) {
		return nil, fmt.Errorf("endpoint: invalid service name %q", cfg.Service)
	}
	cfg.Version = semver(cfg.Version)
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	s := &Server{cfg: cfg, nc: nc, log: log.With("service", cfg.Service), metrics: m, base: context.Background()}
	Handle(s, events.HealthOperation, s.health)
	return s, nil
}

// Handle adds a typed operation answering on events.ServiceEndpoint(service,
// op). The request body is decoded into Req (unknown fields rejected); the
// handler's result is encoded as JSON; its error is mapped by one function.
func Handle[Req, Resp any](s *Server, op string, fn func(ctx context.Context, req Req) (Resp, error)) {
	s.handles = append(s.handles, handle{op: op, fn: func(ctx context.Context, r micro.Request) {
		var req Req
		if len(r.Data()) > 0 {
			dec := json.NewDecoder(bytesReader(r.Data()))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req); err != nil {
				s.reply(ctx, r, op, nil, events.Invalid("malformed request body: %v", err))
				return
			}
		}
		resp, err := fn(ctx, req)
		s.reply(ctx, r, op, resp, err)
	}})
}

// AddCheck adds a dependency check to the health endpoint (replacing one
// of the same name). Call it before Start, like Handle.
func (s *Server) AddCheck(name string, c Check) {
	if s.cfg.Checks == nil {
		s.cfg.Checks = map[string]Check{}
	}
	s.cfg.Checks[name] = c
}

// Start registers the micro service and its endpoints. ctx is the parent of
// every request context (its cancellation aborts in-flight handlers).
func (s *Server) Start(ctx context.Context) error {
	s.base = ctx
	for i := 0; i < s.cfg.Concurrency; i++ {
		svc, err := s.addService(i)
		if err != nil {
			_ = s.Stop()
			return err
		}
		s.svcs = append(s.svcs, svc)
	}
	return nil
}

// addService registers the i-th micro service instance with every
// endpoint.
func (s *Server) addService(i int) (micro.Service, error) {
	instance := s.cfg.Instance
	if s.cfg.Concurrency > 1 {
		instance = fmt.Sprintf("%s#%d", instance, i)
	}
	svc, err := micro.AddService(s.nc, micro.Config{
		Name:        s.cfg.Service,
		Version:     s.cfg.Version,
		Description: "InfraPilot " + s.cfg.Service + " service",
		Metadata:    map[string]string{"instance": instance},
		QueueGroup:  "svc." + s.cfg.Service,
	})
	if err != nil {
		return nil, fmt.Errorf("endpoint: add service %s: %w", s.cfg.Service, err)
	}
	group := svc.AddGroup(events.ServiceEndpoints(s.cfg.Service))
	for _, h := range s.handles {
		h := h
		if err := group.AddEndpoint(h.op, micro.HandlerFunc(func(r micro.Request) { s.serve(h, r) })); err != nil {
			_ = svc.Stop()
			return nil, fmt.Errorf("endpoint: add %s.%s: %w", s.cfg.Service, h.op, err)
		}
	}
	return svc, nil
}

// Stop drains the endpoints: no new requests are taken, in-flight ones
// finish.
func (s *Server) Stop() error {
	var errs []error
	for _, svc := range s.svcs {
		errs = append(errs, svc.Stop())
	}
	s.svcs = nil
	return errors.Join(errs...)
}

func (s *Server) serve(h handle, r micro.Request) {
	info := reqctx.FromHeaders(nats.Header(r.Headers()))
	deadline, ok := reqctx.Deadline(nats.Header(r.Headers()))
	if !ok {
		deadline = time.Now().Add(DefaultTimeout)
	}
	ctx, cancel := context.WithDeadline(reqctx.With(s.base, info), deadline)
	defer cancel()
	if ctx.Err() != nil {
		// The caller has already given up; doing the work would only
		// produce a reply nobody reads.
		s.metrics.observe(s.cfg.Service, h.op, "abandoned", 1)
		return
	}
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("endpoint panic", "op", h.op, "panic", fmt.Sprint(p), "request_id", info.RequestID)
			s.reply(ctx, r, h.op, nil, events.Errorf(events.CodeInternal, "panic in %s", h.op))
		}
		s.metrics.duration.WithLabelValues(s.cfg.Service, h.op).Observe(time.Since(start).Seconds())
	}()
	h.fn(ctx, r)
}

// reply is the one place a result or an error becomes a micro reply.
func (s *Server) reply(ctx context.Context, r micro.Request, op string, resp any, err error) {
	info := reqctx.From(ctx)
	if err != nil {
		e := events.AsError(err)
		if errors.Is(err, context.DeadlineExceeded) {
			e = events.Errorf(events.CodeUnavailable, "%s timed out", op)
		}
		if e.Code == events.CodeInternal {
			s.log.Error("endpoint failed", "op", op, "err", err, "request_id", info.RequestID, "org_id", info.OrgID)
		}
		s.metrics.observe(s.cfg.Service, op, e.Code, 1)
		body, _ := json.Marshal(e)
		if rerr := r.Error(string(e.Code), e.Message, body); rerr != nil {
			s.log.Warn("endpoint reply failed", "op", op, "err", rerr)
		}
		return
	}
	s.metrics.observe(s.cfg.Service, op, "ok", 1)
	if rerr := r.RespondJSON(resp); rerr != nil {
		s.log.Warn("endpoint reply failed", "op", op, "err", rerr)
	}
}

func (s *Server) health(ctx context.Context, _ struct{}) (events.HealthReply, error) {
	out := events.HealthReply{Service: s.cfg.Service, Instance: s.cfg.Instance, Version: s.cfg.Version,
		Status: events.HealthOK, Checks: map[string]string{}}
	for name, check := range s.cfg.Checks {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := check(cctx)
		cancel()
		var info Info
		if errors.As(err, &info) {
			out.Checks[name] = string(info)
			continue
		}
		if err != nil {
			out.Status = events.HealthDegraded
			out.Checks[name] = "error: " + err.Error()
			continue
		}
		out.Checks[name] = events.HealthOK
	}
	return out, nil
}

var semverRE = regexp.MustCompile(`^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$`)

// semver turns a build version into the SemVer string micro requires:
// "1.2.3" stays, "dev" becomes "0.0.0-dev".
func semver(v string) string {
	v = strings.TrimPrefix(v, "v")
	if semverRE.MatchString(v) {
		return v
	}
	clean := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-' {
			return r
		}
		return '-'
	}, v)
	if clean == "" {
		clean = "unknown"
	}
	return "0.0.0-" + clean
}
