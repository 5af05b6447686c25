// Package query answers the log-ingest service's read operations over the
// store port: log searches (filters, regex, cursor pagination, newest
// first) and metric roll-ups, each bounded in time range, size and time so
// that one tenant cannot exhaust the store.
//
// Regular expressions are evaluated here, in Go, identically whatever the
// store: neither store's regex engine has Go's (RE2) semantics exactly —
// Postgres has POSIX AREs, and ClickHouse 18.16's match() misses
// case-insensitive matches ("(?i)…") because it pre-filters on a
// case-sensitive literal. The store narrows the candidates with every
// other filter plus the literal substrings any match must contain
// (derived from the parsed expression, so the narrowing never loses a
// match), and the service scans at most RegexScanBudget candidates per
// request: a page can then come back short, with a cursor to go on.
package query

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/events/logline"
	"github.com/infrapilot/infrapilot/services/logingest/internal/store"
)

// Config bounds the queries. Zero fields take the defaults.
type Config struct {
	// DefaultRange is the range of a query without from (default
	// events.LogsDefaultRange); MaxRange the widest allowed (default
	// events.LogsMaxRange).
	DefaultRange, MaxRange time.Duration
	// MaxLimit caps a page (default events.LogsMaxLimit).
	MaxLimit int
	// RegexScanBudget is how many candidate lines one regex request may
	// examine (default 20000); ScanPage how many it reads per store call
	// (default 1000).
	RegexScanBudget, ScanPage int
	// Timeout bounds each request's store work (default 10s); the caller's
	// deadline applies when shorter.
	Timeout time.Duration
	// MaxReplyBytes bounds a page's encoded size (default
	// events.LogsMaxReplyBytes): NATS carries one reply per request.
	MaxReplyBytes int
	// MetricsMaxPoints bounds the points of one metrics reply across its
	// series (default 20000), and MetricsMaxSeriesPoints those of one
	// series (default 1440).
	MetricsMaxPoints, MetricsMaxSeriesPoints int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.DefaultRange <= 0 {
		c.DefaultRange = events.LogsDefaultRange
	}
	if c.MaxRange <= 0 {
		c.MaxRange = events.LogsMaxRange
	}
	if c.MaxLimit <= 0 {
		c.MaxLimit = events.LogsMaxLimit
	}
	if c.RegexScanBudget <= 0 {
		c.RegexScanBudget = 20000
	}
	if c.ScanPage <= 0 {
		c.ScanPage = 1000
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.MaxReplyBytes <= 0 {
		c.MaxReplyBytes = events.LogsMaxReplyBytes
	}
	if c.MetricsMaxPoints <= 0 {
		c.MetricsMaxPoints = 20000
	}
	if c.MetricsMaxSeriesPoints <= 0 {
		c.MetricsMaxSeriesPoints = 1440
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Service answers queries over a store.
type Service struct {
	st  store.Store
	cfg Config
}

// New returns a query service over st.
func New(st store.Store, cfg Config) *Service {
	cfg.setDefaults()
	return &Service{st: st, cfg: cfg}
}

// fields collects field errors of a request.
type fields []events.FieldError

func (f *fields) bad(field, format string, args ...any) {
	*f = append(*f, events.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (f fields) err() error {
	if len(f) == 0 {
		return nil
	}
	return events.Invalid("invalid query").WithFields(f...)
}

// timeRange parses from and to (RFC 3339) with defaults and a maximum
// width.
func (f *fields) timeRange(from, to string, now time.Time, def, maxRange time.Duration) (time.Time, time.Time) {
	parse := func(name, v string) (time.Time, bool) {
		if v == "" {
			return time.Time{}, false
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			f.bad(name, "want an RFC 3339 time, e.g. 2026-11-29T10:00:00Z")
			return time.Time{}, false
		}
		return t.UTC(), true
	}
	t1, ok := parse("to", to)
	if !ok {
		t1 = now.UTC()
	}
	t0, ok := parse("from", from)
	if !ok {
		t0 = t1.Add(-def)
	}
	switch {
	case !t0.Before(t1):
		f.bad("from", "must be before to")
	case t1.Sub(t0) > maxRange:
		f.bad("from", "the range may span at most %s", human(maxRange))
	}
	return t0, t1
}

func human(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.String()
}

// EncodeCursor and DecodeCursor turn a store position into the opaque
// next_cursor of the API and back.
func EncodeCursor(c store.Cursor) string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor parses a cursor made by EncodeCursor.
func DecodeCursor(s string) (store.Cursor, bool) {
	var c store.Cursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) > 1024 {
		return c, false
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || c.Source == "" {
		return c, false
	}
	return c, true
}

// Entry converts a stored line to its API form.
func Entry(l store.Line) events.LogEntry {
	return events.LogEntry{
		ID: l.ID(), Time: l.Time, AgentID: l.AgentID, Source: l.Source, Container: l.Container,
		ContainerName: l.ContainerName, Stack: l.Stack, Stream: l.Stream, Level: l.Level,
		Message: l.Message, Line: l.Raw, Attrs: l.Attrs,
	}
}

// entrySize estimates the encoded size of an entry (JSON escaping can
// grow a string up to six times; the slack covers the common case and
// MaxReplyBytes is set well under the NATS payload limit).
func entrySize(l store.Line) int {
	n := 256 + len(l.Raw) + len(l.Message) + len(l.Container) + len(l.ContainerName) + len(l.Stack) + len(l.AgentID)
	for k, v := range l.Attrs {
		n += len(k) + len(v) + 6
	}
	return n + n/8
}

// Logs answers events.OpLogsQuery for org.
func (s *Service) Logs(ctx context.Context, org string, req events.LogsQueryRequest) (events.LogsPage, error) {
	f, re, err := s.filter(org, req)
	if err != nil {
		return events.LogsPage{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	limit := f.Limit
	page := events.LogsPage{Items: []events.LogEntry{}}
	size := 0
	for {
		ask := limit - len(page.Items)
		if re != nil {
			ask = min(s.cfg.ScanPage, s.cfg.RegexScanBudget-page.Scanned)
		}
		f.Limit = ask
		lines, err := s.st.QueryLines(ctx, f)
		if err != nil {
			return events.LogsPage{}, storeError(ctx, err)
		}
		for _, l := range lines {
			prev := f.After
			k := l.Key()
			f.After = &k
			page.Scanned++
			if re != nil && !re.MatchString(l.Raw) {
				continue
			}
			if size += entrySize(l); size > s.cfg.MaxReplyBytes && len(page.Items) > 0 {
				// The reply is full: this line starts the next page.
				page.Scanned--
				page.NextCursor = EncodeCursor(*prev)
				return page, nil
			}
			page.Items = append(page.Items, Entry(l))
			if len(page.Items) == limit {
				page.NextCursor = EncodeCursor(k)
				return page, nil
			}
		}
		if len(lines) < ask {
			return page, nil // the end of the range
		}
		if re != nil && page.Scanned >= s.cfg.RegexScanBudget {
			page.NextCursor = EncodeCursor(*f.After)
			return page, nil
		}
	}
}

// filter validates a request and turns it into a store filter and the
// compiled regex (nil without one).
func (s *Service) filter(org string, req events.LogsQueryRequest) (store.Filter, *regexp.Regexp, error) {
	var fs fields
	f := store.Filter{OrgID: org, AgentID: req.AgentID, Container: req.Container, Source: req.Source, Contains: req.Q}
	if !events.ValidToken(org) {
		return f, nil, events.Errorf(events.CodeForbidden, "no organisation")
	}
	if req.AgentID != "" && !events.ValidToken(req.AgentID) {
		fs.bad("agent_id", "not a valid agent id")
	}
	if len(req.Container) > 256 {
		fs.bad("container", "at most 256 characters")
	}
	switch req.Source {
	case "", events.LogSourceContainer, events.LogSourceNginx:
	default:
		fs.bad("source", "must be %s or %s", events.LogSourceContainer, events.LogSourceNginx)
	}
	if req.Level != "" {
		for _, l := range strings.Split(req.Level, ",") {
			l = strings.TrimSpace(strings.ToLower(l))
			if !logline.ValidLevel(l) {
				fs.bad("level", "levels are error, warn, info and debug (comma-separated)")
				break
			}
			f.Levels = append(f.Levels, l)
		}
	}
	if len(req.Q) > events.LogsMaxQueryLength {
		fs.bad("q", "at most %d bytes", events.LogsMaxQueryLength)
	}
	var re *regexp.Regexp
	if req.Regex != "" {
		var err error
		switch re, err = regexp.Compile(req.Regex); {
		case len(req.Regex) > events.LogsMaxQueryLength:
			fs.bad("regex", "at most %d bytes", events.LogsMaxQueryLength)
		case err != nil:
			fs.bad("regex", "not a valid RE2 expression: %s", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		default:
			f.Literals = RequiredLiterals(req.Regex)
		}
	}
	switch {
	case req.Limit == 0:
		f.Limit = events.LogsDefaultLimit
	case req.Limit < 0 || req.Limit > s.cfg.MaxLimit:
		fs.bad("limit", "must be 1 to %d", s.cfg.MaxLimit)
	default:
		f.Limit = req.Limit
	}
	f.From, f.To = fs.timeRange(req.From, req.To, s.cfg.Now(), s.cfg.DefaultRange, s.cfg.MaxRange)
	if req.Cursor != "" {
		c, ok := DecodeCursor(req.Cursor)
		if !ok {
			fs.bad("cursor", "not a cursor this service issued")
		}
		f.After = &c
	}
	return f, re, fs.err()
}

// storeError turns a store failure into the API's error: a query that ran
// out of time is the caller's to narrow, anything else is internal.
func storeError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return events.Errorf(events.CodeUnavailable, "the query took too long: narrow the time range or add filters")
	}
	return err
}
