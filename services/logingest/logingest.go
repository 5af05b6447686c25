// Package logingest is the log-ingest service: it stores the container and
// nginx log lines and the metrics agents publish (streams LOGS and
// METRICS) in ClickHouse, or in Postgres when no ClickHouse is configured,
// and answers log searches and metric roll-ups; a retention job keeps each
// org's data only as long as its plan allows.
//
// Its operations are in events/api_logs.go; the gateway serves them as
// GET /logs, GET /logs/export, GET /agents/{id}/metrics, and feeds the live
// tail (WS /logs/stream) from the agents' subjects itself. docs/logs.md
// describes the whole.
package logingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/app"
	"github.com/infrapilot/infrapilot/services/internal/platform/endpoint"
	"github.com/infrapilot/infrapilot/services/internal/platform/reqctx"
	"github.com/infrapilot/infrapilot/services/logingest/internal/ingest"
	"github.com/infrapilot/infrapilot/services/logingest/internal/query"
	"github.com/infrapilot/infrapilot/services/logingest/internal/retention"
	"github.com/infrapilot/infrapilot/services/logingest/internal/store"
	"github.com/infrapilot/infrapilot/services/logingest/internal/store/clickhouse"
	"github.com/infrapilot/infrapilot/services/logingest/internal/store/postgres"
	"github.com/infrapilot/infrapilot/services/logingest/migrations"
)

// Name is the service's subject token and schema name.
const Name = "logingest"

// Durable consumer names (renaming one re-reads its stream).
const (
	LogsConsumer    = "logingest_logs"
	MetricsConsumer = "logingest_metrics"
)

// Config configures the service; the zero value is a working default.
type Config struct {
	// ClickHouseURL is the native-protocol URL of the log store
	// (clickhouse://user:password@host:9000/database). Empty: the
	// service's Postgres schema is the store.
	ClickHouseURL string
	// Retention is the retention job's configuration: days per plan
	// (free 3, pro 30, enterprise 365 by default), the plan of an org
	// whose plan is unknown, how often it runs.
	Retention retention.Config
	// Logs and Metrics tune the two batching consumers: batch size in
	// rows and bytes, flush interval, pull size, ack wait, max ack
	// pending. The stream, subject and name are fixed.
	Logs, Metrics ingest.Config
	// Query bounds every query: time range, page size, regex scan
	// budget, timeout, reply size, metrics points.
	Query query.Config
	// MaxLineBytes cuts longer lines (default 64 KiB).
	MaxLineBytes int
	// StartTimeout bounds connecting to ClickHouse in New.
	StartTimeout time.Duration

	// wrapStore lets tests interpose on the store (crash injection).
	wrapStore func(store.Store) store.Store
}

// Module returns the service's module for the host.
func Module(cfg Config) app.Module {
	return app.Module{Name: Name, Migrations: migrations.FS, New: func(d app.Deps) (app.Service, error) { return New(cfg, d) }}
}

// Service is the running log-ingest service.
type Service struct {
	st      store.Store
	logs    *ingest.Consumer[store.Line]
	metrics *ingest.Consumer[store.Sample]
	job     *retention.Job
}

