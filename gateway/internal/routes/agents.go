package routes

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway/internal/authn"
	"github.com/infrapilot/infrapilot/gateway/internal/httpapi"
	"github.com/infrapilot/infrapilot/gateway/internal/natsreq"
	"github.com/infrapilot/infrapilot/gateway/internal/reqctx"
	"github.com/nats-io/nats.go"
)

// Bounds of the commands the gateway sends to an agent. A read answers
// from the engine's state; a stop or restart also waits for the
// container's grace period, so its bound grows with it (and, when no
// grace period is given, leaves room for the image's own, which may
// exceed the engine's 10 s default).
const (
	agentReadTimeout   = 10 * time.Second
	agentActionTimeout = 15 * time.Second
	defaultStopGrace   = 30 * time.Second
	maxStopTimeout     = 300 // seconds
	defaultLogsTail    = 100
	maxLogsTail        = 10000
)

// HeaderLogsSource says where the lines of GET …/containers/{cid}/logs
// came from: "agent", or "store" when the agent could not be reached and
// they are the latest lines the log store holds.
const HeaderLogsSource = "X-Logs-Source"

// errAgentUnreachable marks the errors that mean the agent did not answer
// at all (as opposed to answering with an error of its own).
var errAgentUnreachable = errors.New("agent unreachable")

