package routes

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/events/logline"
	"github.com/infrapilot/infrapilot/gateway/internal/authn"
	"github.com/infrapilot/infrapilot/gateway/internal/httpapi"
	"github.com/infrapilot/infrapilot/gateway/internal/natsreq"
	"github.com/infrapilot/infrapilot/gateway/internal/reqctx"
)

// logsService is the log-ingest service's subject token.
const logsService = "logingest"

// Export bounds: the whole export, and each page's call.
const (
	exportTimeout     = 10 * time.Minute
	exportPageTimeout = 30 * time.Second
	exportPageSize    = events.LogsMaxLimit
)

// MountLogs registers the log routes: search (GET /logs), export (GET
// /logs/export, streamed), the live tail (WS /logs/stream, fed from the
// agents' log subjects), the org's retention (GET /logs/retention), and an
// agent's metric roll-ups (GET /agents/{id}/metrics). Everything acts in
// the request's org: the service takes it from the headers, the live tail
// subscribes to that org's subjects only. Reading logs needs logs:read,
// metrics agents:read.
func MountLogs(api chi.Router, d Deps) {
	l := logRoutes{d: d}
	read := api.With(authn.Require(events.PermLogsRead))
	read.Get("/logs", l.search)
	read.Get("/logs/export", l.export)
	read.Get("/logs/stream", l.stream)
	read.Get("/logs/retention", l.retention)
}

// MountAgentMetrics registers GET /agents/{id}/metrics, an agent's metric
// roll-ups. It is not an area of its own: MountAgents mounts it behind its
// agent check, so that a foreign or unknown agent id answers 404 rather
// than 200 with empty series.
func MountAgentMetrics(api chi.Router, d Deps) {
	l := logRoutes{d: d}
	api.With(authn.Require(events.PermAgentsRead)).Get("/agents/{id}/metrics", l.metrics)
}

type logRoutes struct{ d Deps }

// logsQuery reads GET /logs's parameters (the export's and the live
// tail's too) and checks their form; the service checks the rest.
func logsQuery(r *http.Request) (events.LogsQueryRequest, error) {
	q := &auditQuery{r: r}
	req := events.LogsQueryRequest{AgentID: q.get("agent_id"), Container: q.get("container"), Source: q.get("source"),
		Level: q.get("level"), Q: q.get("q"), Regex: q.get("regex"), From: q.time("from"), To: q.time("to"), Cursor: q.get("cursor")}
	if v := q.get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > events.LogsMaxLimit {
			q.bad("limit", "must be an integer from 1 to "+strconv.Itoa(events.LogsMaxLimit))
		}
		req.Limit = n
	}
	if req.AgentID != "" && !events.ValidToken(req.AgentID) {
		q.bad("agent_id", "not a valid agent id")
	}
	switch req.Source {
	case "", events.LogSourceContainer, events.LogSourceNginx:
	default:
		q.bad("source", "must be container or nginx")
	}
	if req.Level != "" {
		for _, l := range strings.Split(req.Level, ",") {
			if !logline.ValidLevel(strings.ToLower(strings.TrimSpace(l))) {
				q.bad("level", "levels are error, warn, info and debug (comma-separated)")
				break
			}
		}
	}
	if len(req.Q) > events.LogsMaxQueryLength {
		q.bad("q", "at most "+strconv.Itoa(events.LogsMaxQueryLength)+" bytes")
	}
	if req.Regex != "" {
		if _, err := regexp.Compile(req.Regex); err != nil || len(req.Regex) > events.LogsMaxQueryLength {
			q.bad("regex", "not a valid RE2 expression of at most "+strconv.Itoa(events.LogsMaxQueryLength)+" bytes")
		}
	}
	return req, q.err()
}

func (l logRoutes) search(w http.ResponseWriter, r *http.Request) {
	req, err := logsQuery(r)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	page, err := natsreq.Call[events.LogsQueryRequest, events.RawJSON](r.Context(), l.d.NC, events.ServiceEndpoint(logsService, events.OpLogsQuery), req)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	httpapi.JSON(w, r, http.StatusOK, page)
}

func (l logRoutes) retention(w http.ResponseWriter, r *http.Request) {
	st, err := natsreq.Call[events.Empty, events.RawJSON](r.Context(), l.d.NC, events.ServiceEndpoint(logsService, events.OpLogsRetention), events.Empty{})
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	httpapi.JSON(w, r, http.StatusOK, st)
}

func (l logRoutes) metrics(w http.ResponseWriter, r *http.Request) {
	q := &auditQuery{r: r}
	req := events.AgentMetricsRequest{AgentID: chi.URLParam(r, "id"), From: q.time("from"), To: q.time("to"), Container: q.get("container")}
	if v := q.get("step"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 60 || n%60 != 0 {
			q.bad("step", "a number of seconds, a multiple of 60")
		}
		req.StepSeconds = n
	}
	if !events.ValidToken(req.AgentID) {
		httpapi.Error(w, r, events.NotFound("no agent %q", req.AgentID))
		return
	}
	if err := q.err(); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	reply, err := natsreq.Call[events.AgentMetricsRequest, events.RawJSON](r.Context(), l.d.NC, events.ServiceEndpoint(logsService, events.OpLogsMetrics), req)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	httpapi.JSON(w, r, http.StatusOK, reply)
}

