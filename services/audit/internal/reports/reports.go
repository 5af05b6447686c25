// Package reports serves the audit service's compliance reports: a
// report (package report) is computed in one streaming pass over the org's
// entries when it is asked for, stored in the archive object store bucket
// in both renderings (JSON and CSV), and recorded as an
// audit.report.generated event — chained like any other, so the log shows
// who pulled which report — whose projection (table reports) answers the
// list and get operations. The gateway streams a rendering from the
// object store, so a report's size is not bound by a NATS message.
package reports

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/audit/internal/authz"
	"github.com/infrapilot/infrapilot/services/audit/internal/objects"
	"github.com/infrapilot/infrapilot/services/audit/internal/report"
	"github.com/infrapilot/infrapilot/services/audit/internal/store"
	"github.com/infrapilot/infrapilot/services/internal/platform/endpoint"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
	"github.com/infrapilot/infrapilot/services/internal/platform/reqctx"
	"github.com/infrapilot/infrapilot/services/internal/platform/router"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Config tunes reports; zero fields take their defaults.
type Config struct {
	// MaxRows caps each evidence list of a report (default 5,000).
	MaxRows int
	// ProjectionWait bounds how long a request waits for the read model
	// to show the report it stored (default 5s).
	ProjectionWait time.Duration
}

// Deps are the service's collaborators.
type Deps struct {
	DB      *pgxpool.Pool
	Events  *eventstore.Store
	Source  report.Source
	Buckets *objects.Buckets
	Log     *slog.Logger
	Now     func() time.Time
}

// Service serves the report operations.
type Service struct {
	cfg Config
	d   Deps
}

// New returns the service.
func New(cfg Config, d Deps) *Service {
	if cfg.MaxRows <= 0 {
		cfg.MaxRows = 5000
	}
	if cfg.ProjectionWait <= 0 {
		cfg.ProjectionWait = 5 * time.Second
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Service{cfg: cfg, d: d}
}

// Register adds the operations and the read model's projection handler.
func (s *Service) Register(ep *endpoint.Server, r *router.Router) error {
	endpoint.Handle(ep, events.OpAuditReportCreate, s.create)
	endpoint.Handle(ep, events.OpAuditReportList, s.list)
	endpoint.Handle(ep, events.OpAuditReportGet, s.get)
	return r.AddEventHandler("audit_reports_projection", events.StreamAudit,
		[]string{events.DomainEvent("audit", "*", events.AuditAggReport, "*")}, s.project)
}

// Formats are the renderings of a report.
var Formats = []string{"json", "csv"}

func validate(req events.AuditReportRequest) (report.Request, string, error) {
	var fields []events.FieldError
	bad := func(f, m string) { fields = append(fields, events.FieldError{Field: f, Message: m}) }
	r := report.Request{Kind: report.Kind(req.Kind)}
	if !r.Kind.Valid() {
		bad("kind", "must be one of soc2, hipaa, access_review, activity, security")
	}
	var ferr, terr error
	r.From, ferr = time.Parse(time.RFC3339Nano, req.From)
	if ferr != nil {
		bad("from", "required: an RFC 3339 time")
	}
	r.To, terr = time.Parse(time.RFC3339Nano, req.To)
	switch {
	case terr != nil:
		bad("to", "required: an RFC 3339 time")
	case ferr == nil && !r.To.After(r.From):
		bad("to", "must be after from")
	}
	format := req.Format
	if format == "" {
		format = "json"
	}
	if format != "json" && format != "csv" {
		bad("format", "json or csv")
	}
	if len(fields) > 0 {
		return report.Request{}, "", events.Invalid("invalid report request").WithFields(fields...)
	}
	r.From, r.To = r.From.UTC(), r.To.UTC()
	return r, format, nil
}

func (s *Service) create(ctx context.Context, req events.AuditReportRequest) (events.AuditReport, error) {
	org, err := authz.Org(ctx, events.PermAuditRead)
	if err != nil {
		return events.AuditReport{}, err
	}
	rr, format, err := validate(req)
	if err != nil {
		return events.AuditReport{}, err
	}
	rep, err := report.Build(ctx, s.d.Source, org, rr, report.Options{MaxRows: s.cfg.MaxRows, Now: s.d.Now})
	if err != nil {
		return events.AuditReport{}, err
	}
	uid, err := uuid.NewV7()
	if err != nil {
		return events.AuditReport{}, err
	}
	id := uid.String()
	p := events.AuditReportGenerated{Kind: string(rr.Kind), From: stamp(rr.From), To: stamp(rr.To), Format: format,
		Entries: rep.Entries, FirstIndex: rep.FirstIndex, LastIndex: rep.LastIndex,
		Bucket: events.AuditBucketArchive, Objects: map[string]string{}}
	for _, f := range Formats {
		name := objects.Name(org, "reports", id, f)
		render := rep.WriteJSON
		if f == "csv" {
			render = rep.WriteCSV
		}
		if _, err := s.d.Buckets.Put(ctx, p.Bucket, name, fmt.Sprintf("audit %s report %s of org %s", rr.Kind, id, org),
			func(w io.Writer) error { return render(w) }); err != nil {
			return events.AuditReport{}, err
		}
		p.Objects[f] = name
	}
	m := reqctx.Meta(ctx)
	m.OrgID = org
	env, err := events.New(p, events.Aggregate{Type: events.AuditAggReport, ID: id}, m)
	if err != nil {
		return events.AuditReport{}, err
	}
	if _, err := s.d.Events.Append(ctx, eventstore.Ref{OrgID: org, Type: events.AuditAggReport, ID: id}, 0, env); err != nil {
		return events.AuditReport{}, err
	}
	return s.wait(ctx, org, id)
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// wait polls the read model until it shows org's report id.
func (s *Service) wait(ctx context.Context, org, id string) (events.AuditReport, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ProjectionWait)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		r, ok, err := get(ctx, s.d.DB, org, id)
		if err == nil && ok {
			return r, nil
		}
		select {
		case <-ctx.Done():
			return events.AuditReport{}, events.Errorf(events.CodeUnavailable, "report %s is saved but not visible yet; read it again shortly", id)
		case <-tick.C:
		}
	}
}

