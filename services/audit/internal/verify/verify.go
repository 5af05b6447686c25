// Package verify checks an org's audit chain as the Postgres projection
// holds it: it recomputes every entry's hash and link over a range, and
// cross-checks each entry against the AUDIT stream (the entry at the same
// index there has the same hash) and against the latest signed checkpoint
// (its signature verifies and its hash is the entry's at its index).
//
// The database alone can be rewritten consistently by someone who can
// write to it; the stream (append-only, deny delete and purge) and the
// checkpoint (signed with a key the database's writer would also have to
// steal) are what such a rewrite cannot match.
package verify

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"iter"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/audit/chaincheck"
	"github.com/infrapilot/infrapilot/services/audit/internal/chainstream"
	"github.com/infrapilot/infrapilot/services/audit/internal/store"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
)

// Keys looks up checkpoint verification keys by id.
type Keys interface {
	Public(id string) (ed25519.PublicKey, bool)
}

// Verifier verifies chains.
type Verifier struct {
	store  *store.Store
	stream *chainstream.Reader
	keys   Keys
	events *eventstore.Store
	// floor is the stream sequence up to which the projection is
	// complete: an entry above it may simply not be projected yet.
	floor func(ctx context.Context) (uint64, error)
}

// New returns a verifier.
func New(st *store.Store, stream *chainstream.Reader, keys Keys, es *eventstore.Store, floor func(context.Context) (uint64, error)) *Verifier {
	return &Verifier{store: st, stream: stream, keys: keys, events: es, floor: floor}
}

// Verify checks org's chain over the range req names.
func (v *Verifier) Verify(ctx context.Context, org string, req events.AuditVerifyRequest) (events.AuditVerifyReply, error) {
	base, err := v.retained(ctx, org)
	if err != nil {
		return events.AuditVerifyReply{}, err
	}
	from, to, empty, err := v.bounds(ctx, org, req, base)
	if err != nil || empty {
		return events.AuditVerifyReply{OK: err == nil}, err
	}
	floor, err := v.floor(ctx)
	if err != nil {
		return events.AuditVerifyReply{}, err
	}
	r := &run{org: org, reply: events.AuditVerifyReply{FirstIndex: from}}
	if err := r.checkpoint(ctx, v); err != nil {
		return events.AuditVerifyReply{}, err
	}
	if err := r.walk(ctx, v, from, to, floor); err != nil {
		return events.AuditVerifyReply{}, err
	}
	return r.finish(), nil
}

// retained returns the index the projection was last pruned through (0
// when never), from the retention events on the stream.
func (v *Verifier) retained(ctx context.Context, org string) (uint64, error) {
	evs, _, err := v.events.Load(ctx, eventstore.Ref{OrgID: org, Type: events.AuditAggRetention, ID: org})
	if err != nil {
		return 0, fmt.Errorf("audit verify: retention of %s: %w", org, err)
	}
	var through uint64
	for _, env := range evs {
		var p events.AuditRetentionApplied
		if env.Type == p.EventType() && json.Unmarshal(env.Data, &p) == nil {
			through = max(through, p.ThroughIndex)
		}
	}
	return through, nil
}

// bounds turns the request into an index range; to == 0 is open-ended.
func (v *Verifier) bounds(ctx context.Context, org string, req events.AuditVerifyRequest, base uint64) (from, to uint64, empty bool, err error) {
	tFrom, err := parseTime("from", req.From)
	if err != nil {
		return 0, 0, false, err
	}
	tTo, err := parseTime("to", req.To)
	if err != nil {
		return 0, 0, false, err
	}
	from, to = req.FromIndex, req.ToIndex
	if (from == 0 && !tFrom.IsZero()) || (to == 0 && !tTo.IsZero()) {
		lo, hi, ok, err := v.store.IndexBounds(ctx, org, tFrom, tTo)
		if err != nil {
			return 0, 0, false, err
		}
		if !ok {
			return 0, 0, true, nil
		}
		if from == 0 && !tFrom.IsZero() {
			from = lo
		}
		if to == 0 && !tTo.IsZero() {
			to = hi
		}
	}
	from = max(from, base+1)
	return from, to, to != 0 && to < from, nil
}

func parseTime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, events.Invalid("%s is not an RFC 3339 time", field).WithFields(events.FieldError{Field: field, Message: "want an RFC 3339 time"})
	}
	return t, nil
}

// run is one verification in progress.
type run struct {
	org   string
	cp    *chainstream.Checkpoint
	reply events.AuditVerifyReply
}

func (r *run) add(index uint64, format string, args ...any) {
	r.addProblem(chaincheck.Problem{Index: index, Reason: fmt.Sprintf(format, args...)})
}

func (r *run) addProblem(p chaincheck.Problem) {
	if len(r.reply.Findings) < chaincheck.MaxFindings {
		r.reply.Findings = append(r.reply.Findings, events.AuditFinding{Index: p.Index, Reason: p.Reason})
	}
	if r.reply.FirstBadIndex == 0 || p.Index < r.reply.FirstBadIndex {
		r.reply.FirstBadIndex, r.reply.Reason = p.Index, p.Reason
	}
}

