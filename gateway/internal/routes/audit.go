package routes

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway/internal/authn"
	"github.com/infrapilot/infrapilot/gateway/internal/httpapi"
	"github.com/infrapilot/infrapilot/gateway/internal/natsreq"
	"github.com/infrapilot/infrapilot/gateway/internal/reqctx"
	"github.com/nats-io/nats.go/jetstream"
)

// MountAudit registers API.md's audit routes: the log with filters and
// cursor pagination, verification, checkpoints, the public key, the
// configuration (retention and SIEM destinations), exports, compliance
// reports, the SIEM forwarding test and SIEM read credentials. Everything
// acts in the request's org (the service takes it from the headers, never
// from the query or the body); reading, exporting and reports need
// audit:read, changing the configuration, testing a destination and SIEM
// credentials audit:manage. Query parameters
// are checked here, so that a malformed one is a 400 with a field error
// before any service is asked.
//
// Export and report files are streamed from the audit service's JetStream
// object store buckets straight to the client, a chunk at a time: a file
// can be far larger than a NATS message, and is never held in memory. The
// service says which object a resource's file is; the gateway serves it
// only if its name carries the caller's own org (from the authenticated
// principal, never from the request).
func MountAudit(api chi.Router, d Deps) {
	js, err := jetstream.New(d.NC)
	if err != nil && d.Log != nil {
		d.Log.Error("audit routes: no JetStream context; downloads will fail", "err", err)
	}
	a := auditRoutes{d: d, js: js}
	read := api.With(authn.Require(events.PermAuditRead))
	read.Get("/audit", a.list)
	read.Get("/audit/verify", a.verify)
	read.Get("/audit/checkpoints", a.checkpoints)
	read.Get("/audit/public-key", a.publicKey)
	read.Get("/audit/config", a.getConfig)
	read.Get("/audit/exports", a.listExports)
	read.Post("/audit/exports", a.createExport)
	read.Get("/audit/exports/{id}", a.getExport)
	read.Get("/audit/exports/{id}/download", a.downloadExport)
	read.Get("/audit/reports", a.listReports)
	read.Post("/audit/reports", a.createReport)
	read.Get("/audit/reports/{id}", a.getReport)
	manage := api.With(authn.Require(events.PermAuditManage))
	manage.Put("/audit/config", a.putConfig)
	manage.Post("/audit/forwarding/test", a.testForwarding)
	manage.Post("/audit/siem-credentials", a.createSIEMCredentials)
	manage.Get("/audit/siem-credentials", a.listSIEMCredentials)
	manage.Delete("/audit/siem-credentials/{id}", a.revokeSIEMCredentials)
}

type auditRoutes struct {
	d  Deps
	js jetstream.JetStream
}

// auditCall calls an audit operation and writes its reply or error.
func auditCall[Req, Resp any](a auditRoutes, w http.ResponseWriter, r *http.Request, op string, req Req) {
	auditCallStatus[Req, Resp](a, w, r, op, req, http.StatusOK)
}

// auditCallStatus is auditCall answering status on success (201 for a
// created resource).
func auditCallStatus[Req, Resp any](a auditRoutes, w http.ResponseWriter, r *http.Request, op string, req Req, status int) {
	resp, err := natsreq.Call[Req, Resp](r.Context(), a.d.NC, events.ServiceEndpoint("audit", op), req)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	httpapi.JSON(w, r, status, resp)
}

// auditBody decodes the request body and calls op with it.
func auditBody[Req, Resp any](a auditRoutes, w http.ResponseWriter, r *http.Request, op string, status int) {
	var req Req
	if err := httpapi.Decode(r, &req); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	auditCallStatus[Req, Resp](a, w, r, op, req, status)
}

// auditQuery collects field errors while reading query parameters.
type auditQuery struct {
	r      *http.Request
	fields []events.FieldError
}

func (q *auditQuery) bad(field, msg string) {
	q.fields = append(q.fields, events.FieldError{Field: field, Message: msg})
}

