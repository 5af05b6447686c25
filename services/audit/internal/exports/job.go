// Package exports runs the audit service's export jobs: an org's entries
// over a time range (or, for the retention job's archives, an index range)
// encoded as CSV, JSONL, CEF or RFC 5424 syslog into a JetStream object
// store bucket, in the background, with a status anyone of the org with
// audit:read can follow.
//
// A job is an event-sourced aggregate ("export", id) on stream AUDIT:
// audit.export.requested, then audit.export.started per attempt, then
// audit.export.completed or audit.export.failed. The events are chained
// into the org's audit log like any other (who exported the audit log is
// itself audited). The read model (table exports) is their fold, written
// only by the projection handler.
//
// Work is distributed by a durable consumer on the export subjects, shared
// by every instance: the instance that receives a job's requested event
// runs it, renewing the delivery while it writes. If it dies, the event is
// redelivered after the ack wait and another instance starts the job over
// (attempt n+1; the object is simply written again). A job interrupted
// MaxAttempts times fails.
package exports

import (
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/audit/internal/export"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
)

// ref is the event-store aggregate of a job.
func ref(org, id string) eventstore.Ref {
	return eventstore.Ref{OrgID: org, Type: events.AuditAggExport, ID: id}
}

// state is a job folded from its events.
type state struct {
	job       events.AuditExport
	requested events.AuditExportRequested
	exists    bool
}

// fold replays a job's events. ttl is how long export files are kept, for
// ExpiresAt.
func fold(org string, evs []events.Envelope, ttl time.Duration) state {
	var s state
	for _, env := range evs {
		p, err := events.Catalogue.Decode(env)
		if err != nil {
			continue
		}
		at := env.Time.UTC().Format(time.RFC3339Nano)
		switch p := p.(type) {
		case *events.AuditExportRequested:
			s.exists, s.requested = true, *p
			f := export.Format(p.Format)
			s.job = events.AuditExport{
				ID: env.Aggregate.ID, Purpose: p.Purpose, Format: p.Format, From: p.From, To: p.To,
				FromIndex: p.FromIndex, ToIndex: p.ToIndex, Status: events.AuditExportStatusQueued,
				FileName:    fileName(org, env.Aggregate.ID, f),
				ContentType: f.ContentType(), RequestedBy: env.Actor.ID, CreatedAt: at,
			}
		case *events.AuditExportStarted:
			s.job.Status, s.job.Attempts, s.job.StartedAt = events.AuditExportStatusRunning, p.Attempt, at
			s.job.Error, s.job.FinishedAt = "", ""
		case *events.AuditExportCompleted:
			s.job.Status, s.job.FinishedAt = events.AuditExportStatusDone, at
			s.job.Bucket, s.job.Object, s.job.Rows, s.job.Bytes, s.job.SHA256 = p.Bucket, p.Object, p.Rows, p.Bytes, p.SHA256
			s.job.FirstIndex, s.job.LastIndex = p.FirstIndex, p.LastIndex
			if s.job.Purpose == events.AuditExportPurposeExport {
				s.job.ExpiresAt = env.Time.Add(ttl).UTC().Format(time.RFC3339Nano)
			}
		case *events.AuditExportFailed:
			s.job.Status, s.job.FinishedAt, s.job.Error = events.AuditExportStatusFailed, at, p.Error
		}
	}
	return s
}

// terminal reports whether a job is over.
func terminal(status string) bool {
	return status == events.AuditExportStatusDone || status == events.AuditExportStatusFailed
}

// fileName is the name a download of the job is offered under.
func fileName(org, id string, f export.Format) string {
	return "audit-" + org + "-" + id + "." + f.Ext()
}
