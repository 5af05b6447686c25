package routes

import (
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway/internal/authn"
	"github.com/infrapilot/infrapilot/gateway/internal/httpapi"
	"github.com/infrapilot/infrapilot/gateway/internal/natsreq"
)

// MountAudit registers API.md's audit routes of the audit service's core:
// the log with filters and cursor pagination, verification, checkpoints,
// the public key and the configuration. Everything acts in the request's
// org (the service takes it from the headers, never from the query or the
// body); reading needs audit:read, changing the configuration
// audit:manage. Query parameters are checked here, so that a malformed one
// is a 400 with a field error before any service is asked.
func MountAudit(api chi.Router, d Deps) {
	a := auditRoutes{d: d}
	read := api.With(authn.Require(events.PermAuditRead))
	read.Get("/audit", a.list)
	read.Get("/audit/verify", a.verify)
	read.Get("/audit/checkpoints", a.checkpoints)
	read.Get("/audit/public-key", a.publicKey)
	read.Get("/audit/config", a.getConfig)
	api.With(authn.Require(events.PermAuditManage)).Put("/audit/config", a.putConfig)
}

type auditRoutes struct{ d Deps }

// auditCall calls an audit operation and writes its reply or error.
func auditCall[Req, Resp any](a auditRoutes, w http.ResponseWriter, r *http.Request, op string, req Req) {
	resp, err := natsreq.Call[Req, Resp](r.Context(), a.d.NC, events.ServiceEndpoint("audit", op), req)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	httpapi.JSON(w, r, http.StatusOK, resp)
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
	var req events.AuditConfigRequest
	if err := httpapi.Decode(r, &req); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	auditCall[events.AuditConfigRequest, events.RawJSON](a, w, r, events.OpAuditPutConfig, req)
}
