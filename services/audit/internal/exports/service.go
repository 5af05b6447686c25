package exports

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/audit/internal/authz"
	"github.com/infrapilot/infrapilot/services/audit/internal/export"
	"github.com/infrapilot/infrapilot/services/audit/internal/objects"
	"github.com/infrapilot/infrapilot/services/audit/internal/store"
	"github.com/infrapilot/infrapilot/services/internal/platform/endpoint"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
	"github.com/infrapilot/infrapilot/services/internal/platform/reqctx"
	"github.com/infrapilot/infrapilot/services/internal/platform/router"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
)

// Config tunes exports; zero fields take their defaults.
type Config struct {
	// Workers is how many jobs one instance runs at once (default 2).
	Workers int
	// MaxActivePerOrg caps an org's queued and running exports (default
	// 3), so one tenant cannot fill the queue; more answers rate_limited.
	MaxActivePerOrg int
	// MaxAttempts is how many times a job is started before an
	// interruption fails it (default 3).
	MaxAttempts int
	// AckWait is the worker consumer's ack wait (default 30s); a worker
	// renews it every third of it while it writes.
	AckWait time.Duration
	// JobTimeout bounds one attempt (default 1h).
	JobTimeout time.Duration
	// ProjectionWait bounds how long a request waits for the read model
	// to show the job it created (default 5s).
	ProjectionWait time.Duration
	// Options tune the CEF and syslog renderings.
	Options export.Options
}

func (c *Config) setDefaults() {
	if c.Workers <= 0 {
		c.Workers = 2
	}
	if c.MaxActivePerOrg <= 0 {
		c.MaxActivePerOrg = 3
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 3
	}
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.JobTimeout <= 0 {
		c.JobTimeout = time.Hour
	}
	if c.ProjectionWait <= 0 {
		c.ProjectionWait = 5 * time.Second
	}
}

// Deps are the service's collaborators.
type Deps struct {
	JS      jetstream.JetStream
	DB      *pgxpool.Pool
	Events  *eventstore.Store
	Store   *store.Store
	Buckets *objects.Buckets
	Log     *slog.Logger
}

// Service serves the export operations, projects the jobs and runs them.
type Service struct {
	cfg Config
	d   Deps
	log *slog.Logger
}

// New returns the service; it starts nothing.
func New(cfg Config, d Deps) *Service {
	cfg.setDefaults()
	return &Service{cfg: cfg, d: d, log: d.Log.With("component", "audit_exports")}
}

// Register adds the operations and the read model's projection handler.
func (s *Service) Register(ep *endpoint.Server, r *router.Router) error {
	endpoint.Handle(ep, events.OpAuditExportCreate, s.create)
	endpoint.Handle(ep, events.OpAuditExportList, s.list)
	endpoint.Handle(ep, events.OpAuditExportGet, s.get)
	return r.AddEventHandler("audit_exports_projection", events.StreamAudit,
		[]string{events.DomainEvent("audit", "*", events.AuditAggExport, "*")}, s.project)
}

// validate checks a user's export request and returns the event it
// amounts to.
func validate(req events.AuditExportRequest) (events.AuditExportRequested, error) {
	var fields []events.FieldError
	bad := func(f, m string) { fields = append(fields, events.FieldError{Field: f, Message: m}) }
	if !export.Format(req.Format).Valid() {
		bad("format", "must be one of csv, jsonl, cef, syslog")
	}
	from, ferr := time.Parse(time.RFC3339Nano, req.From)
	if ferr != nil {
		bad("from", "required: an RFC 3339 time")
	}
	to, terr := time.Parse(time.RFC3339Nano, req.To)
	switch {
	case terr != nil:
		bad("to", "required: an RFC 3339 time")
	case ferr == nil && !to.After(from):
		bad("to", "must be after from")
	}
	if len(fields) > 0 {
		return events.AuditExportRequested{}, events.Invalid("invalid export request").WithFields(fields...)
	}
	return events.AuditExportRequested{Purpose: events.AuditExportPurposeExport, Format: req.Format,
		From: from.UTC().Format(time.RFC3339Nano), To: to.UTC().Format(time.RFC3339Nano)}, nil
}

func (s *Service) create(ctx context.Context, req events.AuditExportRequest) (events.AuditExport, error) {
	org, err := authz.Org(ctx, events.PermAuditRead)
	if err != nil {
		return events.AuditExport{}, err
	}
	p, err := validate(req)
	if err != nil {
		return events.AuditExport{}, err
	}
	n, err := active(ctx, s.d.DB, org)
	if err != nil {
		return events.AuditExport{}, err
	}
	if n >= s.cfg.MaxActivePerOrg {
		e := events.Errorf(events.CodeRateLimited, "%d exports are already queued or running; wait for one to finish", n)
		e.RetryAfter = 10
		return events.AuditExport{}, e
	}
	m := reqctx.Meta(ctx)
	m.OrgID = org
	return s.request(ctx, org, p, m)
}