func (q *auditQuery) get(name string) string { return q.r.URL.Query().Get(name) }

// time returns an RFC 3339 parameter, normalised.
func (q *auditQuery) time(name string) string {
	v := q.get(name)
	if v == "" {
		return ""
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		q.bad(name, "want an RFC 3339 time, e.g. 2026-11-29T10:00:00Z")
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func (q *auditQuery) limit() int {
	v := q.get("limit")
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > events.AuditListMaxLimit {
		q.bad("limit", "must be an integer from 1 to "+strconv.Itoa(events.AuditListMaxLimit))
		return 0
	}
	return n
}

func (q *auditQuery) err() error {
	if len(q.fields) == 0 {
		return nil
	}
	return events.Invalid("invalid query parameters").WithFields(q.fields...)
}

func (a auditRoutes) list(w http.ResponseWriter, r *http.Request) {
	q := &auditQuery{r: r}
	req := events.AuditListRequest{Action: q.get("action"), ResourceType: q.get("resource_type"), Actor: q.get("actor"),
		From: q.time("from"), To: q.time("to"), Limit: q.limit(), Cursor: q.get("cursor")}
	if err := q.err(); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	auditCall[events.AuditListRequest, events.RawJSON](a, w, r, events.OpAuditList, req)
}

// verify takes from and to as chain indices (integers) or as RFC 3339
// times.
func (a auditRoutes) verify(w http.ResponseWriter, r *http.Request) {
	q := &auditQuery{r: r}
	var req events.AuditVerifyRequest
	for _, name := range []string{"from", "to"} {
		v := q.get(name)
		if v == "" {
			continue
		}
		if n, err := strconv.ParseUint(v, 10, 64); err == nil && n > 0 {
			if name == "from" {
				req.FromIndex = n
			} else {
				req.ToIndex = n
			}
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			q.bad(name, "want a chain index (1, 2, …) or an RFC 3339 time")
			continue
		}
		if name == "from" {
			req.From = t.UTC().Format(time.RFC3339Nano)
		} else {
			req.To = t.UTC().Format(time.RFC3339Nano)
		}
	}
	if err := q.err(); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	auditCall[events.AuditVerifyRequest, events.RawJSON](a, w, r, events.OpAuditVerify, req)
}

func (a auditRoutes) checkpoints(w http.ResponseWriter, r *http.Request) {
	q := &auditQuery{r: r}
	req := events.AuditPageRequest{Limit: q.limit(), Cursor: q.get("cursor")}
	if err := q.err(); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	auditCall[events.AuditPageRequest, events.RawJSON](a, w, r, events.OpAuditCheckpoints, req)
}

func (a auditRoutes) publicKey(w http.ResponseWriter, r *http.Request) {
	auditCall[events.Empty, events.RawJSON](a, w, r, events.OpAuditPublicKey, events.Empty{})
}

func (a auditRoutes) getConfig(w http.ResponseWriter, r *http.Request) {
	auditCall[events.Empty, events.RawJSON](a, w, r, events.OpAuditGetConfig, events.Empty{})
}

func (a auditRoutes) putConfig(w http.ResponseWriter, r *http.Request) {
	auditBody[events.AuditConfigRequest, events.RawJSON](a, w, r, events.OpAuditPutConfig, http.StatusOK)
}

func (a auditRoutes) testForwarding(w http.ResponseWriter, r *http.Request) {
	auditBody[events.AuditForwardingTestRequest, events.RawJSON](a, w, r, events.OpAuditForwardingTest, http.StatusOK)
}

// createSIEMCredentials answers POST /audit/siem-credentials. The reply
// holds the only copy of the credentials, so no cache may keep it.
func (a auditRoutes) createSIEMCredentials(w http.ResponseWriter, r *http.Request) {
	var req events.AuditSIEMCredentialsRequest
	if err := httpapi.Decode(r, &req); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	resp, err := natsreq.Call[events.AuditSIEMCredentialsRequest, events.RawJSON](r.Context(), a.d.NC,
		events.ServiceEndpoint("audit", events.OpAuditSIEMCredentialsCreate), req)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	httpapi.JSON(w, r, http.StatusCreated, resp)
}

func (a auditRoutes) listSIEMCredentials(w http.ResponseWriter, r *http.Request) {
	a.page(w, r, events.OpAuditSIEMCredentialsList)
}

func (a auditRoutes) revokeSIEMCredentials(w http.ResponseWriter, r *http.Request) {
	auditCallStatus[events.AuditIDRequest, events.Empty](a, w, r, events.OpAuditSIEMCredentialsRevoke,
		events.AuditIDRequest{ID: chi.URLParam(r, "id")}, http.StatusNoContent)
}

func (a auditRoutes) page(w http.ResponseWriter, r *http.Request, op string) {
	q := &auditQuery{r: r}
	req := events.AuditPageRequest{Limit: q.limit(), Cursor: q.get("cursor")}
	if err := q.err(); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	auditCall[events.AuditPageRequest, events.RawJSON](a, w, r, op, req)
}

func (a auditRoutes) listExports(w http.ResponseWriter, r *http.Request) {
	a.page(w, r, events.OpAuditExportList)
}

func (a auditRoutes) createExport(w http.ResponseWriter, r *http.Request) {
	auditBody[events.AuditExportRequest, events.RawJSON](a, w, r, events.OpAuditExportCreate, http.StatusCreated)
}

func (a auditRoutes) getExport(w http.ResponseWriter, r *http.Request) {
	auditCall[events.AuditIDRequest, events.RawJSON](a, w, r, events.OpAuditExportGet, events.AuditIDRequest{ID: chi.URLParam(r, "id")})
}

func (a auditRoutes) listReports(w http.ResponseWriter, r *http.Request) {
	a.page(w, r, events.OpAuditReportList)
}

func (a auditRoutes) createReport(w http.ResponseWriter, r *http.Request) {
	auditBody[events.AuditReportRequest, events.RawJSON](a, w, r, events.OpAuditReportCreate, http.StatusCreated)
}

// downloadExport streams a finished export's file.
func (a auditRoutes) downloadExport(w http.ResponseWriter, r *http.Request) {
	job, err := natsreq.Call[events.AuditIDRequest, events.AuditExport](r.Context(), a.d.NC,
		events.ServiceEndpoint("audit", events.OpAuditExportGet), events.AuditIDRequest{ID: chi.URLParam(r, "id")})
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	if job.Status != events.AuditExportStatusDone {
		httpapi.Error(w, r, events.Errorf(events.CodeConflict, "export %s is %s, not done", job.ID, job.Status))
		return
	}
	a.serveObject(w, r, auditObject{bucket: job.Bucket, name: job.Object, contentType: job.ContentType, fileName: job.FileName})
}

// getReport streams a stored report, rendered as ?format= (json or csv),
// else as the Accept header prefers, else as the report was asked for.
func (a auditRoutes) getReport(w http.ResponseWriter, r *http.Request) {
	q := &auditQuery{r: r}
	format := q.get("format")
	if format != "" && format != "json" && format != "csv" {
		q.bad("format", "json or csv")
	}
	if err := q.err(); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	rep, err := natsreq.Call[events.AuditIDRequest, events.AuditReport](r.Context(), a.d.NC,
		events.ServiceEndpoint("audit", events.OpAuditReportGet), events.AuditIDRequest{ID: chi.URLParam(r, "id")})
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	if format == "" {
		format = auditAccept(r.Header.Get("Accept"), rep.Format)
	}
	obj := auditObject{bucket: rep.Bucket, name: rep.Objects[format], contentType: "application/json"}
	if format == "csv" {
		obj.contentType = "text/csv; charset=utf-8"
		obj.fileName = "audit-report-" + rep.Kind + "-" + rep.ID + ".csv"
	}
	a.serveObject(w, r, obj)
}

// auditAccept picks json or csv from an Accept header; def when it
// prefers neither.
func auditAccept(accept, def string) string {
	for _, part := range strings.Split(accept, ",") {
		mt, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		switch strings.ToLower(strings.TrimSpace(mt)) {
		case "text/csv":
			return "csv"
		case "application/json":
			return "json"
		}
	}
	if def != "csv" {
		return "json"
	}
	return def
}

// Limits of a file download: the whole read, and how long one write to a
// client that does not read may block before it is cut off.
const (
	auditDownloadTimeout = time.Hour
	auditWriteStall      = time.Minute
)

// auditObject is a file in one of the audit buckets.
type auditObject struct {
	bucket, name          string
	contentType, fileName string
}

// serveObject streams obj to the client. It first checks that obj is one
// of the caller's org's objects in an audit bucket: anything else is
// answered as not found and logged, whatever the service said.
func (a auditRoutes) serveObject(w http.ResponseWriter, r *http.Request, obj auditObject) {
	p, _ := reqctx.PrincipalFrom(r.Context())
	if !events.ValidToken(p.OrgID) || !strings.HasPrefix(obj.name, events.AuditObjectPrefix(p.OrgID)) ||
		(obj.bucket != events.AuditBucketExports && obj.bucket != events.AuditBucketArchive) {
		if a.d.Log != nil {
			a.d.Log.ErrorContext(r.Context(), "audit file outside the caller's org refused", "org_id", p.OrgID,
				"bucket", obj.bucket, "object", obj.name, "request_id", reqctx.RequestID(r.Context()))
		}
		httpapi.Error(w, r, events.NotFound("file not found"))
		return
	}
	if a.js == nil {
		httpapi.Error(w, r, events.Errorf(events.CodeUnavailable, "file downloads are unavailable"))
		return
	}
	// The request's deadline bounds service calls; a download may take
	// longer, so it has a deadline of its own. A client that goes away
	// ends it through the failed write.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), auditDownloadTimeout)
	defer cancel()
	store, err := a.js.ObjectStore(ctx, obj.bucket)
	if err != nil {
		httpapi.Error(w, r, &events.Error{Code: events.CodeUnavailable, Message: "file store unavailable", Err: err})
		return
	}
	res, err := store.Get(ctx, obj.name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		httpapi.Error(w, r, events.NotFound("the file is no longer available (exports expire); create it again"))
		return
	}
	if err != nil {
		httpapi.Error(w, r, &events.Error{Code: events.CodeUnavailable, Message: "file store unavailable", Err: err})
		return
	}
	defer res.Close()
	h := w.Header()
	h.Set("Content-Type", obj.contentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	if obj.fileName != "" {
		h.Set("Content-Disposition", `attachment; filename="`+obj.fileName+`"`)
	}
	if info, err := res.Info(); err == nil {
		h.Set("Content-Length", strconv.FormatUint(info.Size, 10))
	}
	w.WriteHeader(http.StatusOK)
	if err := auditCopy(w, res); err != nil {
		// Part of the file is out: abort the connection, so that the
		// client cannot take a truncated file for a whole one.
		if a.d.Log != nil {
			a.d.Log.WarnContext(r.Context(), "audit file download cut off", "object", obj.name, "err", err,
				"request_id", reqctx.RequestID(r.Context()))
		}
		panic(http.ErrAbortHandler)
	}
}

// auditCopy copies src to w a buffer at a time, giving each write
// auditWriteStall to complete. The object store checks the file's SHA-256
// at the end of the read, so a corrupted file ends in an error here.
func auditCopy(w http.ResponseWriter, src io.Reader) error {
	rc := http.NewResponseController(w)
	buf := make([]byte, 64<<10)
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			_ = rc.SetWriteDeadline(time.Now().Add(auditWriteStall))
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
		}
		if errors.Is(rerr, io.EOF) {
			_ = rc.SetWriteDeadline(time.Time{})
			return rc.Flush()
		}
		if rerr != nil {
			return rerr
		}
	}
}
