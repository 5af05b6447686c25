package simagent

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/infrapilot/infrapilot/events"
)

// MetricsID is the Nats-Msg-Id the real agent gives a metrics sample
// (agent/internal/collect/metrics.go): a digest of the subject and the
// sample's time.
func MetricsID(subject string, at time.Time) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s\n%d", subject, at.UnixNano()))
	return "metrics-" + hex.EncodeToString(h[:16])
}

// BatchID is the Nats-Msg-Id the real agent gives a log batch
// (collect.BatchID): a digest of the subject, the container and the
// batch's two positions, so the same lines always get the same id.
func BatchID(subject, container string, from, to events.LogPosition) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%d/%d/%d\n%d/%d/%d", subject, container,
		from.Time.UnixNano(), from.Stdout, from.Stderr, to.Time.UnixNano(), to.Stdout, to.Stderr)
	return "logs-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// Line is one log line of a simulated container.
type Line struct {
	Time   time.Time
	Stream string
	Text   string
}

// LogStream is one simulated container's log as the real agent ships it
// (agent/internal/collect/logs.go): batches of events.AgentLogBatch on
// events.AgentLogs, each chaining From → To from the previous one, lines
// identified by (time, stream, count of the stream's lines at that
// time). Lines must be appended in time order.
type LogStream struct {
	Subject         string
	Container, Name string
	Stack           string
	pos             events.LogPosition
	buf             []byte
}

// NewLogStream starts a container's log at position zero.
func NewLogStream(org, agent, container, name, stack string) *LogStream {
	return &LogStream{Subject: events.AgentLogs(org, agent), Container: container, Name: name, Stack: stack}
}

// Batch encodes lines (in time order, after every line of the previous
// batch) as the next batch: its JSON and its Nats-Msg-Id. The JSON is
// what encoding/json makes of an events.AgentLogBatch, written by hand
// because a 100k lines/s load would otherwise spend its CPU in
// reflection. The returned slice is reused by the next call.
func (s *LogStream) Batch(lines []Line) (data []byte, msgID string) {
	from := s.pos
	to := from
	for _, l := range lines {
		if !l.Time.Equal(to.Time) {
			to = events.LogPosition{Time: l.Time}
		}
		if l.Stream == events.StreamStderr {
			to.Stderr++
		} else {
			to.Stdout++
		}
	}
	b := s.buf[:0]
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, events.TelemetryVersion, 10)
	b = append(b, `,"container":`...)
	b = appendJSONString(b, s.Container)
	b = append(b, `,"name":`...)
	b = appendJSONString(b, s.Name)
	if s.Stack != "" {
		b = append(b, `,"stack":`...)
		b = appendJSONString(b, s.Stack)
	}
	b = append(b, `,"from":`...)
	b = appendPosition(b, from)
	b = append(b, `,"to":`...)
	b = appendPosition(b, to)
	b = append(b, `,"lines":[`...)
	for i, l := range lines {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"time":"`...)
		b = l.Time.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, `","stream":`...)
		b = appendJSONString(b, l.Stream)
		b = append(b, `,"text":`...)
		b = appendJSONString(b, l.Text)
		b = append(b, '}')
	}
	b = append(b, "]}"...)
	s.buf = b
	s.pos = to
	return b, BatchID(s.Subject, s.Container, from, to)
}

// Position is where the stream stands after its last batch.
func (s *LogStream) Position() events.LogPosition { return s.pos }

func appendPosition(b []byte, p events.LogPosition) []byte {
	b = append(b, `{"time":"`...)
	b = p.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","stdout":`...)
	b = strconv.AppendInt(b, int64(p.Stdout), 10)
	b = append(b, `,"stderr":`...)
	b = strconv.AppendInt(b, int64(p.Stderr), 10)
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string, escaping as encoding/json
// does (quotes, backslashes, control characters with \n \r \t \b \f
// short forms; <, > and & as \u00XX;
// U+2028 and U+2029; invalid UTF-8 as U+FFFD).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
