package logingest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// TestEndToEnd publishes log batches as agents do, on both stores: lines
// are searchable within 2 s, redeliveries and re-sent batches are stored
// once, orgs never see each other's lines, malformed batches are
// dead-lettered without holding up the rest, nginx lines are parsed.
func TestEndToEnd(t *testing.T) {
	for _, kind := range stores {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, kind)
			e.start(e.config())
			now := time.Now().UTC().Truncate(time.Second)

			batches := chain("c1", now.Add(-time.Minute), 3, 10, func(i int) string {
				switch i % 5 {
				case 0:
					return fmt.Sprintf(`{"level":"error","msg":"db down %d"}`, i)
				case 1:
					return fmt.Sprintf("WARN slow request %d", i)
				}
				return fmt.Sprintf("orgA line %d", i)
			})
			start := time.Now()
			for _, b := range batches {
				e.publish(events.AgentLogs("orgA", "a1"), b, msgID("orgA", "a1", b))
			}
			e.waitLines("orgA", 30, 2*time.Second)
			t.Logf("%s: 30 lines queryable %s after the first publish", kind, time.Since(start).Round(time.Millisecond))

			// Redelivery in every shape: the same message under another id
			// (past the stream's dedup), and the lines re-cut into one batch.
			e.publish(events.AgentLogs("orgA", "a1"), batches[0], "again-0")
			whole := events.AgentLogBatch{V: 1, Container: "c1", Name: "name-c1", Stack: "stack", From: batches[0].From, To: batches[2].To}
			for _, b := range batches {
				whole.Lines = append(whole.Lines, b.Lines...)
			}
			e.publish(events.AgentLogs("orgA", "a1"), whole, "recut")
			// A malformed batch and one of an unknown future version.
			e.publish(events.AgentLogs("orgA", "a1"), map[string]any{"v": 1, "container": "", "lines": []any{}}, "bad-1")
			e.publish(events.AgentLogs("orgA", "a1"), map[string]any{"v": 99, "container": "c1"}, "bad-2")
			// Org B, and a barrier: once it is stored, so is everything before.
			b := chain("c1", now.Add(-time.Minute), 1, 4, func(i int) string { return fmt.Sprintf("orgB line %d", i) })[0]
			e.publish(events.AgentLogs("orgB", "a1"), b, msgID("orgB", "a1", b))
			nginx := events.NginxLogBatch{Source: events.LogSourceNginx, AgentLogBatch: events.AgentLogBatch{V: 1, Container: "proxy", Name: "nginx",
				Lines: []events.LogLine{
					{Time: now, Stream: "stdout", Text: `10.0.0.1 - - [29/Nov/2026:10:00:00 +0000] "GET /api HTTP/1.1" 502 157 "-" "curl/8.0"`},
					{Time: now, Stream: "stderr", Text: `2026/11/29 10:00:00 [error] 7#7: *3 connect() failed (111: Connection refused) while connecting to upstream, client: 10.0.0.1, server: _, request: "GET /api HTTP/1.1", upstream: "http://10.0.0.5:3000/api", host: "x"`},
				}}}
			nginx.To = events.LogPosition{Time: now, Stdout: 1, Stderr: 1}
			e.publish(events.AgentLogs("orgB", "a2"), nginx, "nginx-1")
			e.waitLines("orgB", 6, 5*time.Second)

			got := e.allLogs("orgA", events.LogsQueryRequest{})
			if len(got) != 30 {
				t.Fatalf("org A has %d lines after redeliveries, want 30", len(got))
			}
			seen := map[string]bool{}
			for _, l := range got {
				if seen[l.Line] || seen[l.ID] {
					t.Fatalf("line %q stored twice", l.Line)
				}
				seen[l.Line], seen[l.ID] = true, true
				if l.AgentID != "a1" || l.Source != events.LogSourceContainer || l.ContainerName != "name-c1" || l.Stack != "stack" {
					t.Fatalf("line fields: %+v", l)
				}
			}
			errs := e.allLogs("orgA", events.LogsQueryRequest{Level: "error"})
			if len(errs) != 6 || errs[0].Message == "" || !strings.HasPrefix(errs[0].Message, "db down") {
				t.Fatalf("error lines: %d %+v", len(errs), errs)
			}
			if w := e.allLogs("orgA", events.LogsQueryRequest{Level: "warn", Q: "SLOW"}); len(w) != 6 {
				t.Fatalf("warn lines: %d", len(w))
			}
			// Tenancy: org B sees its own lines only, whatever it asks.
			for _, req := range []events.LogsQueryRequest{{}, {Q: "orgA"}, {AgentID: "a1"}, {Container: "c1"}, {Regex: "orgA.*"}} {
				for _, l := range e.allLogs("orgB", req) {
					if strings.Contains(l.Line, "orgA") || strings.Contains(l.Message, "db down") {
						t.Fatalf("org B sees org A's line %q with %+v", l.Line, req)
					}
				}
			}
			ng := e.allLogs("orgB", events.LogsQueryRequest{Source: events.LogSourceNginx})
			if len(ng) != 2 || ng[0].Level != "error" || ng[1].Level != "error" {
				t.Fatalf("nginx lines: %+v", ng)
			}
			for _, l := range ng {
				if l.Attrs["status"] != "502" && l.Attrs["upstream"] != "http://10.0.0.5:3000/api" {
					t.Fatalf("nginx attrs: %+v", l)
				}
			}
			// Both malformed batches went to the dead-letter stream.
			natstest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
				s, err := e.js.Stream(context.Background(), events.StreamDeadLetter)
				if err != nil {
					return err
				}
				info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(events.DeadLetter(Name, LogsConsumer)))
				if err != nil {
					return err
				}
				if n := info.State.Subjects[events.DeadLetter(Name, LogsConsumer)]; n != 2 {
					return fmt.Errorf("%d dead letters, want 2", n)
				}
				return nil
			})
			// A viewer may read logs; the headers' role is checked again.
			if _, err := call[events.LogsQueryRequest, events.LogsPage](e, "orgA", "nobody", events.OpLogsQuery, events.LogsQueryRequest{}); events.ErrorCode(err) != events.CodeForbidden {
				t.Fatalf("unknown role: %v", err)
			}
		})
	}
}

