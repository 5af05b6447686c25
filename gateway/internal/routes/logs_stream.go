package routes

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/events/logline"
	"github.com/infrapilot/infrapilot/gateway/internal/httpapi"
	"github.com/nats-io/nats.go"
)

// Live tail bounds. A client that reads slower than lines arrive loses
// lines, never memory: its buffer holds TailBuffer entries and what does
// not fit is counted and reported as {"dropped": n}.
const (
	TailBuffer       = 512
	tailWriteTimeout = 10 * time.Second
	tailPing         = 30 * time.Second
	tailMaxLine      = 64 << 10
	// tailNATSPending bounds what NATS itself buffers for one client's
	// subscription before dropping (reported as dropped_batches).
	tailNATSPending = 1024
)

// tailFilter is the live tail's version of the query filters, applied in
// the gateway to every line of the org's batches.
type tailFilter struct {
	agent, container, source string
	levels                   map[string]bool
	q                        string
	re                       *regexp.Regexp
}

func newTailFilter(req events.LogsQueryRequest) tailFilter {
	f := tailFilter{agent: req.AgentID, container: req.Container, source: req.Source, q: strings.ToLower(req.Q)}
	if req.Level != "" {
		f.levels = map[string]bool{}
		for _, l := range strings.Split(req.Level, ",") {
			f.levels[strings.ToLower(strings.TrimSpace(l))] = true
		}
	}
	if req.Regex != "" {
		f.re = regexp.MustCompile(req.Regex) // checked by logsQuery
	}
	return f
}

// batchEntries decodes an agent's log batch and returns its lines that
// pass f, parsed exactly as the log-ingest service parses them.
func (f tailFilter) batchEntries(agent string, data []byte) []events.LogEntry {
	var probe struct {
		V      int    `json:"v"`
		Source string `json:"source"`
	}
	if json.Unmarshal(data, &probe) != nil || probe.V > events.TelemetryVersion {
		return nil
	}
	source := events.LogSourceContainer
	if probe.Source == events.LogSourceNginx {
		source = events.LogSourceNginx
	} else if probe.Source != "" {
		return nil
	}
	if f.source != "" && f.source != source {
		return nil
	}
	var b events.AgentLogBatch
	if json.Unmarshal(data, &b) != nil {
		return nil
	}
	if f.container != "" && b.Container != f.container && b.Name != f.container && !strings.HasPrefix(b.Container, f.container) {
		return nil
	}
	var out []events.LogEntry
	for _, l := range b.Lines {
		text := clipUTF8(strings.TrimRight(l.Text, "\r\n"), tailMaxLine)
		if f.q != "" && !strings.Contains(strings.ToLower(text), f.q) {
			continue
		}
		if f.re != nil && !f.re.MatchString(text) {
			continue
		}
		var p logline.Parsed
		if source == events.LogSourceNginx {
			p = logline.Nginx(l.Stream, text)
		} else {
			p = logline.Container(text)
		}
		if f.levels != nil && !f.levels[p.Level] {
			continue
		}
		out = append(out, events.LogEntry{Time: l.Time, AgentID: agent, Source: source, Container: b.Container,
			ContainerName: b.Name, Stack: b.Stack, Stream: l.Stream, Level: p.Level, Message: p.Message, Line: text, Attrs: p.Attrs})
	}
	return out
}

func clipUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// stream is WS /logs/stream: the org's new log lines as they arrive,
// filtered like GET /logs (from, to, limit and cursor do not apply). It
// subscribes to the agents' log subjects of the caller's org only — the
// same batches the log-ingest service stores, so no store is polled.
// Messages: {"ready": true} once subscribed, then one LogEntry (without
// id) per line, and {"dropped": n, "dropped_batches": m} before the next
// line when the client fell behind and lines were dropped.
func (l logRoutes) stream(w http.ResponseWriter, r *http.Request) {
	req, err := logsQuery(r)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	org := principalOrg(r)
	filter := newTailFilter(req)
	agent := req.AgentID
	if agent == "" {
		agent = "*"
	}
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept has answered the client
	}
	defer conn.CloseNow()
	// A tail lives as long as its client: detached from the request
	// deadline on purpose, keeping the request's values.
	ctx := conn.CloseRead(context.WithoutCancel(r.Context()))

	buf := make(chan events.LogEntry, TailBuffer)
	var dropped atomic.Int64
	sub, err := l.d.NC.Subscribe(events.AgentLogs(org, agent), func(m *nats.Msg) {
		// The subject's agent token is the publisher's, enforced by NATS.
		parts := strings.Split(m.Subject, ".")
		if len(parts) != 4 {
			return
		}
		for _, e := range filter.batchEntries(parts[2], m.Data) {
			select {
			case buf <- e:
			default:
				dropped.Add(1)
			}
		}
	})
	if err != nil {
		conn.Close(websocket.StatusInternalError, "subscribe failed")
		return
	}
	defer func() { _ = sub.Unsubscribe() }()
	_ = sub.SetPendingLimits(tailNATSPending, 64<<20)
	fctx, cancel := context.WithTimeout(ctx, tailWriteTimeout)
	err = l.d.NC.FlushWithContext(fctx)
	cancel()
	if err != nil {
		conn.Close(websocket.StatusInternalError, "subscribe failed")
		return
	}
	if writeJSON(ctx, conn, map[string]bool{"ready": true}) != nil {
		return
	}
	ping := time.NewTicker(tailPing)
	defer ping.Stop()
	var natsDropped int
	notice := func() error {
		n := dropped.Swap(0)
		nd, _ := sub.Dropped()
		if n == 0 && nd == natsDropped {
			return nil
		}
		msg := map[string]int64{"dropped": n}
		if nd > natsDropped {
			msg["dropped_batches"] = int64(nd - natsDropped)
		}
		natsDropped = nd
		return writeJSON(ctx, conn, msg)
	}
	for {
		select {
		case <-ctx.Done():
			conn.Close(websocket.StatusNormalClosure, "")
			return
		case e := <-buf:
			if notice() != nil || writeJSON(ctx, conn, e) != nil {
				return
			}
		case <-ping.C:
			if notice() != nil {
				return
			}
			pctx, cancel := context.WithTimeout(ctx, tailWriteTimeout)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return
			}
		}
	}
}

// writeJSON sends one message, giving up (and so ending the tail) when the
// client does not take it within tailWriteTimeout.
func writeJSON(ctx context.Context, conn *websocket.Conn, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, tailWriteTimeout)
	defer cancel()
	return conn.Write(wctx, websocket.MessageText, data)
}
