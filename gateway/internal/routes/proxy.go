package routes

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway/internal/authn"
	"github.com/infrapilot/infrapilot/gateway/internal/httpapi"
	"github.com/infrapilot/infrapilot/gateway/internal/natsreq"
)

// proxyService is the proxy service's subject token.
const proxyService = "proxy"

// proxyTestTimeout bounds POST …/proxies/{pid}/test: the proxy service has
// the agent run `nginx -t` on its complete configuration, which takes
// longer than a read, so the wait does not depend on the gateway's
// request timeout.
const proxyTestTimeout = 30 * time.Second

// networkParam is what a Docker network may be named by in the path: a
// name or an id (ids are hex, names as the engines allow them).
var networkParam = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// MountProxy registers API.md's "Proxy hosts" routes, the proxy's network
// attachment (POST /agents/{id}/networks/{network}/attach-proxy and
// …/detach-proxy) and GET /health/tls, all answered by the proxy service
// in the request's org.
//
// It is an area of its own, but everything below /agents/{id}/ sits behind
// the same agent check as MountAgents's routes (agentRoutes.resolve): an
// unknown agent or one of another org answers 404 before the role is
// looked at and before the proxy service hears of the request. A host or
// rate-limit id in the path that cannot be an id answers 404, a network
// that cannot be a Docker network 400, without asking the service. The
// agent, host and rate limit always come from the path: bodies have no
// such fields, so a body naming them is refused as an unknown field.
// Reading needs proxy:read, anything that changes or tests nginx
// proxy:write.
func MountProxy(api chi.Router, d Deps) {
	p := proxyRoutes{d: d}
	api.With(authn.Require(events.PermProxyRead)).Get("/health/tls", p.tlsHealth)

	// A group with full paths, like MountAgents's, rather than a
	// sub-router: /agents/{id} already has routes of its own.
	api.Group(func(r chi.Router) {
		r.Use(agentRoutes{d: d}.resolve)
		read := r.With(authn.Require(events.PermProxyRead))
		write := r.With(authn.Require(events.PermProxyWrite))
		const host = "/agents/{id}/proxies/{pid}"
		read.Get("/agents/{id}/proxies", p.list)
		write.Post("/agents/{id}/proxies", p.create)
		read.Get(host, p.get)
		write.Put(host, p.update)
		write.Delete(host, p.delete)
		write.Post(host+"/ssl", p.ssl)
		read.Get(host+"/config", p.config)
		write.Post(host+"/test", p.test)
		read.Get(host+"/security-headers", p.getSecurityHeaders)
		write.Put(host+"/security-headers", p.putSecurityHeaders)
		read.Get(host+"/rate-limits", p.listRateLimits)
		write.Post(host+"/rate-limits", p.createRateLimit)
		write.Put(host+"/rate-limits/{rid}", p.updateRateLimit)
		write.Delete(host+"/rate-limits/{rid}", p.deleteRateLimit)
		read.Get("/agents/{id}/proxy-settings", p.getSettings)
		write.Put("/agents/{id}/proxy-settings", p.putSettings)
		write.Post("/agents/{id}/networks/{network}/attach-proxy", p.network(events.OpProxyNetworkAttach))
		write.Post("/agents/{id}/networks/{network}/detach-proxy", p.network(events.OpProxyNetworkDetach))
	})
}

type proxyRoutes struct{ d Deps }

// proxyCall sends op to the proxy service; the org and actor travel in
// the headers (natsreq.Call).
func proxyCall[Req, Resp any](ctx context.Context, p proxyRoutes, op string, req Req) (Resp, error) {
	return natsreq.Call[Req, Resp](ctx, p.d.NC, events.ServiceEndpoint(proxyService, op), req)
}

// proxyAnswer calls op and writes its reply, unchanged, with status (204
// writes no body).
func proxyAnswer[Req any](p proxyRoutes, w http.ResponseWriter, r *http.Request, op string, req Req, status int) {
	resp, err := proxyCall[Req, events.RawJSON](r.Context(), p, op, req)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	httpapi.JSON(w, r, status, resp)
}

// validID reports whether s can be a host or rate-limit id: ids are
// lower-case UUIDs, so a lower-case subject token.
func validID(s string) bool { return events.ValidToken(s) && strings.ToLower(s) == s }

// hostRef is the agent and host the path names; a {pid} that cannot be an
// id is not_found.
func hostRef(r *http.Request) (events.ProxyHostRef, error) {
	ref := events.ProxyHostRef{AgentID: chi.URLParam(r, "id"), HostID: chi.URLParam(r, "pid")}
	if !validID(ref.HostID) {
		return ref, events.NotFound("proxy host %q not found", ref.HostID)
	}
	return ref, nil
}