// request appends a new job's requested event and waits until the read
// model shows it.
func (s *Service) request(ctx context.Context, org string, p events.AuditExportRequested, m events.Meta) (events.AuditExport, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return events.AuditExport{}, err
	}
	env, err := events.New(p, events.Aggregate{Type: events.AuditAggExport, ID: id.String()}, m)
	if err != nil {
		return events.AuditExport{}, err
	}
	v, err := s.d.Events.Append(ctx, ref(org, id.String()), 0, env)
	if err != nil {
		return events.AuditExport{}, err
	}
	return s.wait(ctx, org, id.String(), func(r row) bool { return r.seq >= v })
}

// wait polls the read model until done holds for org's job id, for at
// most ProjectionWait.
func (s *Service) wait(ctx context.Context, org, id string, done func(row) bool) (events.AuditExport, error) {
	return s.waitFor(ctx, org, id, s.cfg.ProjectionWait, 20*time.Millisecond, done)
}

func (s *Service) waitFor(ctx context.Context, org, id string, limit, every time.Duration, done func(row) bool) (events.AuditExport, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		r, ok, err := get(ctx, s.d.DB, org, id, s.d.Buckets.ExportTTL())
		if err == nil && ok && done(r) {
			return r.AuditExport, nil
		}
		select {
		case <-ctx.Done():
			return events.AuditExport{}, events.Errorf(events.CodeUnavailable, "export %s is saved but not visible yet; read it again shortly", id)
		case <-tick.C:
		}
	}
}

func (s *Service) list(ctx context.Context, req events.AuditPageRequest) (events.List[events.AuditExport], error) {
	org, err := authz.Org(ctx, events.PermAuditRead)
	if err != nil {
		return events.List[events.AuditExport]{}, err
	}
	if req.Limit < 0 || req.Limit > events.AuditListMaxLimit {
		return events.List[events.AuditExport]{}, events.Invalid("invalid limit").WithFields(
			events.FieldError{Field: "limit", Message: fmt.Sprintf("between 1 and %d", events.AuditListMaxLimit)})
	}
	return list(ctx, s.d.DB, org, req.Cursor, req.Limit, s.d.Buckets.ExportTTL())
}

func (s *Service) get(ctx context.Context, req events.AuditIDRequest) (events.AuditExport, error) {
	org, err := authz.Org(ctx, events.PermAuditRead)
	if err != nil {
		return events.AuditExport{}, err
	}
	if err := authz.ID(req.ID, "export"); err != nil {
		return events.AuditExport{}, err
	}
	r, ok, err := get(ctx, s.d.DB, org, req.ID, s.d.Buckets.ExportTTL())
	if err != nil {
		return events.AuditExport{}, err
	}
	if !ok {
		return events.AuditExport{}, events.NotFound("export not found")
	}
	return r.AuditExport, nil
}

// project writes a job's fold into the read model. It reloads the job from
// the stream rather than applying the one event, so that redeliveries and
// events handled out of order converge on the same row.
func (s *Service) project(ctx context.Context, env events.Envelope) error {
	if env.Aggregate.Type != events.AuditAggExport {
		return nil
	}
	evs, version, err := s.d.Events.Load(ctx, ref(env.OrgID, env.Aggregate.ID))
	if err != nil {
		return err
	}
	st := fold(env.OrgID, evs, s.d.Buckets.ExportTTL())
	if !st.exists {
		return nil
	}
	return put(ctx, s.d.DB, env.OrgID, st.job, version, evs[0].Sequence)
}

// Archive writes the org's entries with index in [from, to] as a JSONL
// export into the archive bucket, through the same job machinery as a
// user's export (so it is audited, listed and downloadable), and waits
// until it is done. The retention job prunes nothing unless this
// succeeds.
func (s *Service) Archive(ctx context.Context, org string, from, to uint64) (events.AuditExport, error) {
	m := events.Meta{OrgID: org, Actor: events.SystemActor("audit.retention")}
	j, err := s.request(ctx, org, events.AuditExportRequested{Purpose: events.AuditExportPurposeArchive,
		Format: string(export.FormatJSONL), FromIndex: from, ToIndex: to}, m)
	if err != nil {
		return events.AuditExport{}, err
	}
	j, err = s.waitFor(ctx, org, j.ID, s.cfg.JobTimeout*time.Duration(s.cfg.MaxAttempts), 250*time.Millisecond, func(r row) bool { return terminal(r.Status) })
	if err != nil {
		return events.AuditExport{}, err
	}
	if j.Status != events.AuditExportStatusDone {
		return j, fmt.Errorf("audit exports: archive %s of %s failed: %s", j.ID, org, j.Error)
	}
	return j, nil
}