// containerParam is what a container may be named by: an id, an id
// prefix, or a name as the engines allow them.
var containerParam = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$`)

// MountAgents registers API.md's "Agents and Docker" routes.
//
// POST /agents/enroll takes no bearer: the enrollment token in the body
// names the org and authenticates, so it is rate limited per client IP
// like the login routes. The registry routes (/agents, /agents/{id}) go
// to the tenancy service in the request's org. Everything below
// /agents/{id}/ first looks the agent up in the request's org and answers
// 404 for an unknown agent or one of another org before the role is
// looked at or anything is sent to an agent; then it sends the command to
// that agent (events.AgentCommand) with a bounded wait, and answers 503
// when the agent is offline or does not answer. Reading containers needs
// containers:read, starting and stopping them containers:write, a shell
// containers:exec.
func MountAgents(api chi.Router, d Deps) {
	a := agentRoutes{d: d}
	t := tenancy{d: d}
	api.With(authn.LimitAuth).Post("/agents/enroll", a.enroll)
	api.With(authn.Require(events.PermAgentsRead)).Get("/agents/enroll/status", a.enrollStatus)
	api.With(authn.Require(events.PermAgentsRead)).Get("/agents", t.list(events.OpTenancyListAgents))
	api.With(authn.Require(events.PermAgentsRead)).Get("/agents/{id}", t.byID(events.OpTenancyGetAgent, http.StatusOK))
	api.With(authn.Require(events.PermAgentsManage)).Delete("/agents/{id}", t.byID(events.OpTenancyDeleteAgent, http.StatusNoContent))

	// A group rather than a sub-router, so that the metrics route, which
	// registers its own full path, sits behind the same agent check.
	api.Group(func(r chi.Router) {
		r.Use(a.resolve)
		need := func(p events.Permission) chi.Router { return r.With(authn.Require(p)) }
		MountAgentMetrics(r, d)
		need(events.PermContainersRead).Get("/agents/{id}/containers", a.listContainers)
		need(events.PermContainersRead).Get("/agents/{id}/containers/{cid}", a.inspect)
		need(events.PermContainersWrite).Post("/agents/{id}/containers/{cid}/start", a.start)
		need(events.PermContainersWrite).Post("/agents/{id}/containers/{cid}/stop", a.stopOrRestart(events.OpAgentContainerStop))
		need(events.PermContainersWrite).Post("/agents/{id}/containers/{cid}/restart", a.stopOrRestart(events.OpAgentContainerRestart))
		need(events.PermContainersRead).Get("/agents/{id}/containers/{cid}/logs", a.logs)
		need(events.PermContainersRead).Get("/agents/{id}/containers/{cid}/logs/stream", a.logsStream)
		need(events.PermContainersExec).Get("/agents/{id}/containers/{cid}/exec", a.exec)
		need(events.PermContainersRead).Get("/agents/{id}/containers/{cid}/networks", a.containerNetworks)
		need(events.PermContainersRead).Get("/agents/{id}/stacks", a.stacks)
		need(events.PermContainersRead).Get("/agents/{id}/networks", a.networks)
	})
}

type agentRoutes struct{ d Deps }

// enroll answers POST /agents/enroll. The tenancy service learns the org
// from the token alone: a bearer the caller may have sent anyway adds no
// org or actor to the request. The reply holds the agent's credentials,
// so no cache may keep it.
func (a agentRoutes) enroll(w http.ResponseWriter, r *http.Request) {
	var req events.EnrollAgentRequest
	if err := httpapi.Decode(r, &req); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	ctx := reqctx.WithPrincipal(r.Context(), reqctx.Principal{})
	resp, err := natsreq.Call[events.EnrollAgentRequest, events.AgentEnrollment](ctx, a.d.NC,
		events.ServiceEndpoint("tenancy", events.OpTenancyEnrollAgent), req)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	httpapi.JSON(w, r, http.StatusOK, resp)
}

// enrollStatus answers GET /agents/enroll/status?fingerprint=.
func (a agentRoutes) enrollStatus(w http.ResponseWriter, r *http.Request) {
	fp := r.URL.Query().Get("fingerprint")
	if fp == "" {
		httpapi.Error(w, r, events.Invalid("invalid query parameters").WithFields(
			events.FieldError{Field: "fingerprint", Message: "required"}))
		return
	}
	answer[events.EnrollStatusRequest, events.EnrollStatus](tenancy{d: a.d}, w, r, events.OpTenancyEnrollStatus,
		events.EnrollStatusRequest{Fingerprint: fp}, http.StatusOK)
}

// resolve lets a request below /agents/{id}/ through only when the agent
// is one of the request's org: anything else answers 404, before the
// role check, so a caller learns nothing about other orgs' agents (and
// never has a command sent to one). An anonymous request, or one acting
// in no org, passes on for the permission middleware to answer 401 or
// 403.
func (a agentRoutes) resolve(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := reqctx.PrincipalFrom(r.Context())
		if !ok || p.ID == "" || p.OrgID == "" {
			next.ServeHTTP(w, r)
			return
		}
		id := chi.URLParam(r, "id")
		if !events.ValidToken(id) {
			httpapi.Error(w, r, events.NotFound("agent %s not found", id))
			return
		}
		ag, err := natsreq.Call[events.IDRequest, events.Agent](r.Context(), a.d.NC,
			events.ServiceEndpoint("tenancy", events.OpTenancyGetAgent), events.IDRequest{ID: id})
		if err == nil && (ag.ID != id || ag.OrgID != p.OrgID) {
			// The registry answers in the request's org; a reply about any
			// other agent is treated as no agent at all.
			err = events.NotFound("agent %s not found", id)
		}
		if err != nil {
			httpapi.Error(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// agentCall sends op to an agent of org and waits at most timeout. An
// agent that is not connected (no responder) or does not answer in time
// is unavailable (503, naming the agent, wrapping errAgentUnreachable);
// an agent's own error reply passes through as it is.
func agentCall[Req, Resp any](ctx context.Context, nc *nats.Conn, org, agent, op string, req Req, timeout time.Duration) (Resp, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := natsreq.Call[Req, Resp](ctx, nc, events.AgentCommand(org, agent, op), req)
	switch {
	case err == nil:
	case errors.Is(err, nats.ErrNoResponders):
		err = &events.Error{Code: events.CodeUnavailable, Message: fmt.Sprintf("agent %s is offline", agent), Err: errAgentUnreachable}
	case errors.Is(err, context.DeadlineExceeded):
		// Not wrapping the deadline: an agent's silence is a 503, not the
		// 504 of a service that ran out of time.
		err = &events.Error{Code: events.CodeUnavailable, Message: fmt.Sprintf("agent %s did not answer", agent), Err: errAgentUnreachable}
	}
	return resp, err
}

// agentAnswer sends op to the request's agent and writes its reply.
func agentAnswer[Req, Resp any](a agentRoutes, w http.ResponseWriter, r *http.Request, op string, req Req, timeout time.Duration) {
	resp, err := agentCall[Req, Resp](r.Context(), a.d.NC, principalOrg(r), chi.URLParam(r, "id"), op, req, timeout)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	httpapi.JSON(w, r, http.StatusOK, resp)
}

// agentList is agentAnswer for the list operations: {items: [...]},
// never {items: null}.
func agentList[Req, T any](a agentRoutes, w http.ResponseWriter, r *http.Request, op string, req Req) {
	resp, err := agentCall[Req, events.List[T]](r.Context(), a.d.NC, principalOrg(r), chi.URLParam(r, "id"), op, req, agentReadTimeout)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	if resp.Items == nil {
		resp.Items = []T{}
	}
	httpapi.JSON(w, r, http.StatusOK, resp)
}

// container returns {cid}, or a not_found error when it cannot name a
// container.
func container(r *http.Request) (string, error) {
	cid := chi.URLParam(r, "cid")
	if !containerParam.MatchString(cid) {
		return "", events.NotFound("container %q not found", cid)
	}
	return cid, nil
}

// intParam reads an optional integer query parameter within lo..hi.
func intParam(q *auditQuery, name string, lo, hi, def int) int {
	v := q.get(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		q.bad(name, fmt.Sprintf("must be an integer from %d to %d", lo, hi))
		return def
	}
	return n
}

// boolParam reads an optional boolean query parameter.
func boolParam(q *auditQuery, name string, def bool) bool {
	v := q.get(name)
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		q.bad(name, "must be true or false")
		return def
	}
	return b
}

// listContainers answers GET /agents/{id}/containers[?all=true]: running
// containers, or all of them.
func (a agentRoutes) listContainers(w http.ResponseWriter, r *http.Request) {
	q := &auditQuery{r: r}
	req := events.ContainersListRequest{All: boolParam(q, "all", false)}
	if err := q.err(); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	agentList[events.ContainersListRequest, events.Container](a, w, r, events.OpAgentContainersList, req)
}

// inspect answers GET /agents/{id}/containers/{cid}.
func (a agentRoutes) inspect(w http.ResponseWriter, r *http.Request) {
	cid, err := container(r)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	agentAnswer[events.ContainerRef, events.ContainerDetail](a, w, r, events.OpAgentContainerInspect,
		events.ContainerRef{ID: cid}, agentReadTimeout)
}

// containerNetworks answers GET /agents/{id}/containers/{cid}/networks.
func (a agentRoutes) containerNetworks(w http.ResponseWriter, r *http.Request) {
	cid, err := container(r)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	agentList[events.ContainerRef, events.ContainerNetwork](a, w, r, events.OpAgentContainerNetworks, events.ContainerRef{ID: cid})
}

// stacks answers GET /agents/{id}/stacks.
func (a agentRoutes) stacks(w http.ResponseWriter, r *http.Request) {
	agentList[events.Empty, events.Stack](a, w, r, events.OpAgentStacksList, events.Empty{})
}

// networks answers GET /agents/{id}/networks.
func (a agentRoutes) networks(w http.ResponseWriter, r *http.Request) {
	agentList[events.Empty, events.Network](a, w, r, events.OpAgentNetworksList, events.Empty{})
}

// start answers POST /agents/{id}/containers/{cid}/start with the
// container's state afterwards.
func (a agentRoutes) start(w http.ResponseWriter, r *http.Request) {
	cid, err := container(r)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	a.action(w, r, events.OpAgentContainerStart, events.ContainerRef{ID: cid}, agentActionTimeout)
}

// stopOrRestart answers POST …/stop and …/restart; ?timeout= is the grace
// period in seconds before SIGKILL (the engine's default without it).
func (a agentRoutes) stopOrRestart(op string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		cid, err := container(r)
		if err != nil {
			httpapi.Error(w, r, err)
			return
		}
		q := &auditQuery{r: r}
		req := events.ContainerStopRequest{ID: cid}
		grace := defaultStopGrace
		if q.get("timeout") != "" {
			n := intParam(q, "timeout", 0, maxStopTimeout, 0)
			req.Timeout, grace = &n, time.Duration(n)*time.Second
		}
		if err := q.err(); err != nil {
			httpapi.Error(w, r, err)
			return
		}
		a.action(w, r, op, req, agentActionTimeout+grace)
	}
}

// action sends a container action and answers with the container. It
// waits out its own bound even past the request's deadline: a grace
// period may be longer, and the agent carries the action through anyway,
// so the caller should learn how it ended.
func (a agentRoutes) action(w http.ResponseWriter, r *http.Request, op string, req any, timeout time.Duration) {
	ctx := context.WithoutCancel(r.Context())
	resp, err := agentCall[any, events.Container](ctx, a.d.NC, principalOrg(r), chi.URLParam(r, "id"), op, req, timeout)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	httpapi.JSON(w, r, http.StatusOK, resp)
}

// containerLogs is the reply of GET …/containers/{cid}/logs.
type containerLogs struct {
	events.ContainerLogsReply
	// Source is "agent", or "store" for the log store's copy.
	Source string `json:"source"`
}

// logs answers GET /agents/{id}/containers/{cid}/logs?tail=: the last
// lines of the container's log, oldest first, from the agent. When the
// agent cannot be reached they come from the log store instead (what the
// agent shipped before it went away), marked by HeaderLogsSource and the
// reply's source; when the store fails too, the agent's 503 stands.
func (a agentRoutes) logs(w http.ResponseWriter, r *http.Request) {
	cid, err := container(r)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	q := &auditQuery{r: r}
	tail := intParam(q, "tail", 1, maxLogsTail, defaultLogsTail)
	if err := q.err(); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	agent := chi.URLParam(r, "id")
	reply := containerLogs{Source: "agent"}
	reply.ContainerLogsReply, err = agentCall[events.ContainerLogsRequest, events.ContainerLogsReply](r.Context(), a.d.NC,
		principalOrg(r), agent, events.OpAgentContainerLogs, events.ContainerLogsRequest{ID: cid, Tail: tail}, agentReadTimeout)
	if errors.Is(err, errAgentUnreachable) {
		lines, serr := a.storeLogs(r.Context(), agent, cid, tail)
		if serr == nil {
			reply, err = containerLogs{ContainerLogsReply: events.ContainerLogsReply{Lines: lines}, Source: "store"}, nil
		} else if a.d.Log != nil {
			a.d.Log.WarnContext(r.Context(), "container logs: the log store did not answer either", "agent", agent, "err", serr)
		}
	}
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	if reply.Lines == nil {
		reply.Lines = []events.LogLine{}
	}
	w.Header().Set(HeaderLogsSource, reply.Source)
	httpapi.JSON(w, r, http.StatusOK, reply)
}

// storeLogs reads a container's last tail lines from the log store (the
// widest range a query allows, newest first, page by page) and returns
// them oldest first.
func (a agentRoutes) storeLogs(ctx context.Context, agent, cid string, tail int) ([]events.LogLine, error) {
	now := time.Now().UTC()
	req := events.LogsQueryRequest{AgentID: agent, Container: cid,
		From: now.Add(-events.LogsMaxRange).Format(time.RFC3339Nano), To: now.Format(time.RFC3339Nano)}
	var newest []events.LogEntry
	for len(newest) < tail {
		req.Limit = min(tail-len(newest), events.LogsMaxLimit)
		page, err := natsreq.Call[events.LogsQueryRequest, events.LogsPage](ctx, a.d.NC,
			events.ServiceEndpoint(logsService, events.OpLogsQuery), req)
		if err != nil {
			return nil, err
		}
		newest = append(newest, page.Items...)
		if page.NextCursor == "" || len(page.Items) == 0 {
			break
		}
		req.Cursor = page.NextCursor
	}
	newest = newest[:min(len(newest), tail)]
	lines := make([]events.LogLine, len(newest))
	for i, e := range newest {
		lines[len(newest)-1-i] = events.LogLine{Time: e.Time, Stream: e.Stream, Text: e.Line}
	}
	return lines, nil
}
