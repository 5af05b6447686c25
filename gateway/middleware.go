package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/google/uuid"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway/internal/httpapi"
	"github.com/infrapilot/infrapilot/gateway/internal/reqctx"
)

// HeaderRequestID is the HTTP header that carries the request id in and out.
const HeaderRequestID = "X-Request-Id"

// maxUserAgent bounds the user agent copied into NATS headers and events.
const maxUserAgent = 256

// requestInfo fills reqctx.RequestInfo: a sane incoming X-Request-Id is
// kept (so a proxy's id follows the request), anything else is replaced by
// a fresh UUIDv7; the id is echoed on every answer.
func (g *Gateway) requestInfo(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(HeaderRequestID)
		if !validRequestID(id) {
			id = newRequestID()
		}
		ua := r.UserAgent()
		if len(ua) > maxUserAgent {
			ua = ua[:maxUserAgent]
		}
		info := reqctx.RequestInfo{RequestID: id, CorrelationID: id, ClientIP: g.clientIP(r), UserAgent: ua}
		h := w.Header()
		h.Set(HeaderRequestID, id)
		h.Set("X-Content-Type-Options", "nosniff")
		next.ServeHTTP(w, r.WithContext(reqctx.WithRequestInfo(r.Context(), info)))
	})
}

// validRequestID accepts ids a log line, a NATS header and an event can
// carry verbatim: 1 to 128 characters of [A-Za-z0-9._:-].
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}

func newRequestID() string {
	if id, err := uuid.NewV7(); err == nil {
		return id.String()
	}
	return uuid.NewString() // only if the clock fails; still unique
}

// clientIP is the TCP peer, unless the peer is a trusted proxy: then it is
// the right-most X-Forwarded-For entry that is not itself a trusted proxy.
// Entries left of that are written by the client and prove nothing.
func (g *Gateway) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	client := peer.Unmap()
	if !g.trusted(client) {
		return client.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // garbage: keep the last hop a trusted proxy vouched for
		}
		client = hop.Unmap()
		if !g.trusted(client) {
			break
		}
	}
	return client.String()
}

func (g *Gateway) trusted(a netip.Addr) bool {
	for _, p := range g.trustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// instrument records every request in the metrics and the access log, and
// turns a handler panic into a 500 problem. It sits outside the other
// middleware so that what they answer is counted too.
func (g *Gateway) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ctx, outcome := httpapi.WithOutcome(r.Context())
		r = r.WithContext(ctx)
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		g.metrics.inFlight.Inc()
		defer func() {
			rec := recover()
			if rec != nil && rec != http.ErrAbortHandler {
				g.log.ErrorContext(ctx, "handler panic", "request_id", reqctx.RequestID(ctx),
					"panic", fmt.Sprint(rec), "stack", string(debug.Stack()))
				if ww.Status() == 0 {
					httpapi.Error(ww, r, fmt.Errorf("panic: %v", rec))
					rec = nil
				} else {
					// Part of the answer is out: abort the connection so the
					// client cannot take a truncated body for a whole one.
					rec = http.ErrAbortHandler
				}
			}
			g.metrics.inFlight.Dec()
			g.observe(r, ww, outcome, time.Since(start))
			if rec != nil {
				panic(rec)
			}
		}()
		next.ServeHTTP(ww, r)
	})
}

// probeRoutes are polled by orchestrators and scrapers; their successful
// answers are logged at debug level only.
var probeRoutes = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// observe writes the metrics and the access log line of one request. The
// line holds the route pattern, never the path or query (paths carry
// invitation and enrollment tokens), and no header value but the request
// id: never Authorization, never a body.
func (g *Gateway) observe(r *http.Request, ww middleware.WrapResponseWriter, outcome *httpapi.Outcome, d time.Duration) {
	route := chi.RouteContext(r.Context()).RoutePattern()
	if route == "" || outcome.Unmatched() {
		route = routeUnmatched
	}
	status := ww.Status()
	if status == 0 {
		status = http.StatusOK // the handler wrote nothing; net/http sends 200
	}
	method := metricMethod(r.Method)
	g.metrics.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	g.metrics.duration.WithLabelValues(route, method).Observe(d.Seconds())

	info, _ := reqctx.RequestInfoFrom(r.Context())
	attrs := []slog.Attr{
		slog.String("request_id", info.RequestID),
		slog.String("method", method),
		slog.String("route", route),
		slog.Int("status", status),
		slog.Int("bytes", ww.BytesWritten()),
		slog.Float64("duration_ms", float64(d.Microseconds())/1000),
		slog.String("client_ip", info.ClientIP),
	}
	level := slog.LevelInfo
	switch err := outcome.Err(); {
	case err != nil && events.ErrorCode(err) == events.CodeInternal:
		level = slog.LevelError
		attrs = append(attrs, slog.String("err", err.Error()))
	case err != nil:
		level = slog.LevelWarn
		attrs = append(attrs, slog.String("err", err.Error()))
	case status >= http.StatusInternalServerError:
		level = slog.LevelWarn
	case probeRoutes[route]:
		level = slog.LevelDebug
	}
	g.log.LogAttrs(r.Context(), level, "http request", attrs...)
}

// limitBody answers 413 at once for a declared Content-Length over the
// limit, and caps the body of every other request so that Decode fails
// with an error ProblemFor answers 413.
func (g *Gateway) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit := g.cfg.BodyLimit
		if r.ContentLength > limit {
			httpapi.Error(w, r, &events.Error{Code: events.CodeInvalid,
				Message: "request body exceeds " + strconv.FormatInt(limit, 10) + " bytes",
				Err:     &http.MaxBytesError{Limit: limit}})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		next.ServeHTTP(w, r)
	})
}

// deadline gives every request's context the configured timeout. Handlers
// pass it on to services (Ip-Deadline), so work stops everywhere once the
// client can no longer get an answer. A long-lived handler (a WebSocket)
// detaches on purpose with context.WithoutCancel(r.Context()), which keeps
// the request's values; there is deliberately no header-based exemption a
// client could use to escape the deadline.
func (g *Gateway) deadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), g.cfg.RequestTimeout)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// notFound and methodNotAllowed answer the router's misses as problems.
func (g *Gateway) notFound(w http.ResponseWriter, r *http.Request) {
	httpapi.MarkUnmatched(r)
	httpapi.Error(w, r, events.NotFound("no route for %s", r.URL.Path))
}

func (g *Gateway) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	httpapi.MarkUnmatched(r)
	path := r.URL.Path
	if r.URL.RawPath != "" {
		path = r.URL.RawPath // chi routes on the raw path when there is one
	}
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions} {
		if g.mux.Match(chi.NewRouteContext(), m, path) {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
	}
	httpapi.Error(w, r, httpapi.ErrMethodNotAllowed)
}