// checkpoint loads the org's latest checkpoint from the stream and checks
// its signature.
func (r *run) checkpoint(ctx context.Context, v *Verifier) error {
	cp, ok, err := v.stream.LastCheckpoint(ctx, r.org)
	if err != nil || !ok {
		return err
	}
	r.cp = &cp
	r.reply.Checkpoint = &cp.SignedCheckpoint
	pub, known := v.keys.Public(cp.KeyID)
	switch {
	case !known:
		r.add(cp.Index, "the latest checkpoint is signed by unknown key %q", cp.KeyID)
	case cp.OrgID != r.org:
		r.add(cp.Index, "the latest checkpoint is for org %q", cp.OrgID)
	case !cp.Verify(pub):
		r.add(cp.Index, "the latest checkpoint's signature does not verify")
	default:
		r.reply.CheckpointVerified = true
	}
	return nil
}

func (r *run) finish() events.AuditVerifyReply {
	r.reply.OK = r.reply.FirstBadIndex == 0 && len(r.reply.Findings) == 0
	if r.reply.Checked == 0 {
		r.reply.FirstIndex = 0
	}
	return r.reply
}

// walk compares the database's entries from..to with the stream's, index
// by index.
func (r *run) walk(ctx context.Context, v *Verifier, from, to, floor uint64) error {
	hint := uint64(0)
	if row, ok, err := v.store.Entry(ctx, r.org, max(from-1, 1)); err != nil {
		return err
	} else if ok {
		hint = row.StreamSeq
	}
	st, err := openStream(ctx, v.stream, r.org, hint, max(from-1, 1))
	if err != nil {
		return err
	}
	defer st.close()

	linker := chaincheck.NewLinker(r.org, 0, "", from > 1)
	if from > 1 {
		if prev, ok, err := st.at(from - 1); err != nil {
			return err
		} else if ok {
			linker.Reset(from-1, prev.Hash)
		}
	}
	rows := peekable(v.store.Range(ctx, r.org, from, to))
	defer rows.stop()
	for i := from; to == 0 || i <= to; i++ {
		row, hasRow, err := rows.peek()
		if err != nil {
			return err
		}
		s, onStream, err := st.at(i)
		if err != nil {
			return err
		}
		if !hasRow || row.Index > i {
			if !onStream {
				if hasRow {
					r.add(row.Index, "entry %d is in the database but not on the stream: it was inserted", row.Index)
				}
				return nil
			}
			if s.Seq > floor {
				return nil // not projected yet: the end of what can be checked
			}
			r.add(i, "entry %d is on the stream but missing from the database: it was deleted", i)
			linker.Reset(i, s.Hash)
			continue
		}
		rows.advance()
		if p := linker.Check(row.AuditEntry); p != nil {
			r.addProblem(*p)
		}
		r.reply.Checked++
		r.reply.LastIndex = i
		switch {
		case !onStream:
			r.add(i, "entry %d is in the database but not on the stream: it was inserted", i)
		case s.Hash != row.Hash:
			r.add(i, "entry %d differs from the stream's entry %d: the database copy was altered", i, i)
		}
		if r.cp != nil && r.cp.Index == i && r.cp.Hash != row.Hash {
			r.add(i, "entry %d does not match the signed checkpoint of %s: the history up to index %d was rewritten", i, r.cp.Time, i)
		}
	}
	return nil
}

// stream walks a chain on the stream in index order.
type stream struct {
	next func() (chainstream.Entry, error, bool)
	stop func()
	cur  *chainstream.Entry
	done bool
}

// openStream starts reading org's chain at stream sequence hint, falling
// back to the beginning when the hint does not lead to index first or
// below (a database row's stream sequence is only a hint: it could have
// been edited).
func openStream(ctx context.Context, rd *chainstream.Reader, org string, hint, first uint64) (*stream, error) {
	s := &stream{}
	s.next, s.stop = iter.Pull2(rd.Entries(ctx, org, hint))
	if hint == 0 {
		return s, nil
	}
	if err := s.fill(); err != nil {
		s.close()
		return nil, err
	}
	if s.cur == nil || s.cur.Index > first {
		s.close()
		return openStream(ctx, rd, org, 0, first)
	}
	return s, nil
}

func (s *stream) fill() error {
	if s.cur != nil || s.done {
		return nil
	}
	e, err, ok := s.next()
	if !ok {
		s.done = true
		return nil
	}
	if err != nil {
		return err
	}
	s.cur = &e
	return nil
}

// at returns the stream's entry at index i; calls must ask for
// non-decreasing indices.
func (s *stream) at(i uint64) (chainstream.Entry, bool, error) {
	for {
		if err := s.fill(); err != nil {
			return chainstream.Entry{}, false, err
		}
		if s.cur == nil {
			return chainstream.Entry{}, false, nil
		}
		switch {
		case s.cur.Index == i:
			return *s.cur, true, nil
		case s.cur.Index > i:
			return chainstream.Entry{}, false, nil
		}
		s.cur = nil
	}
}

func (s *stream) close() { s.stop() }

// rowIter is a peekable pull iterator over database rows.
type rowIter struct {
	next func() (store.Row, error, bool)
	stop func()
	cur  *store.Row
	err  error
	done bool
}

func peekable(seq iter.Seq2[store.Row, error]) *rowIter {
	it := &rowIter{}
	it.next, it.stop = iter.Pull2(seq)
	return it
}

func (it *rowIter) peek() (store.Row, bool, error) {
	if it.cur == nil && !it.done {
		r, err, ok := it.next()
		switch {
		case !ok:
			it.done = true
		case err != nil:
			it.done, it.err = true, err
		default:
			it.cur = &r
		}
	}
	if it.err != nil {
		return store.Row{}, false, it.err
	}
	if it.cur == nil {
		return store.Row{}, false, nil
	}
	return *it.cur, true, nil
}

func (it *rowIter) advance() { it.cur = nil }
