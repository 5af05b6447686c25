package exports

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"sync"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/audit/internal/export"
	"github.com/infrapilot/infrapilot/services/audit/internal/objects"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
	"github.com/nats-io/nats.go/jetstream"
)

// WorkerDurable is the durable consumer the instances share the jobs
// through.
const WorkerDurable = "audit_exports_worker"

// Run runs Config.Workers workers until ctx ends. A job cut off by the end
// of ctx is handed back (Nak) and started over by whoever gets it next.
func (s *Service) Run(ctx context.Context) error {
	cfg := events.Durable(WorkerDurable, events.DomainEvent("audit", "*", events.AuditAggExport, "*"))
	cfg.AckWait = s.cfg.AckWait
	cfg.MaxAckPending = 256
	cons, err := s.d.JS.CreateOrUpdateConsumer(ctx, events.StreamAudit, cfg)
	if err != nil {
		return fmt.Errorf("audit exports: consumer: %w", err)
	}
	var wg sync.WaitGroup
	for range s.cfg.Workers {
		wg.Go(func() { s.work(ctx, cons) })
	}
	wg.Wait()
	return nil
}

// work takes one job message at a time.
func (s *Service) work(ctx context.Context, cons jetstream.Consumer) {
	for ctx.Err() == nil {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		batch, err := cons.Fetch(1, jetstream.FetchContext(fctx))
		if err != nil {
			cancel()
			if ctx.Err() == nil {
				s.log.Warn("audit exports: fetch", "err", err)
				sleep(ctx, time.Second)
			}
			continue
		}
		for msg := range batch.Messages() {
			s.handle(ctx, msg)
		}
		cancel()
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// handle runs the job a requested event names, unless it is over; the
// job's other events need nothing from a worker.
func (s *Service) handle(ctx context.Context, msg jetstream.Msg) {
	env, err := events.Unmarshal(msg.Data())
	if err != nil || env.Type != (events.AuditExportRequested{}).EventType() || !events.ValidToken(env.OrgID) {
		_ = msg.Ack()
		return
	}
	org, id := env.OrgID, env.Aggregate.ID
	log := s.log.With("org_id", org, "export_id", id)
	r := ref(org, id)
	evs, version, err := s.d.Events.Load(ctx, r)
	if err != nil {
		log.Warn("audit exports: load job", "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	st := fold(org, evs, s.d.Buckets.ExportTTL())
	if !st.exists || terminal(st.job.Status) {
		_ = msg.Ack()
		return
	}
	m := events.Meta{OrgID: org, Actor: events.SystemActor("audit"), CorrelationID: env.CorrelationID, CausationID: env.ID}
	if st.job.Attempts >= s.cfg.MaxAttempts {
		_, err := s.append(ctx, r, version, m, events.AuditExportFailed{
			Error: fmt.Sprintf("interrupted %d times; request the export again", st.job.Attempts)})
		s.settle(msg, err, log)
		return
	}
	version, err = s.append(ctx, r, version, m, events.AuditExportStarted{Attempt: st.job.Attempts + 1})
	if err != nil {
		s.settle(msg, err, log) // someone else moved the job on: look again
		return
	}
	stop := heartbeat(msg, s.cfg.AckWait/3)
	jctx, cancel := context.WithTimeout(ctx, s.cfg.JobTimeout)
	done, werr := s.write(jctx, org, id, st.requested)
	cancel()
	stop()
	if ctx.Err() != nil {
		_ = msg.Nak() // stopping: the next instance starts it over
		return
	}
	var p events.Payload = done
	if werr != nil {
		log.Error("audit export failed", "err", werr)
		text := events.AsError(werr).Message
		if errors.Is(werr, context.DeadlineExceeded) {
			text = fmt.Sprintf("the export took longer than %s", s.cfg.JobTimeout)
		}
		p = events.AuditExportFailed{Error: text}
	}
	_, err = s.append(ctx, r, version, m, p)
	s.settle(msg, err, log)
}

// settle acks a message whose job was moved on, or hands it back for a
// retry after a failed append.
func (s *Service) settle(msg jetstream.Msg, err error, log *slog.Logger) {
	if err == nil {
		_ = msg.Ack()
		return
	}
	if !errors.Is(err, eventstore.ErrConflict) {
		log.Warn("audit exports: append", "err", err)
	}
	_ = msg.NakWithDelay(time.Second)
}

func (s *Service) append(ctx context.Context, r eventstore.Ref, version uint64, m events.Meta, p events.Payload) (uint64, error) {
	env, err := events.New(p, events.Aggregate{Type: r.Type, ID: r.ID}, m)
	if err != nil {
		return 0, err
	}
	return s.d.Events.Append(context.WithoutCancel(ctx), r, version, env)
}

// heartbeat renews msg's delivery every interval until stop is called, so
// no other instance starts the job while this one writes it.
func heartbeat(msg jetstream.Msg, interval time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// write streams the job's entries through its format's encoder into its
// object.
func (s *Service) write(ctx context.Context, org, id string, p events.AuditExportRequested) (events.AuditExportCompleted, error) {
	f := export.Format(p.Format)
	bucket, kind := events.AuditBucketExports, "exports"
	if p.Purpose == events.AuditExportPurposeArchive {
		bucket, kind = events.AuditBucketArchive, "archives"
	}
	name := objects.Name(org, kind, id, f.Ext())
	out := events.AuditExportCompleted{Bucket: bucket, Object: name}
	src, err := s.entries(ctx, org, p)
	if err != nil {
		return out, err
	}
	w, err := s.d.Buckets.Put(ctx, bucket, name, fmt.Sprintf("audit %s %s of org %s", p.Purpose, id, org), func(w io.Writer) error {
		enc, err := export.NewEncoder(f, w, s.cfg.Options)
		if err != nil {
			return err
		}
		for e, err := range src {
			if err != nil {
				return err
			}
			if err := enc.Encode(e); err != nil {
				return err
			}
			if out.Rows == 0 {
				out.FirstIndex = e.Index
			}
			out.Rows++
			out.LastIndex = e.Index
		}
		return enc.Flush()
	})
	if err != nil {
		return out, err
	}
	out.Bytes, out.SHA256 = w.Bytes, w.SHA256
	return out, nil
}

// entries is the job's source: the entries in the time range of an
// export, or every entry of an archive's index range — an archive is
// refused if the projection has a gap in it, since what it holds is about
// to be pruned.
func (s *Service) entries(ctx context.Context, org string, p events.AuditExportRequested) (iter.Seq2[events.AuditEntry, error], error) {
	if p.Purpose != events.AuditExportPurposeArchive {
		from, err := time.Parse(time.RFC3339Nano, p.From)
		if err != nil {
			return nil, events.Invalid("export: bad from %q", p.From)
		}
		to, err := time.Parse(time.RFC3339Nano, p.To)
		if err != nil {
			return nil, events.Invalid("export: bad to %q", p.To)
		}
		return s.d.Store.Entries(ctx, org, from, to), nil
	}
	if p.FromIndex == 0 || p.ToIndex < p.FromIndex {
		return nil, events.Invalid("archive: bad index range %d..%d", p.FromIndex, p.ToIndex)
	}
	return func(yield func(events.AuditEntry, error) bool) {
		next := p.FromIndex
		for r, err := range s.d.Store.Range(ctx, org, p.FromIndex, p.ToIndex) {
			if err == nil && r.Index != next {
				err = fmt.Errorf("archive: the projection lacks entry %d", next)
			}
			if !yield(r.AuditEntry, err) || err != nil {
				return
			}
			next++
		}
		if next != p.ToIndex+1 {
			yield(events.AuditEntry{}, fmt.Errorf("archive: the projection lacks entry %d", next))
		}
	}, nil
}