// New builds the service: it opens the store (ClickHouse, creating its
// tables, or the Postgres schema the host migrated), registers the
// operations and the plan projection. Its consumers and the retention job
// start in Run.
func New(cfg Config, d app.Deps) (*Service, error) {
	if d.DB == nil {
		return nil, errors.New("logingest: needs Postgres")
	}
	if err := cfg.Retention.Validate(); err != nil {
		return nil, err
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	if cfg.Query.Now == nil {
		cfg.Query.Now = d.Now
	}
	var st store.Store = postgres.New(d.DB)
	if cfg.ClickHouseURL != "" {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.StartTimeout)
		defer cancel()
		chs, err := clickhouse.Open(ctx, cfg.ClickHouseURL)
		if err != nil {
			return nil, fmt.Errorf("logingest: %w", err)
		}
		d.Log.Info("log store: ClickHouse", "version", chs.Version())
		st = chs
	} else {
		d.Log.Info("log store: Postgres (no ClickHouse configured)")
	}
	if cfg.wrapStore != nil {
		st = cfg.wrapStore(st)
	}
	m, err := newMetrics(d.Metrics)
	if err != nil {
		_ = st.Close()
		return nil, err
	}

	plans := retention.NewPlans(d.DB, d.Now)
	if err := plans.Register(d.Router); err != nil {
		_ = st.Close()
		return nil, err
	}
	job, err := retention.New(cfg.Retention, retention.Deps{Store: st, Plans: plans, DB: d.DB, Events: d.Events, JS: d.JS,
		Log: d.Log.With("component", "retention"), Now: d.Now, Metrics: d.Metrics})
	if err != nil {
		_ = st.Close()
		return nil, err
	}

	lc := cfg.Logs
	lc.Name, lc.Stream, lc.Subject = LogsConsumer, events.StreamLogs, events.AgentLogs("*", "*")
	maxLine := cfg.MaxLineBytes
	logs := ingest.NewConsumer(lc, Name, d.JS, ingest.Sink[store.Line]{
		Decode: func(subject string, data []byte) ([]store.Line, int, error) {
			lines, err := ingest.DecodeLogs(subject, data, maxLine)
			return lines, len(data), err
		},
		Write:   st.InsertLines,
		Flushed: m.flushed(LogsConsumer),
	}, d.Log.With("component", "ingest"), m.deadLetter(LogsConsumer))

	mc := cfg.Metrics
	mc.Name, mc.Stream, mc.Subject = MetricsConsumer, events.StreamMetrics, events.AgentMetrics("*", "*")
	metrics := ingest.NewConsumer(mc, Name, d.JS, ingest.Sink[store.Sample]{
		Decode: func(subject string, data []byte) ([]store.Sample, int, error) {
			s, err := ingest.DecodeMetrics(subject, data)
			return s, len(data), err
		},
		Write:   st.InsertSamples,
		Flushed: m.flushed(MetricsConsumer),
	}, d.Log.With("component", "ingest"), m.deadLetter(MetricsConsumer))

	q := query.New(st, cfg.Query)
	endpoint.Handle(d.Endpoints, events.OpLogsQuery, func(ctx context.Context, req events.LogsQueryRequest) (events.LogsPage, error) {
		org, err := caller(ctx, events.PermLogsRead)
		if err != nil {
			return events.LogsPage{}, err
		}
		return q.Logs(ctx, org, req)
	})
	endpoint.Handle(d.Endpoints, events.OpLogsMetrics, func(ctx context.Context, req events.AgentMetricsRequest) (events.AgentMetricsReply, error) {
		org, err := caller(ctx, events.PermAgentsRead)
		if err != nil {
			return events.AgentMetricsReply{}, err
		}
		return q.Metrics(ctx, org, req)
	})
	endpoint.Handle(d.Endpoints, events.OpLogsRetention, func(ctx context.Context, _ events.Empty) (events.LogsRetentionStatus, error) {
		org, err := caller(ctx, events.PermLogsRead)
		if err != nil {
			return events.LogsRetentionStatus{}, err
		}
		return job.Status(ctx, org)
	})
	return &Service{st: st, logs: logs, metrics: metrics, job: job}, nil
}

// caller returns the org a request acts in. The gateway has checked the
// caller's permission; a role in the headers is checked again here, so a
// request forwarded with a weaker role than the operation needs fails.
func caller(ctx context.Context, p events.Permission) (string, error) {
	info := reqctx.From(ctx)
	if !events.ValidToken(info.OrgID) {
		return "", events.Errorf(events.CodeForbidden, "no organisation")
	}
	if info.Role != "" && !events.Allowed(events.Role(info.Role), p) {
		return "", events.Errorf(events.CodeForbidden, "your role %q may not %s", info.Role, p)
	}
	return info.OrgID, nil
}

// Retention returns the retention job (to run it on demand).
func (s *Service) Retention() *retention.Job { return s.job }

// Run consumes LOGS and METRICS and runs the retention job until ctx
// ends, then stores what the consumers hold and closes the store.
func (s *Service) Run(ctx context.Context) error {
	defer s.st.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 3)
	for _, f := range []func(context.Context) error{s.logs.Run, s.metrics.Run, s.job.Run} {
		go func() {
			err := f(ctx)
			cancel() // one stopping stops the others
			errc <- err
		}()
	}
	return errors.Join(<-errc, <-errc, <-errc)
}
