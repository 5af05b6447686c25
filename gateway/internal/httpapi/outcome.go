// Package httpapi holds the helpers every gateway handler uses: JSON in
// (Decode) and out (JSON), and errors out as RFC 9457 problem documents
// (Error, ProblemFor). Route packages import it; it imports nothing of the
// gateway but reqctx, so any package may use it without an import cycle.
package httpapi

import (
	"context"
	"net/http"
	"sync"
)

// Outcome collects what a handler learns about its request that the access
// log and the metrics must report once the handler returns: the cause of a
// 5xx answer and whether the router matched no route. The gateway's
// outermost middleware attaches one per request; handlers reach it through
// Error and MarkUnmatched. It is safe for concurrent use because a handler
// may answer from a goroutine it started.
type Outcome struct {
	mu        sync.Mutex
	err       error
	unmatched bool
}

type outcomeKey struct{}

// WithOutcome returns ctx carrying a fresh Outcome, and the Outcome.
func WithOutcome(ctx context.Context) (context.Context, *Outcome) {
	o := &Outcome{}
	return context.WithValue(ctx, outcomeKey{}, o), o
}

func outcomeFrom(ctx context.Context) *Outcome {
	o, _ := ctx.Value(outcomeKey{}).(*Outcome)
	return o
}

// Err is the cause of the request's 5xx answer, or nil.
func (o *Outcome) Err() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

// Unmatched reports whether no route matched the request. Metrics label
// such requests with a fixed route value so that scanners probing random
// paths cannot blow up the label cardinality.
func (o *Outcome) Unmatched() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.unmatched
}

func (o *Outcome) setErr(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err == nil {
		o.err = err
	}
}

// MarkUnmatched records that no route matched r; the router's 404 and 405
// handlers call it.
func MarkUnmatched(r *http.Request) {
	if o := outcomeFrom(r.Context()); o != nil {
		o.mu.Lock()
		o.unmatched = true
		o.mu.Unlock()
	}
}