// TestMetricsRollups publishes metric samples and reads the per-minute
// roll-ups through the operation.
func TestMetricsRollups(t *testing.T) {
	for _, kind := range stores {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, kind)
			e.start(e.config())
			start := time.Now().UTC().Truncate(time.Minute).Add(-10 * time.Minute)
			for i := range 12 {
				m := events.AgentMetricsMessage{V: 1, Time: start.Add(time.Duration(i) * 10 * time.Second),
					Host:       events.HostMetrics{CPUPercent: float64(i), MemUsed: 1000, MemTotal: 4000, NetRxBytes: uint64(i) * 10000},
					Containers: []events.ContainerStats{{ID: "c1", Name: "web", CPUPercent: 50, MemUsage: 10, MemLimit: 20}}}
				e.publish(events.AgentMetrics("orgA", "a1"), m, fmt.Sprintf("m-%d", i))
				if i < 3 { // redelivered samples count once
					e.publish(events.AgentMetrics("orgA", "a1"), m, fmt.Sprintf("m-again-%d", i))
				}
			}
			req := events.AgentMetricsRequest{AgentID: "a1", From: start.Add(-time.Minute).Format(time.RFC3339)}
			var reply events.AgentMetricsReply
			natstest.CheckFor(t, 5*time.Second, 50*time.Millisecond, func() error {
				var err error
				reply, err = call[events.AgentMetricsRequest, events.AgentMetricsReply](e, "orgA", "viewer", events.OpLogsMetrics, req)
				if err != nil {
					return err
				}
				if len(reply.Series) != 2 || len(reply.Series[0].Points) != 2 || reply.Series[0].Points[1].Samples != 6 {
					return fmt.Errorf("reply: %+v", reply)
				}
				return nil
			})
			h := reply.Series[0]
			if reply.StepSeconds != 60 || h.Scope != "host" || h.Points[0].Samples != 6 || h.Points[0].CPUAvg != 2.5 || h.Points[0].NetRxRate != 1000 {
				t.Fatalf("host series: %+v", reply)
			}
			if c := reply.Series[1]; c.ID != "c1" || c.Name != "web" || c.Points[0].MemAvg != 10 {
				t.Fatalf("container series: %+v", c)
			}
			other, err := call[events.AgentMetricsRequest, events.AgentMetricsReply](e, "orgB", "viewer", events.OpLogsMetrics, req)
			if err != nil || len(other.Series) != 0 {
				t.Fatalf("org B reads org A's agent metrics: %+v %v", other, err)
			}
			if _, err := call[events.AgentMetricsRequest, events.AgentMetricsReply](e, "orgA", "viewer", events.OpLogsMetrics,
				events.AgentMetricsRequest{AgentID: "a1", From: start.Add(-40 * 24 * time.Hour).Format(time.RFC3339)}); events.ErrorCode(err) != events.CodeInvalid {
				t.Fatalf("range over the maximum: %v", err)
			}
		})
	}
}