// export streams every line matching the filters, newest first, as CSV or
// JSON Lines. It pages through the query operation (one bounded reply per
// page, never the whole export in one message) and writes each page as it
// arrives; memory stays at one page. At most events.LogsExportMaxLines
// lines are written; the trailer X-Export-Truncated (and, in JSONL, a last
// {"truncated": true, "next_cursor": …} object) says when the export
// stopped there. A failure after the first page aborts the response, so a
// client never takes a cut export for a whole one.
func (l logRoutes) export(w http.ResponseWriter, r *http.Request) {
	format := r.URL.Query().Get("format")
	if format == "" {
		format = "jsonl"
	}
	req, err := logsQuery(r)
	if err == nil && format != "csv" && format != "jsonl" {
		err = events.Invalid("invalid query parameters").WithFields(events.FieldError{Field: "format", Message: "must be csv or jsonl"})
	}
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	req.Limit = exportPageSize
	// The export outlives the gateway's request deadline on purpose, with
	// a bound of its own; it keeps the request's values (principal, ids).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), exportTimeout)
	defer cancel()
	page, err := l.exportPage(ctx, req)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Trailer", "X-Export-Truncated, X-Export-Lines")
	if format == "csv" {
		h.Set("Content-Type", "text/csv; charset=utf-8")
	} else {
		h.Set("Content-Type", "application/x-ndjson")
	}
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="logs-%s.%s"`, time.Now().UTC().Format("20060102T150405Z"), format))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	enc := newExportEncoder(format, w)
	flusher, _ := w.(http.Flusher)
	written := 0
	for {
		for _, e := range page.Items {
			if written == events.LogsExportMaxLines {
				break
			}
			if err := enc.write(e); err != nil {
				return // the client went away
			}
			written++
		}
		if err := enc.flush(); err != nil {
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
		if page.NextCursor == "" || written == events.LogsExportMaxLines {
			break
		}
		req.Cursor = page.NextCursor
		if page, err = l.exportPage(ctx, req); err != nil {
			l.d.Log.WarnContext(r.Context(), "log export aborted", "err", err, "lines", written)
			panic(http.ErrAbortHandler)
		}
	}
	truncated := page.NextCursor != "" && written == events.LogsExportMaxLines
	if truncated && format == "jsonl" {
		_ = json.NewEncoder(w).Encode(map[string]any{"truncated": true, "next_cursor": page.NextCursor})
	}
	h.Set("X-Export-Truncated", strconv.FormatBool(truncated))
	h.Set("X-Export-Lines", strconv.Itoa(written))
}

func (l logRoutes) exportPage(ctx context.Context, req events.LogsQueryRequest) (events.LogsPage, error) {
	ctx, cancel := context.WithTimeout(ctx, exportPageTimeout)
	defer cancel()
	return natsreq.Call[events.LogsQueryRequest, events.LogsPage](ctx, l.d.NC, events.ServiceEndpoint(logsService, events.OpLogsQuery), req)
}

// exportEncoder writes log entries in an export format.
type exportEncoder struct {
	csv  *csv.Writer
	json *json.Encoder
}

// csvColumns are the CSV export's columns, in order.
var csvColumns = []string{"time", "id", "agent_id", "source", "container", "container_name", "stack", "stream", "level", "message", "line"}

func newExportEncoder(format string, w http.ResponseWriter) *exportEncoder {
	if format == "csv" {
		c := csv.NewWriter(w)
		_ = c.Write(csvColumns)
		return &exportEncoder{csv: c}
	}
	return &exportEncoder{json: json.NewEncoder(w)}
}

func (e *exportEncoder) write(l events.LogEntry) error {
	if e.json != nil {
		return e.json.Encode(l)
	}
	return e.csv.Write([]string{l.Time.UTC().Format(time.RFC3339Nano), l.ID, l.AgentID, l.Source, l.Container,
		cell(l.ContainerName), cell(l.Stack), l.Stream, l.Level, cell(l.Message), cell(l.Line)})
}

func (e *exportEncoder) flush() error {
	if e.csv == nil {
		return nil
	}
	e.csv.Flush()
	return e.csv.Error()
}

// cell defuses a CSV cell a spreadsheet would run as a formula (OWASP's
// CSV injection advice): a leading =, +, -, @, tab or carriage return
// gets a ' before it. Log lines are written by anyone who can make a
// container print.
func cell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// principalOrg is the org a request acts in (authn.Require guarantees one).
func principalOrg(r *http.Request) string {
	p, _ := reqctx.PrincipalFrom(r.Context())
	return p.OrgID
}
