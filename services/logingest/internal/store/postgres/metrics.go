package postgres

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/infrapilot/infrapilot/services/logingest/internal/store"
	"github.com/jackc/pgx/v5"
)

// upsertSample adds one sample to its minute row unless the bit of its
// second is already set. A statement may not touch one row twice, so
// InsertSamples splits a batch into rounds with one sample per row each.
const upsertSample = `
INSERT INTO metrics_minute AS m (org_id, agent_id, minute, scope, id, name, mask, samples, cpu_sum, cpu_max,
	mem_sum, mem_max, mem_limit, rx_min, rx_max, tx_min, tx_max, t_min, t_max)
SELECT o, a, mi, sc, i, n, mk, 1, c, c, me, me, ml, rx, rx, tx, tx, t, t
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::bigint[],
            $8::float8[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[])
     AS u(o, a, mi, sc, i, n, mk, c, me, ml, rx, tx, t)
ON CONFLICT (org_id, agent_id, minute, scope, id) DO UPDATE SET
	mask      = m.mask | EXCLUDED.mask,
	samples   = m.samples + 1,
	cpu_sum   = m.cpu_sum + EXCLUDED.cpu_sum,
	cpu_max   = greatest(m.cpu_max, EXCLUDED.cpu_max),
	mem_sum   = m.mem_sum + EXCLUDED.mem_sum,
	mem_max   = greatest(m.mem_max, EXCLUDED.mem_max),
	mem_limit = greatest(m.mem_limit, EXCLUDED.mem_limit),
	rx_min    = least(m.rx_min, EXCLUDED.rx_min),
	rx_max    = greatest(m.rx_max, EXCLUDED.rx_max),
	tx_min    = least(m.tx_min, EXCLUDED.tx_min),
	tx_max    = greatest(m.tx_max, EXCLUDED.tx_max),
	t_min     = least(m.t_min, EXCLUDED.t_min),
	t_max     = greatest(m.t_max, EXCLUDED.t_max),
	name      = CASE WHEN EXCLUDED.t_max >= m.t_max THEN EXCLUDED.name ELSE m.name END
WHERE m.mask & EXCLUDED.mask = 0`

type minuteKey struct {
	org, agent, scope, id string
	minute                int64
}

// InsertSamples implements store.Store.
func (s *Store) InsertSamples(ctx context.Context, samples []store.Sample) error {
	if len(samples) == 0 {
		return nil
	}
	// Round r holds the r-th sample of each minute row in this batch.
	var rounds [][]store.Sample
	seen := map[minuteKey]int{}
	for _, sm := range samples {
		sec := sm.Time.Unix()
		k := minuteKey{sm.OrgID, sm.AgentID, sm.Scope, sm.ID, sec - mod(sec, 60)}
		r := seen[k]
		seen[k] = r + 1
		if r == len(rounds) {
			rounds = append(rounds, nil)
		}
		rounds[r] = append(rounds[r], sm)
	}
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	for _, round := range rounds {
		if err := upsertRound(ctx, tx, round); err != nil {
			return err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: commit samples: %w", err)
	}
	return nil
}

func upsertRound(ctx context.Context, tx pgx.Tx, round []store.Sample) error {
	n := len(round)
	org, agent, scope, id, name := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	minute, mask, mem, lim, rx, tx2, t := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n),
		make([]int64, n), make([]int64, n), make([]int64, n)
	cpu := make([]float64, n)
	for i, sm := range round {
		sec := sm.Time.Unix()
		org[i], agent[i], scope[i], id[i], name[i] = sm.OrgID, sm.AgentID, sm.Scope, sm.ID, sm.Name
		minute[i], mask[i], t[i] = sec-mod(sec, 60), int64(1)<<mod(sec, 60), sec
		cpu[i], mem[i], lim[i], rx[i], tx2[i] = sm.CPU, clamp(sm.Mem), clamp(sm.MemLimit), clamp(sm.RxBytes), clamp(sm.TxBytes)
	}
	if _, err := tx.Exec(ctx, upsertSample, org, agent, minute, scope, id, name, mask, cpu, mem, lim, rx, tx2, t); err != nil {
		return fmt.Errorf("postgres: upsert %d samples: %w", n, err)
	}
	return nil
}

