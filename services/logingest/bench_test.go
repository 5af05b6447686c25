package logingest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/logingest/internal/store"
	"github.com/nats-io/nats.go/jetstream"
)

// Run: go test ./services/logingest -run '^$' -bench . -benchtime 1x
// (with INFRAPILOT_TEST_PG_URL and INFRAPILOT_TEST_CLICKHOUSE_URL set).
// Each benchmark is one fixed-size run; the figures are the reported
// metrics, side by side with the raw capacity of the same machine.

const (
	benchBatches = 1000 // AgentLogBatch messages
	benchPer     = 100  // lines per batch
)

// countingStore counts stored lines and notes when marker lines land.
type countingStore struct {
	store.Store
	lines   atomic.Int64
	mu      sync.Mutex
	markers map[string]time.Time
}

func (c *countingStore) InsertLines(ctx context.Context, lines []store.Line) error {
	if err := c.Store.InsertLines(ctx, lines); err != nil {
		return err
	}
	c.lines.Add(int64(len(lines)))
	now := time.Now()
	c.mu.Lock()
	for _, l := range lines {
		if strings.HasPrefix(l.Raw, "marker ") {
			c.markers[l.Raw] = now
		}
	}
	c.mu.Unlock()
	return nil
}

func benchLine(i int) string {
	return fmt.Sprintf("2026-11-29T10:00:00Z INFO request %d handled in 12ms path=/api/v1/items status=200 bytes=512", i)
}

func BenchmarkEndToEnd(b *testing.B) {
	for _, kind := range stores {
		b.Run(kind, func(b *testing.B) {
			e := newEnv(b, kind)
			cs := &countingStore{markers: map[string]time.Time{}}
			cfg := e.config()
			cfg.Logs.FlushInterval = 200 * time.Millisecond
			cfg.wrapStore = func(s store.Store) store.Store { cs.Store = s; return cs }
			e.start(cfg)
			start := time.Now().UTC().Add(-time.Hour)
			batches := chain("c1", start, benchBatches, benchPer, benchLine)
			b.ResetTimer()
			t0 := time.Now()
			ctx := context.Background()
			var futures []jetstream.PubAckFuture
			for _, bt := range batches {
				data := mustJSON(bt)
				f, err := e.js.PublishAsync(events.AgentLogs("orgA", "a1"), data, jetstream.WithMsgID(msgID("orgA", "a1", bt)))
				if err != nil {
					b.Fatal(err)
				}
				futures = append(futures, f)
			}
			for _, f := range futures {
				select {
				case <-f.Ok():
				case err := <-f.Err():
					b.Fatal(err)
				}
			}
			for cs.lines.Load() < benchBatches*benchPer {
				time.Sleep(time.Millisecond)
			}
			took := time.Since(t0)
			b.ReportMetric(float64(benchBatches*benchPer)/took.Seconds(), "lines/s")

			// Latency: one small batch at a time, publish → stored.
			var lat []time.Duration
			for i := range 200 {
				bt := events.AgentLogBatch{V: 1, Container: "lat", Lines: []events.LogLine{{Time: time.Now(), Stream: "stdout", Text: fmt.Sprintf("marker %d", i)}}}
				bt.To = events.LogPosition{Time: bt.Lines[0].Time, Stdout: 1}
				sent := time.Now()
				if _, err := e.js.Publish(ctx, events.AgentLogs("orgA", "a1"), mustJSON(bt), jetstream.WithMsgID(fmt.Sprintf("lat-%d", i))); err != nil {
					b.Fatal(err)
				}
				for {
					cs.mu.Lock()
					at, ok := cs.markers[fmt.Sprintf("marker %d", i)]
					cs.mu.Unlock()
					if ok {
						lat = append(lat, at.Sub(sent))
						break
					}
					time.Sleep(200 * time.Microsecond)
				}
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
		})
	}
}

// BenchmarkRawJetStreamPublish is the ceiling of the publish side: async
// publishes of the same batches to the LOGS stream, acknowledged.
func BenchmarkRawJetStreamPublish(b *testing.B) {
	e := newEnv(b, "postgres")
	batches := chain("c1", time.Now().Add(-time.Hour), benchBatches, benchPer, benchLine)
	b.ResetTimer()
	t0 := time.Now()
	var futures []jetstream.PubAckFuture
	for i, bt := range batches {
		f, err := e.js.PublishAsync(events.AgentLogs("orgA", "a1"), mustJSON(bt), jetstream.WithMsgID(fmt.Sprint(i)))
		if err != nil {
			b.Fatal(err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		<-f.Ok()
	}
	b.ReportMetric(float64(benchBatches*benchPer)/time.Since(t0).Seconds(), "lines/s")
	b.ReportMetric(float64(benchBatches)/time.Since(t0).Seconds(), "msgs/s")
}

// BenchmarkRawClickHouseInsert is the ceiling of the store side: plain
// 100k-row batch inserts of the same rows into the logs table, no
// duplicate check.
func BenchmarkRawClickHouseInsert(b *testing.B) {
	e := newEnv(b, "clickhouse")
	cs := &countingStore{}
	cfg := e.config()
	cfg.wrapStore = func(s store.Store) store.Store { cs.Store = s; return cs }
	e.start(cfg) // creates the tables
	opts, err := ch.ParseDSN(e.chURL)
	if err != nil {
		b.Fatal(err)
	}
	conn, err := ch.Open(opts)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	const rows = benchBatches * benchPer
	now := time.Now().UTC()
	b.ResetTimer()
	t0 := time.Now()
	batch, err := conn.PrepareBatch(ctx, `INSERT INTO logs (org_id, agent_id, source, ts, container, stream, seq, time,
		container_name, stack, level, message, raw, attrs)`)
	if err != nil {
		b.Fatal(err)
	}
	for i := range rows {
		at := now.Add(time.Duration(i) * time.Microsecond)
		if err := batch.Append("orgA", "a1", "container", uint64(at.UnixNano()), "c1", "stdout", uint32(1), at.Truncate(time.Second),
			"name", "stack", "info", "", benchLine(i), ""); err != nil {
			b.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(rows/time.Since(t0).Seconds(), "lines/s")

	// The store's own insert (with its duplicate check) of the same rows.
	lines := make([]store.Line, rows)
	for i := range lines {
		lines[i] = store.Line{OrgID: "orgB", AgentID: "a1", Source: "container", Container: "c1", Time: now.Add(time.Duration(i) * time.Microsecond),
			Stream: "stdout", Seq: 1, Level: "info", Raw: benchLine(i)}
	}
	t0 = time.Now()
	if err := cs.Store.InsertLines(ctx, lines); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(rows/time.Since(t0).Seconds(), "store_lines/s")
}
