// Package store is the log-ingest service's one storage port: log lines
// and metric samples in, bounded queries and roll-ups out, retention
// deletes. Two adapters implement it (clickhouse for scale, postgres for
// the embedded default and small installs) and both pass the one contract
// suite in storetest.
package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
)

// Line is one stored log line. Its identity is the key (OrgID, AgentID,
// Source, Container, Time, Stream, Seq): Seq is the line's count among the
// lines of its stream carrying exactly Time (events.LogPosition), so a
// line delivered twice has the same key and is stored once.
type Line struct {
	OrgID         string
	AgentID       string
	Source        string
	Container     string
	ContainerName string
	Stack         string
	// Time has nanosecond precision.
	Time    time.Time
	Stream  string
	Seq     uint32
	Level   string
	Message string
	Raw     string
	Attrs   map[string]string
}

// Key is the line's position in the newest-first order every query
// returns, which is also its identity within an org.
func (l Line) Key() Cursor {
	return Cursor{Time: l.Time.UnixNano(), AgentID: l.AgentID, Source: l.Source, Container: l.Container, Stream: l.Stream, Seq: l.Seq}
}

// ID is a stable identifier of the line: the same line always has the
// same id.
func (l Line) ID() string {
	k := l.Key()
	h := sha256.New()
	for _, s := range []string{l.OrgID, k.AgentID, k.Source, k.Container, strconv.FormatInt(k.Time, 10), k.Stream, strconv.FormatUint(uint64(k.Seq), 10)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// Cursor is a position in the order of a query: lines are sorted by
// (Time, AgentID, Source, Container, Stream, Seq), descending.
type Cursor struct {
	Time      int64  `json:"t"`
	AgentID   string `json:"a"`
	Source    string `json:"s"`
	Container string `json:"c"`
	Stream    string `json:"st"`
	Seq       uint32 `json:"q"`
}

// Less reports whether a sorts before b in the ascending key order (so
// after b in a newest-first listing).
func (a Cursor) Less(b Cursor) bool {
	switch {
	case a.Time != b.Time:
		return a.Time < b.Time
	case a.AgentID != b.AgentID:
		return a.AgentID < b.AgentID
	case a.Source != b.Source:
		return a.Source < b.Source
	case a.Container != b.Container:
		return a.Container < b.Container
	case a.Stream != b.Stream:
		return a.Stream < b.Stream
	}
	return a.Seq < b.Seq
}

// Filter selects an org's lines. Empty fields do not filter.
type Filter struct {
	OrgID   string
	AgentID string
	// Container matches a container id, an id prefix, or a name.
	Container string
	Source    string
	Levels    []string
	// Contains is a case-insensitive substring of the raw line.
	Contains string
	// Literals are case-sensitive substrings the raw line must all
	// contain: the service derives them from a regex so that the store
	// can skip lines that cannot match before the regex runs.
	Literals []string
	// From (inclusive) and To (exclusive) bound the line time; both are
	// required.
	From, To time.Time
	// After continues a listing: only lines strictly after the cursor in
	// newest-first order.
	After *Cursor
	// Limit is the most lines returned (required, > 0).
	Limit int
}

// Sample is one metric sample of an agent's host (Scope "host", ID empty)
// or of one container, at a whole second. Its identity is (OrgID, AgentID,
// Scope, ID, Time): a sample delivered twice counts once.
type Sample struct {
	OrgID    string
	AgentID  string
	Scope    string
	ID       string
	Name     string
	Time     time.Time
	CPU      float64
	Mem      uint64
	MemLimit uint64
	RxBytes  uint64
	TxBytes  uint64
}

// RollupQuery asks for an agent's roll-ups in buckets of Step (a multiple
// of a minute) between From (inclusive) and To (exclusive).
type RollupQuery struct {
	OrgID     string
	AgentID   string
	Container string
	From, To  time.Time
	Step      time.Duration
}

// Series is the roll-up of one scope.
type Series struct {
	Scope  string
	ID     string
	Name   string
	Points []Point
}

// Point is one bucket: Time is its start.
type Point struct {
	Time     time.Time
	Samples  int
	CPUAvg   float64
	CPUMax   float64
	MemAvg   uint64
	MemMax   uint64
	MemLimit uint64
	RxRate   float64
	TxRate   float64
}

// Deleted counts what a retention delete removed.
type Deleted struct {
	Lines   int64
	Samples int64
}

// Add sums two counts.
func (d Deleted) Add(o Deleted) Deleted {
	return Deleted{Lines: d.Lines + o.Lines, Samples: d.Samples + o.Samples}
}

// Store is the port. Implementations are safe for concurrent use; every
// method honours ctx (its deadline bounds the statement).
type Store interface {
	// InsertLines stores lines, skipping those already stored (same key).
	// It is idempotent: inserting the same lines again, in any grouping,
	// changes nothing.
	InsertLines(ctx context.Context, lines []Line) error
	// QueryLines returns up to f.Limit distinct lines matching f, newest
	// first (descending key order).
	QueryLines(ctx context.Context, f Filter) ([]Line, error)
	// InsertSamples stores metric samples, idempotently.
	InsertSamples(ctx context.Context, samples []Sample) error
	// Rollup returns the series of an agent, host first and then the
	// containers by id, each with its points in time order.
	Rollup(ctx context.Context, q RollupQuery) ([]Series, error)
	// Scopes counts the series (host and containers) Rollup would return.
	Scopes(ctx context.Context, q RollupQuery) (int, error)
	// ExpiredOrgs lists the orgs holding lines or samples older than
	// before.
	ExpiredOrgs(ctx context.Context, before time.Time) ([]string, error)
	// DeleteBefore deletes the lines and samples of the given orgs older
	// than before, and counts them per org (orgs with nothing deleted are
	// left out).
	DeleteBefore(ctx context.Context, orgs []string, before time.Time) (map[string]Deleted, error)
	// DropBefore deletes every org's lines and samples older than before
	// (an adapter may round down to whole days to drop them cheaply).
	DropBefore(ctx context.Context, before time.Time) (Deleted, error)
	// Ping checks the store answers.
	Ping(ctx context.Context) error
	// Close releases the store's connections.
	Close() error
}

// FloorMinute is t rounded down to the minute: samples are deleted by whole
// minutes.
func FloorMinute(t time.Time) time.Time { return t.Truncate(time.Minute) }

// Rate is a counter's growth per second between two samples: (hi-lo)/(tHi-tLo),
// zero when the two are the same sample.
func Rate(lo, hi uint64, tLo, tHi int64) float64 {
	if tHi <= tLo || hi < lo {
		return 0
	}
	return float64(hi-lo) / float64(tHi-tLo)
}

// Total sums per-org counts.
func Total(m map[string]Deleted) Deleted {
	var t Deleted
	for _, d := range m {
		t = t.Add(d)
	}
	return t
}
