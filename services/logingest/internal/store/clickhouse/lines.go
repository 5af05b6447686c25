package clickhouse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/infrapilot/infrapilot/services/logingest/internal/store"
)

type group struct{ org, agent, source, container string }

// InsertLines implements store.Store: it skips the keys already stored
// (one range query for the whole batch) and inserts the rest in one
// batch.
func (s *Store) InsertLines(ctx context.Context, lines []store.Line) error {
	if len(lines) == 0 {
		return nil
	}
	fresh, err := s.missing(ctx, lines)
	if err != nil {
		return err
	}
	if len(fresh) == 0 {
		return nil
	}
	batch, err := s.conn.PrepareBatch(ctx, `INSERT INTO logs (org_id, agent_id, source, ts, container, stream, seq, time,
		container_name, stack, level, message, raw, attrs)`)
	if err != nil {
		return fmt.Errorf("clickhouse: prepare insert: %w", err)
	}
	defer func() { _ = batch.Abort() }()
	for _, l := range fresh {
		attrs := ""
		if len(l.Attrs) > 0 {
			b, _ := json.Marshal(l.Attrs)
			attrs = string(b)
		}
		ns := l.Time.UnixNano()
		if err := batch.Append(l.OrgID, l.AgentID, l.Source, uint64(ns), l.Container, l.Stream, l.Seq,
			time.Unix(ns/1e9, 0).UTC(), l.ContainerName, l.Stack, l.Level, l.Message, l.Raw, attrs); err != nil {
			return fmt.Errorf("clickhouse: append line: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("clickhouse: insert %d lines: %w", len(fresh), err)
	}
	return nil
}

// missing returns the lines whose keys are not in the table yet, and no
// line twice.
func (s *Store) missing(ctx context.Context, lines []store.Line) ([]store.Line, error) {
	type key struct {
		g group
		c store.Cursor
	}
	groups := map[group]bool{}
	var lo, hi int64 = 1<<63 - 1, -1 << 63
	for _, l := range lines {
		groups[group{l.OrgID, l.AgentID, l.Source, l.Container}] = true
		ns := l.Time.UnixNano()
		lo, hi = min(lo, ns), max(hi, ns)
	}
	sets := make([]ch.GroupSet, 0, len(groups))
	orgs := map[string]bool{}
	for g := range groups {
		sets = append(sets, ch.GroupSet{Value: []any{g.org, g.agent, g.source, g.container}})
		orgs[g.org] = true
	}
	orgList := make([]string, 0, len(orgs))
	for o := range orgs {
		orgList = append(orgList, o)
	}
	rows, err := s.conn.Query(ctx, `SELECT org_id, agent_id, source, container, ts, stream, seq FROM logs
		WHERE org_id IN (?) AND (org_id, agent_id, source, container) IN (?)
		AND ts >= ? AND ts <= ? AND time >= toDateTime(?) AND time <= toDateTime(?)`,
		inList(orgList), sets, uint64(lo), uint64(hi), lo/1e9, hi/1e9)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: read stored keys: %w", err)
	}
	defer rows.Close()
	have := map[key]bool{}
	for rows.Next() {
		var (
			g  group
			ts uint64
			c  store.Cursor
		)
		if err := rows.Scan(&g.org, &g.agent, &g.source, &g.container, &ts, &c.Stream, &c.Seq); err != nil {
			return nil, err
		}
		c.Time, c.AgentID, c.Source, c.Container = int64(ts), g.agent, g.source, g.container
		have[key{g, c}] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]store.Line, 0, len(lines))
	for _, l := range lines {
		k := key{group{l.OrgID, l.AgentID, l.Source, l.Container}, l.Key()}
		if !have[k] {
			have[k] = true
			out = append(out, l)
		}
	}
	return out, nil
}

