// Package service is the proxy service: its request-reply operations, the
// projection that keeps the read model, the rendering of each agent's
// desired nginx state into KV and its delivery to the agent, the handling
// of the agent's apply results and desired-state requests, and the
// certificate worker.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/app"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
	"github.com/infrapilot/infrapilot/services/internal/platform/readmodel"
	"github.com/infrapilot/infrapilot/services/internal/platform/reqctx"
	"github.com/infrapilot/infrapilot/services/proxy/internal/domain"
	"github.com/infrapilot/infrapilot/services/proxy/internal/postgres"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Name is the service's name, as in subjects and the Postgres schema.
const Name = "proxy"

// LetsEncrypt is the ACME directory of Let's Encrypt's production CA.
const LetsEncrypt = "https://acme-v02.api.letsencrypt.org/directory"

// Config is the service's configuration, defaults applied by Validate.
type Config struct {
	// ACMEDirectoryURL is the CA agents obtain certificates from
	// (LetsEncrypt).
	ACMEDirectoryURL string
	// Cert is when certificates are renewed (events.CertRenewBefore
	// before expiry) and failures retried (1 min doubling up to 6 h). Its
	// Lease (CertTimeout plus a minute) is how long a request may go
	// unanswered before another replica takes it over.
	Cert domain.CertPolicy
	// CertInterval is how often the certificate worker looks for due work
	// (1 min); a request through the API wakes it at once.
	CertInterval time.Duration
	// CertTimeout bounds one certificate request to an agent
	// (events.CertIssueTimeout).
	CertTimeout time.Duration
	// ApplyTimeout bounds pushing a desired state to an agent (30 s).
	ApplyTimeout time.Duration
	// ReconcileInterval is how often every agent's desired state is
	// rendered again, which repairs a render lost to a crash (5 min).
	ReconcileInterval time.Duration
	// AgentCacheTTL is how long the tenancy service's answer about an
	// agent is kept (10 s).
	AgentCacheTTL time.Duration
	// ProjectionWait bounds the read-your-writes wait of a command (5 s).
	ProjectionWait time.Duration
	// CallTimeout bounds a call to another service or an agent's quick
	// operations (10 s).
	CallTimeout time.Duration
}

// Validate applies defaults and checks the configuration.
func (c *Config) Validate() error {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.ACMEDirectoryURL == "" {
		c.ACMEDirectoryURL = LetsEncrypt
	}
	def(&c.Cert.RenewBefore, events.CertRenewBefore)
	def(&c.Cert.RetryBase, time.Minute)
	def(&c.Cert.RetryMax, 6*time.Hour)
	def(&c.CertTimeout, events.CertIssueTimeout)
	def(&c.Cert.Lease, c.CertTimeout+time.Minute)
	def(&c.CertInterval, time.Minute)
	def(&c.ApplyTimeout, 30*time.Second)
	def(&c.ReconcileInterval, 5*time.Minute)
	def(&c.AgentCacheTTL, 10*time.Second)
	def(&c.ProjectionWait, 5*time.Second)
	def(&c.CallTimeout, 10*time.Second)
	for _, d := range []time.Duration{c.Cert.RenewBefore, c.Cert.RetryBase, c.Cert.RetryMax, c.Cert.Lease, c.CertInterval,
		c.CertTimeout, c.ApplyTimeout, c.ReconcileInterval, c.AgentCacheTTL, c.ProjectionWait, c.CallTimeout} {
		if d < 0 {
			return errors.New("proxy: durations must be positive")
		}
	}
	if c.Cert.RetryMax < c.Cert.RetryBase {
		return errors.New("proxy: the certificate retry maximum is below its base")
	}
	return nil
}

// Service is the running proxy service.
type Service struct {
	cfg     Config
	log     *slog.Logger
	nc      *nats.Conn
	js      jetstream.JetStream
	es      *eventstore.Store
	db      *postgres.Store
	now     func() time.Time
	applied *readmodel.Waiter
	agents  *agentCache
	locks   *keyedMutex
	push    *pusher
	certs   *certWorker

	kvMu sync.Mutex
	kv   jetstream.KeyValue
}

