// Package ingest turns agents' telemetry (log batches on stream LOGS,
// metric samples on stream METRICS) into store rows, through batching
// durable consumers that acknowledge a message only once the store has
// its rows.
package ingest

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/events/logline"
	"github.com/infrapilot/infrapilot/services/logingest/internal/store"
)

// Limits on what one batch may carry; a batch over them is malformed and
// dead-lettered, a line over MaxLineBytes is truncated.
const (
	maxIDBytes     = 256
	maxStreamBytes = 32
	// DefaultMaxLineBytes is where a line is cut (Docker itself splits
	// lines at 16 KiB).
	DefaultMaxLineBytes = 64 << 10
)

// Subject reads the org and agent of a telemetry subject
// "agent.<org>.<agent>.<kind>". They come from the subject, which NATS
// permissions tie to the publishing agent, never from the body.
func Subject(subject, kind string) (org, agent string, err error) {
	parts := strings.Split(subject, ".")
	if len(parts) != 4 || parts[0] != "agent" || parts[3] != kind || !events.ValidToken(parts[1]) || !events.ValidToken(parts[2]) {
		return "", "", fmt.Errorf("ingest: subject %q is not agent.<org>.<agent>.%s", subject, kind)
	}
	return parts[1], parts[2], nil
}

// probe reads the fields that tell batch kinds and versions apart.
type probe struct {
	V      int    `json:"v"`
	Source string `json:"source"`
}

// DecodeLogs turns one message of stream LOGS into lines: an
// events.AgentLogBatch (container lines) or, when its source says so, an
// events.NginxLogBatch. Each line gets its identity from the batch's
// positions: its count among the lines of its stream with exactly its
// timestamp, continuing From's counts when it shares From's timestamp
// (see events.LogPosition). Text is made valid UTF-8 without NUL bytes
// (Postgres stores neither) and cut at maxLine bytes.
func DecodeLogs(subject string, data []byte, maxLine int) ([]store.Line, error) {
	org, agent, err := Subject(subject, "logs")
	if err != nil {
		return nil, err
	}
	var p probe
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("ingest: malformed log batch: %w", err)
	}
	if p.V > events.TelemetryVersion {
		return nil, fmt.Errorf("ingest: log batch version %d is newer than this service reads (%d)", p.V, events.TelemetryVersion)
	}
	var b events.AgentLogBatch
	source := events.LogSourceContainer
	switch p.Source {
	case "", events.LogSourceContainer:
		err = json.Unmarshal(data, &b)
	case events.LogSourceNginx:
		var nb events.NginxLogBatch
		err = json.Unmarshal(data, &nb)
		b, source = nb.AgentLogBatch, events.LogSourceNginx
	default:
		return nil, fmt.Errorf("ingest: unknown log source %q", p.Source)
	}
	if err != nil {
		return nil, fmt.Errorf("ingest: malformed log batch: %w", err)
	}
	if b.Container == "" || len(b.Container) > maxIDBytes || len(b.Name) > maxIDBytes || len(b.Stack) > maxIDBytes {
		return nil, fmt.Errorf("ingest: log batch with a missing or oversized container, name or stack")
	}
	if maxLine <= 0 {
		maxLine = DefaultMaxLineBytes
	}
	type at struct {
		ns     int64
		stream string
	}
	counts := map[at]int{
		{b.From.Time.UnixNano(), events.StreamStdout}: b.From.Stdout,
		{b.From.Time.UnixNano(), events.StreamStderr}: b.From.Stderr,
	}
	out := make([]store.Line, 0, len(b.Lines))
	for _, l := range b.Lines {
		if l.Stream == "" || len(l.Stream) > maxStreamBytes || !events.ValidToken(l.Stream) {
			return nil, fmt.Errorf("ingest: log line with an invalid stream %q", clip(l.Stream, 40))
		}
		k := at{l.Time.UnixNano(), l.Stream}
		counts[k]++
		text := Clean(strings.TrimRight(l.Text, "\r\n"), maxLine)
		var parsed logline.Parsed
		if source == events.LogSourceNginx {
			parsed = logline.Nginx(l.Stream, text)
		} else {
			parsed = logline.Container(text)
		}
		for key, v := range parsed.Attrs {
			parsed.Attrs[key] = Clean(v, maxLine)
		}
		out = append(out, store.Line{
			OrgID: org, AgentID: agent, Source: source, Container: Clean(b.Container, maxIDBytes),
			ContainerName: Clean(b.Name, maxIDBytes), Stack: Clean(b.Stack, maxIDBytes),
			Time: l.Time.UTC(), Stream: l.Stream, Seq: uint32(counts[k]),
			Level: parsed.Level, Message: Clean(parsed.Message, maxLine), Raw: text, Attrs: parsed.Attrs,
		})
	}
	return out, nil
}

// DecodeMetrics turns one message of stream METRICS (an
// events.AgentMetricsMessage) into samples: the host's and each
// container's, at the message's time rounded down to the second.
func DecodeMetrics(subject string, data []byte) ([]store.Sample, error) {
	org, agent, err := Subject(subject, "metrics")
	if err != nil {
		return nil, err
	}
	var m events.AgentMetricsMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("ingest: malformed metrics message: %w", err)
	}
	if m.V > events.TelemetryVersion {
		return nil, fmt.Errorf("ingest: metrics version %d is newer than this service reads (%d)", m.V, events.TelemetryVersion)
	}
	if m.Time.IsZero() {
		return nil, fmt.Errorf("ingest: metrics message without a time")
	}
	at := m.Time.UTC().Truncate(time.Second)
	out := make([]store.Sample, 0, 1+len(m.Containers))
	h := m.Host
	out = append(out, store.Sample{OrgID: org, AgentID: agent, Scope: events.MetricScopeHost, Time: at,
		CPU: finite(h.CPUPercent), Mem: h.MemUsed, MemLimit: h.MemTotal, RxBytes: h.NetRxBytes, TxBytes: h.NetTxBytes})
	seen := map[string]bool{}
	for _, c := range m.Containers {
		if c.ID == "" || len(c.ID) > maxIDBytes || seen[c.ID] {
			continue
		}
		seen[c.ID] = true
		out = append(out, store.Sample{OrgID: org, AgentID: agent, Scope: events.MetricScopeContainer, ID: Clean(c.ID, maxIDBytes),
			Name: Clean(c.Name, maxIDBytes), Time: at, CPU: finite(c.CPUPercent), Mem: c.MemUsage, MemLimit: c.MemLimit,
			RxBytes: c.NetRxBytes, TxBytes: c.NetTxBytes})
	}
	return out, nil
}

// finite keeps NaN and infinities (which no store and no JSON takes) out.
func finite(f float64) float64 {
	if f != f || f > 1e300 || f < -1e300 {
		return 0
	}
	return f
}

// Clean makes s valid UTF-8 without NUL bytes, at most n bytes long (cut
// at a rune boundary).
func Clean(s string, n int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	return clip(s, n)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