// QueryLines implements store.Store.
func (s *Store) QueryLines(ctx context.Context, f store.Filter) ([]store.Line, error) {
	if f.OrgID == "" || f.Limit <= 0 || f.From.IsZero() || f.To.IsZero() {
		return nil, errors.New("clickhouse: query needs an org, a time range and a limit")
	}
	ctx = limited(ctx)
	var out []store.Line
	after := f.After
	for {
		want := f.Limit - len(out)
		page, err := s.page(ctx, f, after, want)
		if err != nil {
			return nil, err
		}
		for _, l := range page {
			// Duplicates not yet merged away are adjacent in key order;
			// the cursor condition is strict, so none repeats across pages.
			if len(out) > 0 && out[len(out)-1].Key() == l.Key() {
				continue
			}
			out = append(out, l)
		}
		if len(page) < want || len(out) >= f.Limit {
			return out, nil
		}
		// A full page that duplicates left short: read on after it.
		k := page[len(page)-1].Key()
		after = &k
	}
}

func (s *Store) page(ctx context.Context, f store.Filter, after *store.Cursor, limit int) ([]store.Line, error) {
	var (
		where strings.Builder
		args  []any
	)
	add := func(cond string, a ...any) {
		where.WriteString(" AND ")
		where.WriteString(cond)
		args = append(args, a...)
	}
	where.WriteString("org_id = ?")
	args = append(args, f.OrgID)
	from, to := f.From.UnixNano(), f.To.UnixNano()
	add("ts >= ? AND ts < ?", uint64(max(0, from)), uint64(max(0, to)))
	add("time >= toDateTime(?) AND time <= toDateTime(?)", max(0, from/1e9), max(0, to/1e9))
	if f.AgentID != "" {
		add("agent_id = ?", f.AgentID)
	}
	if f.Source != "" {
		add("source = ?", f.Source)
	}
	if f.Container != "" {
		add("(container = ? OR container_name = ? OR substring(container, 1, "+strconv.Itoa(len(f.Container))+") = ?)",
			f.Container, f.Container, f.Container)
	}
	if len(f.Levels) > 0 {
		add("level IN (?)", inList(f.Levels))
	}
	if f.Contains != "" {
		add("positionCaseInsensitiveUTF8(raw, ?) > 0", f.Contains)
	}
	for _, lit := range f.Literals {
		add("position(raw, ?) > 0", lit)
	}
	if c := after; c != nil {
		add("ts <= ? AND (ts, agent_id, source, container, stream, seq) < (?, ?, ?, ?, ?, ?)",
			uint64(c.Time), uint64(c.Time), c.AgentID, c.Source, c.Container, c.Stream, c.Seq)
	}
	q := `SELECT org_id, agent_id, source, container, container_name, stack, ts, stream, seq, level, message, raw, attrs
		FROM logs WHERE ` + where.String() + `
		ORDER BY ts DESC, agent_id DESC, source DESC, container DESC, stream DESC, seq DESC
		LIMIT ` + strconv.Itoa(limit)
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: query lines: %w", err)
	}
	defer rows.Close()
	var out []store.Line
	for rows.Next() {
		var (
			l     store.Line
			ts    uint64
			attrs string
		)
		if err := rows.Scan(&l.OrgID, &l.AgentID, &l.Source, &l.Container, &l.ContainerName, &l.Stack, &ts,
			&l.Stream, &l.Seq, &l.Level, &l.Message, &l.Raw, &attrs); err != nil {
			return nil, err
		}
		l.Time = time.Unix(0, int64(ts)).UTC()
		if attrs != "" {
			_ = json.Unmarshal([]byte(attrs), &l.Attrs)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse: query lines: %w", err)
	}
	return out, nil
}

// inList binds a list of strings for "x IN (?)": the driver renders a
// []string as an array literal, which IN does not take.
func inList(vals []string) []ch.GroupSet {
	out := make([]ch.GroupSet, len(vals))
	for i, v := range vals {
		out[i] = ch.GroupSet{Value: []any{v}}
	}
	return out
}