// rateLimitRef is hostRef plus {rid}.
func rateLimitRef(r *http.Request) (events.ProxyRateLimitRef, error) {
	h, err := hostRef(r)
	ref := events.ProxyRateLimitRef{AgentID: h.AgentID, HostID: h.HostID, RateLimitID: chi.URLParam(r, "rid")}
	if err == nil && !validID(ref.RateLimitID) {
		err = events.NotFound("rate limit %q not found", ref.RateLimitID)
	}
	return ref, err
}

// list answers GET /agents/{id}/proxies?limit=&cursor=: {items: [...]},
// never {items: null}.
func (p proxyRoutes) list(w http.ResponseWriter, r *http.Request) {
	lr, err := listRequest(r)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	req := events.ProxyAgentRequest{AgentID: chi.URLParam(r, "id"), Limit: lr.Limit, Cursor: lr.Cursor}
	resp, err := proxyCall[events.ProxyAgentRequest, events.List[events.RawJSON]](r.Context(), p, events.OpProxyHostsList, req)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	if resp.Items == nil {
		resp.Items = []events.RawJSON{}
	}
	httpapi.JSON(w, r, http.StatusOK, resp)
}

// create answers POST /agents/{id}/proxies with 201 and the host.
func (p proxyRoutes) create(w http.ResponseWriter, r *http.Request) {
	req, err := decodeHost(r, events.ProxyHostRef{AgentID: chi.URLParam(r, "id")})
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	proxyAnswer(p, w, r, events.OpProxyHostCreate, req, http.StatusCreated)
}

func (p proxyRoutes) get(w http.ResponseWriter, r *http.Request) {
	p.byHost(w, r, events.OpProxyHostGet, http.StatusOK)
}

// update answers PUT /agents/{id}/proxies/{pid}: the body replaces the
// host's specification; security headers and rate limits stay unless
// given.
func (p proxyRoutes) update(w http.ResponseWriter, r *http.Request) {
	ref, err := hostRef(r)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	req, err := decodeHost(r, ref)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	proxyAnswer(p, w, r, events.OpProxyHostUpdate, req, http.StatusOK)
}

func (p proxyRoutes) delete(w http.ResponseWriter, r *http.Request) {
	p.byHost(w, r, events.OpProxyHostDelete, http.StatusNoContent)
}

// ssl answers POST …/{pid}/ssl with 202: the certificate is requested,
// the host's cert shows how it goes.
func (p proxyRoutes) ssl(w http.ResponseWriter, r *http.Request) {
	p.byHost(w, r, events.OpProxyHostSSL, http.StatusAccepted)
}

// byHost sends op the host the path names and writes the reply.
func (p proxyRoutes) byHost(w http.ResponseWriter, r *http.Request, op string, status int) {
	ref, err := hostRef(r)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	proxyAnswer(p, w, r, op, ref, status)
}

// config answers GET …/{pid}/config: the service's ProxyHostConfig as
// JSON, or the configuration text alone when the client prefers
// text/plain (Accept), so that `curl -H 'Accept: text/plain'` prints the
// file nginx reads.
func (p proxyRoutes) config(w http.ResponseWriter, r *http.Request) {
	w.Header().Add("Vary", "Accept")
	ref, err := hostRef(r)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	raw, err := proxyCall[events.ProxyHostRef, events.RawJSON](r.Context(), p, events.OpProxyHostConfig, ref)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	if !prefersText(r) {
		httpapi.JSON(w, r, http.StatusOK, raw)
		return
	}
	var c events.ProxyHostConfig
	if err := json.Unmarshal(raw, &c); err != nil {
		httpapi.Error(w, r, fmt.Errorf("proxy: decode the config of host %s: %w", ref.HostID, err))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, c.Config)
}

// test answers POST …/{pid}/test with the agent's `nginx -t` result. Like
// a container action it waits out its own bound (proxyTestTimeout) even
// past the request's deadline.
func (p proxyRoutes) test(w http.ResponseWriter, r *http.Request) {
	ref, err := hostRef(r)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), proxyTestTimeout)
	defer cancel()
	resp, err := proxyCall[events.ProxyHostRef, events.RawJSON](ctx, p, events.OpProxyHostTest, ref)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	httpapi.JSON(w, r, http.StatusOK, resp)
}

// hostParts are the parts of a host's view that have routes of their own;
// they stay raw so that fields the service adds pass through.
type hostParts struct {
	SecurityHeaders events.RawJSON   `json:"security_headers"`
	RateLimits      []events.RawJSON `json:"rate_limits"`
}

// hostPart reads the host the path names, for one of its parts.
func (p proxyRoutes) hostPart(w http.ResponseWriter, r *http.Request) (hostParts, bool) {
	ref, err := hostRef(r)
	if err == nil {
		var h hostParts
		if h, err = proxyCall[events.ProxyHostRef, hostParts](r.Context(), p, events.OpProxyHostGet, ref); err == nil {
			return h, true
		}
	}
	httpapi.Error(w, r, err)
	return hostParts{}, false
}