// New builds the service on the host's dependencies and registers its
// endpoints and consumers. It starts nothing.
func New(cfg Config, d app.Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.DB == nil {
		return nil, errors.New("proxy: needs Postgres")
	}
	now := d.Now
	if now == nil {
		now = time.Now
	}
	s := &Service{cfg: cfg, log: d.Log, nc: d.NC, js: d.JS, es: d.Events, db: postgres.New(d.DB), now: now,
		applied: readmodel.NewWaiter(cfg.ProjectionWait, d.Log), agents: newAgentCache(cfg.AgentCacheTTL), locks: newKeyedMutex()}
	s.push = newPusher(s)
	s.certs = newCertWorker(s)
	s.register(d)
	if err := s.registerProjection(d); err != nil {
		return nil, err
	}
	if err := s.registerResults(d); err != nil {
		return nil, err
	}
	return s, nil
}

// Run answers agents' desired-state requests and runs the pushes, the
// certificate worker and the reconciler until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	stop, err := s.serveDesired(ctx)
	if err != nil {
		return fmt.Errorf("proxy: desired-state requests: %w", err)
	}
	defer stop()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); s.push.run(ctx) }()
	go func() { defer wg.Done(); s.certs.run(ctx) }()
	go func() { defer wg.Done(); s.reconcile(ctx) }()
	wg.Wait()
	return nil
}

// caller is who asks, in which org, with which role.
type caller struct {
	OrgID string
	Role  events.Role
}

// inOrg returns the request's org and checks the caller holds perm there.
// A request without an org gets not_found.
func inOrg(ctx context.Context, perm events.Permission) (caller, error) {
	info := reqctx.From(ctx)
	c := caller{OrgID: info.OrgID, Role: events.Role(info.Role)}
	if !events.ValidToken(c.OrgID) || c.OrgID == events.PlatformOrg {
		return c, events.NotFound("organisation not found")
	}
	if !events.Allowed(c.Role, perm) {
		return c, events.Errorf(events.CodeForbidden, "your role %q may not %s", c.Role, perm)
	}
	return c, nil
}

// appendTo appends payloads to one aggregate at version and returns its new
// version. Work without an actor (an agent's report, the certificate
// worker) is the system's.
func (s *Service) appendTo(ctx context.Context, orgID, aggType, id string, version uint64, payloads ...events.Payload) (uint64, error) {
	return s.es.AppendPayloads(ctx, eventstore.Ref{OrgID: orgID, Type: aggType, ID: id}, version,
		reqctx.MetaIn(ctx, orgID, events.SystemActor(Name)), payloads...)
}

func (s *Service) loadHost(ctx context.Context, orgID, id string) (*domain.Host, error) {
	evs, v, err := s.es.Load(ctx, eventstore.Ref{OrgID: orgID, Type: events.ProxyAggHost, ID: id})
	if err != nil {
		return nil, err
	}
	return domain.ReplayHost(orgID, id, evs, v)
}

func (s *Service) loadAgent(ctx context.Context, orgID, id string) (*domain.Agent, error) {
	evs, v, err := s.es.Load(ctx, eventstore.Ref{OrgID: orgID, Type: events.ProxyAggAgent, ID: id})
	if err != nil {
		return nil, err
	}
	return domain.ReplayAgent(orgID, id, evs, v)
}

// keyedMutex serialises the writes that must see each other's effect on
// one agent's hosts (the duplicate-domain and host-count checks) within a
// replica.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	mu   sync.Mutex
	refs int
}

func newKeyedMutex() *keyedMutex { return &keyedMutex{locks: map[string]*keyLock{}} }

// lock locks key and returns its unlock.
func (k *keyedMutex) lock(key string) func() {
	k.mu.Lock()
	l := k.locks[key]
	if l == nil {
		l = &keyLock{}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		k.mu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}
