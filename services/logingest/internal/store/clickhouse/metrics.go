package clickhouse

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/infrapilot/infrapilot/services/logingest/internal/store"
)

// InsertSamples implements store.Store. Duplicates are harmless: every
// read groups by the sample key first.
func (s *Store) InsertSamples(ctx context.Context, samples []store.Sample) error {
	if len(samples) == 0 {
		return nil
	}
	batch, err := s.conn.PrepareBatch(ctx, `INSERT INTO metric_samples (org_id, agent_id, scope, id, time, name, cpu, mem, mem_limit, rx, tx)`)
	if err != nil {
		return fmt.Errorf("clickhouse: prepare samples: %w", err)
	}
	defer func() { _ = batch.Abort() }()
	for _, sm := range samples {
		if err := batch.Append(sm.OrgID, sm.AgentID, sm.Scope, sm.ID, time.Unix(sm.Time.Unix(), 0).UTC(), sm.Name,
			sm.CPU, sm.Mem, sm.MemLimit, sm.RxBytes, sm.TxBytes); err != nil {
			return fmt.Errorf("clickhouse: append sample: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("clickhouse: insert %d samples: %w", len(samples), err)
	}
	return nil
}

func rollupWhere(q store.RollupQuery) (string, []any) {
	w := "org_id = ? AND agent_id = ? AND time >= toDateTime(?) AND time < toDateTime(?)"
	args := []any{q.OrgID, q.AgentID, q.From.Unix(), q.To.Unix()}
	if q.Container != "" {
		w += " AND (scope = 'host' OR id = ? OR name = ? OR substring(id, 1, " + strconv.Itoa(len(q.Container)) + ") = ?)"
		args = append(args, q.Container, q.Container, q.Container)
	}
	return w, args
}

// Scopes implements store.Store.
func (s *Store) Scopes(ctx context.Context, q store.RollupQuery) (int, error) {
	w, args := rollupWhere(q)
	var n uint64
	if err := s.conn.QueryRow(limited(ctx), `SELECT count() FROM (SELECT DISTINCT scope, id FROM metric_samples WHERE `+w+`)`, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("clickhouse: count scopes: %w", err)
	}
	return int(n), nil
}

// Rollup implements store.Store.
func (s *Store) Rollup(ctx context.Context, q store.RollupQuery) ([]store.Series, error) {
	step := int64(q.Step / time.Second)
	if step < 60 || step%60 != 0 {
		return nil, fmt.Errorf("clickhouse: rollup step %s is not a whole number of minutes", q.Step)
	}
	w, args := rollupWhere(q)
	st := strconv.FormatInt(step, 10)
	sql := `SELECT scope, id, argMax(nm, t), intDiv(t, ` + st + `) * ` + st + ` AS b, count(),
			avg(c), max(c), avg(m), max(m), max(ml), min(r), max(r), min(x), max(x), min(t), max(t)
		FROM (
			SELECT scope, id, toUInt32(time) AS t, any(name) AS nm, any(cpu) AS c, any(mem) AS m,
				any(mem_limit) AS ml, any(rx) AS r, any(tx) AS x
			FROM metric_samples WHERE ` + w + `
			GROUP BY scope, id, t
		)
		GROUP BY scope, id, b ORDER BY scope != 'host', id, b`
	rows, err := s.conn.Query(limited(ctx), sql, args...)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: rollup: %w", err)
	}
	defer rows.Close()
	var out []store.Series
	for rows.Next() {
		var (
			scope, id, name                        string
			bucket                                 uint64
			n                                      uint64
			cpuAvg, cpuMax, memAvg                 float64
			memMax, memLim, rxLo, rxHi, txLo, txHi uint64
			tLo, tHi                               uint32
		)
		if err := rows.Scan(&scope, &id, &name, &bucket, &n, &cpuAvg, &cpuMax, &memAvg, &memMax, &memLim,
			&rxLo, &rxHi, &txLo, &txHi, &tLo, &tHi); err != nil {
			return nil, fmt.Errorf("clickhouse: rollup: %w", err)
		}
		if len(out) == 0 || out[len(out)-1].Scope != scope || out[len(out)-1].ID != id {
			out = append(out, store.Series{Scope: scope, ID: id})
		}
		sr := &out[len(out)-1]
		sr.Name = name
		sr.Points = append(sr.Points, store.Point{
			Time: time.Unix(int64(bucket), 0).UTC(), Samples: int(n), CPUAvg: cpuAvg, CPUMax: cpuMax,
			MemAvg: uint64(math.Round(memAvg)), MemMax: memMax, MemLimit: memLim,
			RxRate: store.Rate(rxLo, rxHi, int64(tLo), int64(tHi)),
			TxRate: store.Rate(txLo, txHi, int64(tLo), int64(tHi)),
		})
	}
	return out, rows.Err()
}
