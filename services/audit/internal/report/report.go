// Package report computes compliance reports from an org's audit entries:
// SOC 2 (CC6.1, CC6.2, CC6.3, CC7.2), HIPAA, access review, activity
// summary and security events, each rendered as JSON or CSV.
//
// A report is computed in one pass over the entries of its range, as the
// Source streams them: memory grows with the number of distinct keys
// (actions, actors, days, members), not with the number of entries, and
// every evidence list is capped at Options.MaxRows (Section.Truncated says
// so; totals stay exact).
package report

import (
	"context"
	"errors"
	"iter"
	"time"

	"github.com/infrapilot/infrapilot/events"
)

// Source yields an org's audit entries whose time lies in [from, to), in
// chain order (ascending index). The audit service's Postgres reader and
// the ClickHouse projection implement it.
type Source interface {
	Entries(ctx context.Context, org string, from, to time.Time) iter.Seq2[events.AuditEntry, error]
}

// Kind names a report.
type Kind string

// The reports.
const (
	KindSOC2         Kind = "soc2"
	KindHIPAA        Kind = "hipaa"
	KindAccessReview Kind = "access_review"
	KindActivity     Kind = "activity"
	KindSecurity     Kind = "security"
)

// Kinds lists every report.
var Kinds = []Kind{KindSOC2, KindHIPAA, KindAccessReview, KindActivity, KindSecurity}

// Valid reports whether k is a known report.
func (k Kind) Valid() bool {
	for _, o := range Kinds {
		if k == o {
			return true
		}
	}
	return false
}

// Request asks for a report over the entries whose time lies in [From, To).
type Request struct {
	Kind Kind      `json:"kind"`
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// Validate checks the request and names each bad field.
func (r Request) Validate() error {
	var fields []events.FieldError
	if !r.Kind.Valid() {
		fields = append(fields, events.FieldError{Field: "kind", Message: "must be one of soc2, hipaa, access_review, activity, security"})
	}
	if r.From.IsZero() {
		fields = append(fields, events.FieldError{Field: "from", Message: "is required"})
	}
	if r.To.IsZero() {
		fields = append(fields, events.FieldError{Field: "to", Message: "is required"})
	} else if !r.To.After(r.From) {
		fields = append(fields, events.FieldError{Field: "to", Message: "must be after from"})
	}
	if len(fields) > 0 {
		return events.Invalid("invalid report request").WithFields(fields...)
	}
	return nil
}

// Options tune Build.
type Options struct {
	// MaxRows caps each evidence list (default 10,000).
	MaxRows int
	// Now stamps GeneratedAt (time.Now when nil).
	Now func() time.Time
}

// Report is a computed report. FirstIndex and LastIndex are the chain
// indexes the report was computed from, so an auditor can verify exactly
// that range of the chain (GET /audit/verify) before relying on it.
type Report struct {
	Kind        Kind      `json:"kind"`
	OrgID       string    `json:"org_id"`
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	GeneratedAt time.Time `json:"generated_at"`
	Entries     uint64    `json:"entries"`
	FirstIndex  uint64    `json:"first_index,omitempty"`
	LastIndex   uint64    `json:"last_index,omitempty"`
	Sections    []Section `json:"sections"`
}

// Section is one part of a report: a control, a table of counts or an
// evidence list. Rows are ordered as the columns; Total counts the entries
// the section is about (not its rows).
type Section struct {
	ID          string     `json:"id"`
	Title       string     `json:"title"`
	Description string     `json:"description,omitempty"`
	Total       uint64     `json:"total"`
	Columns     []string   `json:"columns"`
	Rows        [][]string `json:"rows"`
	Truncated   bool       `json:"truncated,omitempty"`
}

// builder consumes entries one at a time and renders the sections at the
// end.
type builder interface {
	add(e events.AuditEntry, inRange bool)
	sections() []Section
}

// Build computes the report req for org from src.
func Build(ctx context.Context, src Source, org string, req Request, o Options) (*Report, error) {
	if src == nil {
		return nil, errors.New("report: nil Source")
	}
	if !events.ValidToken(org) {
		return nil, events.Invalid("invalid org id")
	}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if o.MaxRows <= 0 {
		o.MaxRows = 10_000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	from, to := req.From.UTC(), req.To.UTC()
	var b builder
	readFrom := from
	switch req.Kind {
	case KindSOC2:
		b = newSOC2(o.MaxRows)
	case KindHIPAA:
		b = newHIPAA(o.MaxRows)
	case KindAccessReview:
		// Membership at the end of the range depends on everything before
		// it: read the chain from its start, count changes in the range.
		readFrom = time.Unix(0, 0).UTC()
		b = newAccessReview(o.MaxRows)
	case KindActivity:
		b = newActivity()
	case KindSecurity:
		b = newSecurity(o.MaxRows)
	}
	r := &Report{Kind: req.Kind, OrgID: org, From: from, To: to}
	for e, err := range src.Entries(ctx, org, readFrom, to) {
		if err != nil {
			return nil, err
		}
		if e.OrgID != org {
			continue // defence in depth: a source bug must not leak another org
		}
		in := inRange(e, from, to)
		if in {
			r.Entries++
			if r.FirstIndex == 0 || e.Index < r.FirstIndex {
				r.FirstIndex = e.Index
			}
			r.LastIndex = max(r.LastIndex, e.Index)
		}
		b.add(e, in)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.Sections = b.sections()
	r.GeneratedAt = o.Now().UTC()
	return r, nil
}

func inRange(e events.AuditEntry, from, to time.Time) bool {
	t, ok := entryTime(e)
	return ok && !t.Before(from) && t.Before(to)
}

func entryTime(e events.AuditEntry) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, e.Time)
	return t.UTC(), err == nil
}