// Scopes implements store.Store.
func (s *Store) Scopes(ctx context.Context, q store.RollupQuery) (int, error) {
	b := &sqlBuilder{}
	sql := `SELECT count(*) FROM (SELECT DISTINCT scope, id FROM metrics_minute WHERE ` + rollupWhere(b, q) + `) s`
	var n int
	err := s.read(ctx, q.OrgID, func(tx pgx.Tx) error { return tx.QueryRow(ctx, sql, b.args...).Scan(&n) })
	if err != nil {
		return 0, fmt.Errorf("postgres: count scopes: %w", err)
	}
	return n, nil
}

// Rollup implements store.Store.
func (s *Store) Rollup(ctx context.Context, q store.RollupQuery) ([]store.Series, error) {
	step := int64(q.Step / time.Second)
	if step < 60 || step%60 != 0 {
		return nil, fmt.Errorf("postgres: rollup step %s is not a whole number of minutes", q.Step)
	}
	b := &sqlBuilder{}
	where := rollupWhere(b, q)
	st := b.arg(step)
	sql := `SELECT scope, id, (array_agg(name ORDER BY minute DESC))[1], (minute / ` + st + `) * ` + st + ` AS b,
			sum(samples), sum(cpu_sum), max(cpu_max), sum(mem_sum), max(mem_max), max(mem_limit),
			min(rx_min), max(rx_max), min(tx_min), max(tx_max), min(t_min), max(t_max)
		FROM metrics_minute WHERE ` + where + `
		GROUP BY scope, id, b ORDER BY scope <> 'host', id, b`
	var out []store.Series
	err := s.read(ctx, q.OrgID, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, sql, b.args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				scope, id, name                            string
				bucket, n                                  int64
				cpuSum, cpuMax, memSum                     float64
				memMax, memLim, rxMin, rxMax, txMin, txMax int64
				tMin, tMax                                 int64
			)
			if err := rows.Scan(&scope, &id, &name, &bucket, &n, &cpuSum, &cpuMax, &memSum, &memMax, &memLim,
				&rxMin, &rxMax, &txMin, &txMax, &tMin, &tMax); err != nil {
				return err
			}
			if len(out) == 0 || out[len(out)-1].Scope != scope || out[len(out)-1].ID != id {
				out = append(out, store.Series{Scope: scope, ID: id})
			}
			sr := &out[len(out)-1]
			sr.Name = name // the last bucket's name is the newest
			sr.Points = append(sr.Points, store.Point{
				Time: time.Unix(bucket, 0).UTC(), Samples: int(n),
				CPUAvg: cpuSum / float64(n), CPUMax: cpuMax,
				MemAvg: uint64(math.Round(memSum / float64(n))), MemMax: uint64(memMax), MemLimit: uint64(memLim),
				RxRate: store.Rate(uint64(rxMin), uint64(rxMax), tMin, tMax),
				TxRate: store.Rate(uint64(txMin), uint64(txMax), tMin, tMax),
			})
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: rollup: %w", err)
	}
	return out, nil
}

func rollupWhere(b *sqlBuilder, q store.RollupQuery) string {
	w := "org_id = " + b.arg(q.OrgID) + " AND agent_id = " + b.arg(q.AgentID) +
		" AND minute >= " + b.arg(q.From.Unix()) + " AND minute < " + b.arg(q.To.Unix())
	if q.Container != "" {
		c := b.arg(q.Container)
		w += " AND (scope = 'host' OR id = " + c + " OR name = " + c + " OR left(id, " + strconv.Itoa(len(q.Container)) + ") = " + c + ")"
	}
	return w
}

func mod(a, m int64) int64 {
	r := a % m
	if r < 0 {
		r += m
	}
	return r
}

// clamp keeps a counter within bigint.
func clamp(v uint64) int64 {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}