// getSecurityHeaders answers GET …/{pid}/security-headers with the host's
// security headers ({} when it has none).
func (p proxyRoutes) getSecurityHeaders(w http.ResponseWriter, r *http.Request) {
	h, ok := p.hostPart(w, r)
	if !ok {
		return
	}
	if len(h.SecurityHeaders) == 0 || string(h.SecurityHeaders) == "null" {
		h.SecurityHeaders = events.RawJSON(`{}`)
	}
	httpapi.JSON(w, r, http.StatusOK, h.SecurityHeaders)
}

// putSecurityHeaders answers PUT …/{pid}/security-headers: the body (a
// SecurityHeaders object) replaces the host's headers.
func (p proxyRoutes) putSecurityHeaders(w http.ResponseWriter, r *http.Request) {
	ref, err := hostRef(r)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	req := events.ProxySecurityHeadersWrite{AgentID: ref.AgentID, HostID: ref.HostID}
	if err := httpapi.Decode(r, &req.Headers); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	proxyAnswer(p, w, r, events.OpProxySecurityHeadersSet, req, http.StatusOK)
}

// listRateLimits answers GET …/{pid}/rate-limits: {items: [...]}, from
// the host's view.
func (p proxyRoutes) listRateLimits(w http.ResponseWriter, r *http.Request) {
	h, ok := p.hostPart(w, r)
	if !ok {
		return
	}
	if h.RateLimits == nil {
		h.RateLimits = []events.RawJSON{}
	}
	httpapi.JSON(w, r, http.StatusOK, events.List[events.RawJSON]{Items: h.RateLimits})
}

// createRateLimit answers POST …/{pid}/rate-limits with 201 and the rate
// limit (its id chosen by the service).
func (p proxyRoutes) createRateLimit(w http.ResponseWriter, r *http.Request) {
	ref, err := hostRef(r)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	req, err := decodeRateLimit(r, events.ProxyRateLimitRef{AgentID: ref.AgentID, HostID: ref.HostID})
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	proxyAnswer(p, w, r, events.OpProxyRateLimitCreate, req, http.StatusCreated)
}

// updateRateLimit answers PUT …/rate-limits/{rid}: the body replaces it.
func (p proxyRoutes) updateRateLimit(w http.ResponseWriter, r *http.Request) {
	ref, err := rateLimitRef(r)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	req, err := decodeRateLimit(r, ref)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	proxyAnswer(p, w, r, events.OpProxyRateLimitUpdate, req, http.StatusOK)
}

func (p proxyRoutes) deleteRateLimit(w http.ResponseWriter, r *http.Request) {
	ref, err := rateLimitRef(r)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	proxyAnswer(p, w, r, events.OpProxyRateLimitDelete, ref, http.StatusNoContent)
}

func (p proxyRoutes) getSettings(w http.ResponseWriter, r *http.Request) {
	proxyAnswer(p, w, r, events.OpProxySettingsGet, events.ProxyAgentRequest{AgentID: chi.URLParam(r, "id")}, http.StatusOK)
}

// putSettings answers PUT /agents/{id}/proxy-settings; fields left out
// keep their values.
func (p proxyRoutes) putSettings(w http.ResponseWriter, r *http.Request) {
	var b proxySettingsBody
	if err := httpapi.Decode(r, &b); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	req := events.ProxySettingsWrite{AgentID: chi.URLParam(r, "id"), Mode: b.Mode, ACMEEmail: b.ACMEEmail}
	proxyAnswer(p, w, r, events.OpProxySettingsSet, req, http.StatusOK)
}

// network answers POST /agents/{id}/networks/{network}/attach-proxy and
// …/detach-proxy with the agent's proxy settings afterwards. The request
// has no body.
func (p proxyRoutes) network(op string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		network := chi.URLParam(r, "network")
		if !networkParam.MatchString(network) {
			httpapi.Error(w, r, events.Invalid("invalid network").WithFields(events.FieldError{Field: "network",
				Message: "must be a Docker network name or id: up to 128 of A-Z a-z 0-9 _ . -, starting with a letter or digit"}))
			return
		}
		proxyAnswer(p, w, r, op, events.ProxyNetworkRequest{AgentID: chi.URLParam(r, "id"), Network: network}, http.StatusOK)
	}
}

// tlsHealth answers GET /health/tls: the certificates of the org's hosts.
func (p proxyRoutes) tlsHealth(w http.ResponseWriter, r *http.Request) {
	proxyAnswer(p, w, r, events.OpProxyTLSHealth, events.Empty{}, http.StatusOK)
}