func (s *Service) list(ctx context.Context, req events.AuditPageRequest) (events.List[events.AuditReport], error) {
	org, err := authz.Org(ctx, events.PermAuditRead)
	if err != nil {
		return events.List[events.AuditReport]{}, err
	}
	if req.Limit < 0 || req.Limit > events.AuditListMaxLimit {
		return events.List[events.AuditReport]{}, events.Invalid("invalid limit").WithFields(
			events.FieldError{Field: "limit", Message: fmt.Sprintf("between 1 and %d", events.AuditListMaxLimit)})
	}
	return list(ctx, s.d.DB, org, req.Cursor, req.Limit)
}

func (s *Service) get(ctx context.Context, req events.AuditIDRequest) (events.AuditReport, error) {
	org, err := authz.Org(ctx, events.PermAuditRead)
	if err != nil {
		return events.AuditReport{}, err
	}
	if err := authz.ID(req.ID, "report"); err != nil {
		return events.AuditReport{}, err
	}
	r, ok, err := get(ctx, s.d.DB, org, req.ID)
	if err != nil {
		return events.AuditReport{}, err
	}
	if !ok {
		return events.AuditReport{}, events.NotFound("report not found")
	}
	return r, nil
}

// project records a generated report in the read model (idempotent).
func (s *Service) project(ctx context.Context, env events.Envelope) error {
	var p events.AuditReportGenerated
	if env.Type != p.EventType() {
		return nil
	}
	if err := json.Unmarshal(env.Data, &p); err != nil {
		return router.Permanent(err)
	}
	objs, err := json.Marshal(p.Objects)
	if err != nil {
		return router.Permanent(err)
	}
	del, _ := router.DeliveryFrom(ctx)
	_, err = s.d.DB.Exec(ctx, `INSERT INTO reports (org_id, report_id, kind, range_from, range_to, format, entries,
			first_index, last_index, bucket, objects, requested_by, created_at, stream_seq)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT DO NOTHING`,
		env.OrgID, env.Aggregate.ID, p.Kind, p.From, p.To, p.Format, int64(p.Entries), int64(p.FirstIndex), int64(p.LastIndex),
		p.Bucket, objs, env.Actor.ID, env.Time.UTC(), int64(del.Sequence))
	if err != nil {
		return fmt.Errorf("audit reports: project %s: %w", env.Aggregate.ID, err)
	}
	return nil
}

const reportColumns = `report_id, kind, range_from, range_to, format, entries, first_index, last_index, bucket, objects,
	requested_by, created_at, stream_seq`

func scan(r pgx.Row) (events.AuditReport, uint64, error) {
	var (
		rep                  events.AuditReport
		entries, first, last int64
		objs                 []byte
		created              time.Time
		seq                  int64
	)
	if err := r.Scan(&rep.ID, &rep.Kind, &rep.From, &rep.To, &rep.Format, &entries, &first, &last, &rep.Bucket, &objs,
		&rep.RequestedBy, &created, &seq); err != nil {
		return events.AuditReport{}, 0, err
	}
	rep.Entries, rep.FirstIndex, rep.LastIndex = uint64(entries), uint64(first), uint64(last)
	rep.CreatedAt = stamp(created)
	if err := json.Unmarshal(objs, &rep.Objects); err != nil {
		return events.AuditReport{}, 0, err
	}
	return rep, uint64(seq), nil
}

func get(ctx context.Context, db *pgxpool.Pool, org, id string) (events.AuditReport, bool, error) {
	r, _, err := scan(db.QueryRow(ctx, `SELECT `+reportColumns+` FROM reports WHERE org_id = $1 AND report_id = $2`, org, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return events.AuditReport{}, false, nil
	}
	if err != nil {
		return events.AuditReport{}, false, fmt.Errorf("audit reports: get %s/%s: %w", org, id, err)
	}
	return r, true, nil
}

func list(ctx context.Context, db *pgxpool.Pool, org, cursor string, limit int) (events.List[events.AuditReport], error) {
	before, err := store.DecodeCursor(cursor)
	if err != nil {
		return events.List[events.AuditReport]{}, err
	}
	if limit <= 0 {
		limit = events.AuditListDefaultLimit
	}
	rows, err := db.Query(ctx, `SELECT `+reportColumns+` FROM reports
		WHERE org_id = $1 AND ($2::bigint = 0 OR stream_seq < $2) ORDER BY stream_seq DESC LIMIT $3`, org, int64(before), limit+1)
	if err != nil {
		return events.List[events.AuditReport]{}, fmt.Errorf("audit reports: list %s: %w", org, err)
	}
	defer rows.Close()
	out := events.List[events.AuditReport]{Items: []events.AuditReport{}}
	var last uint64
	for rows.Next() {
		r, seq, err := scan(rows)
		if err != nil {
			return events.List[events.AuditReport]{}, fmt.Errorf("audit reports: list %s: %w", org, err)
		}
		if len(out.Items) == limit {
			out.NextCursor = store.EncodeCursor(last)
			break
		}
		out.Items = append(out.Items, r)
		last = seq
	}
	return out, rows.Err()
}
