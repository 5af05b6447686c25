// Package natsreq is how gateway handlers talk to services: one JSON
// request-reply on a "svc.<service>.<operation>" subject, carrying the
// request's context in Ip-* headers and its deadline in Ip-Deadline, and
// turning every failure into an *events.Error that httpapi.ProblemFor maps
// to an HTTP answer.
package natsreq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway/internal/reqctx"
	"github.com/nats-io/nats.go"
)

// DefaultTimeout bounds a call whose ctx has no deadline. Handler contexts
// always have one (the gateway's request timeout); this only keeps a
// background caller from waiting forever.
const DefaultTimeout = 10 * time.Second

// Call sends req as JSON to subject and decodes the reply into a Resp.
//
// Headers: the request id, correlation id, client IP and user agent from
// reqctx.RequestInfo, the org, actor and role from reqctx.Principal (each
// only when set), and HeaderDeadline with ctx's deadline.
//
// Errors are always *events.Error:
//   - a reply with the micro error headers: the *events.Error of its body,
//     or, when the body is not one, the header's code and description;
//   - nobody subscribed (nats.ErrNoResponders): unavailable, "service <x>
//     is not running";
//   - ctx's deadline passed: unavailable wrapping context.DeadlineExceeded
//     (ProblemFor answers it with 504);
//   - the connection is closed or reconnecting: unavailable;
//   - a reply that does not decode into Resp: internal.
//
// An empty successful reply leaves Resp at its zero value. Unknown fields
// in a reply are ignored: services may add fields within a version.
func Call[Req, Resp any](ctx context.Context, nc *nats.Conn, subject string, req Req) (Resp, error) {
	var resp Resp
	data, err := json.Marshal(req)
	if err != nil {
		return resp, &events.Error{Code: events.CodeInternal, Message: "internal error",
			Err: fmt.Errorf("natsreq: encode request to %s: %w", subject, err)}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	msg := nats.NewMsg(subject)
	msg.Data = data
	setHeaders(ctx, msg.Header)

	reply, err := nc.RequestMsgWithContext(ctx, msg)
	if err != nil {
		return resp, requestError(subject, err)
	}
	if code := reply.Header.Get(events.HeaderServiceErrorCode); code != "" {
		return resp, replyError(code, reply.Header.Get(events.HeaderServiceError), reply.Data)
	}
	if len(reply.Data) == 0 {
		return resp, nil
	}
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return resp, &events.Error{Code: events.CodeInternal, Message: "internal error",
			Err: fmt.Errorf("natsreq: decode reply of %s: %w", subject, err)}
	}
	return resp, nil
}

// setHeaders copies the request's context into h. Empty values are left
// out so that a service can tell "anonymous" from "empty".
func setHeaders(ctx context.Context, h nats.Header) {
	set := func(k, v string) {
		if v != "" {
			h.Set(k, v)
		}
	}
	if info, ok := reqctx.RequestInfoFrom(ctx); ok {
		set(events.HeaderRequestID, info.RequestID)
		set(events.HeaderCorrelationID, info.CorrelationID)
		set(events.HeaderActorIP, info.ClientIP)
		set(events.HeaderActorUA, info.UserAgent)
	}
	if p, ok := reqctx.PrincipalFrom(ctx); ok {
		set(events.HeaderOrgID, p.OrgID)
		set(events.HeaderActorKind, string(p.Kind))
		set(events.HeaderActorID, p.ID)
		set(events.HeaderRole, p.Role)
	}
	if dl, ok := ctx.Deadline(); ok {
		h.Set(events.HeaderDeadline, dl.UTC().Format(time.RFC3339Nano))
	}
}

// service is the <service> token of "svc.<service>.<operation>", for
// messages; any other subject is named whole.
func service(subject string) string {
	if rest, ok := strings.CutPrefix(subject, "svc."); ok {
		if name, _, ok := strings.Cut(rest, "."); ok {
			return name
		}
	}
	return subject
}

func requestError(subject string, err error) *events.Error {
	name := service(subject)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return &events.Error{Code: events.CodeUnavailable, Message: fmt.Sprintf("service %s is not running", name), Err: err}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return &events.Error{Code: events.CodeUnavailable, Message: fmt.Sprintf("service %s did not answer in time", name),
			Err: fmt.Errorf("%w (%w)", context.DeadlineExceeded, err)}
	case errors.Is(err, context.Canceled):
		return &events.Error{Code: events.CodeUnavailable, Message: "request canceled", Err: err}
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, nats.ErrConnectionDraining), errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, nats.ErrInvalidConnection):
		return &events.Error{Code: events.CodeUnavailable, Message: "message bus unavailable", Err: err}
	default:
		return &events.Error{Code: events.CodeInternal, Message: "internal error",
			Err: fmt.Errorf("natsreq: request %s: %w", subject, err)}
	}
}

// replyError rebuilds the service's error from a micro error reply. The
// header code wins over the body's: it is what the service's error mapping
// chose. A code that is not an events.Code (micro's own numeric errors, a
// service that predates the convention) is mapped by its HTTP-like number,
// else treated as internal.
func replyError(code, description string, body []byte) *events.Error {
	var e events.Error
	if err := json.Unmarshal(body, &e); err != nil || e.Message == "" {
		e = events.Error{Message: description}
	}
	e.Code = knownCode(code)
	if e.Message == "" {
		e.Message = string(e.Code)
	}
	return &e
}

func knownCode(code string) events.Code {
	switch c := events.Code(code); c {
	case events.CodeInvalid, events.CodeUnauthorized, events.CodeForbidden, events.CodeNotFound,
		events.CodeConflict, events.CodeRateLimited, events.CodeUnavailable, events.CodeInternal:
		return c
	}
	switch code {
	case "400":
		return events.CodeInvalid
	case "401":
		return events.CodeUnauthorized
	case "403":
		return events.CodeForbidden
	case "404":
		return events.CodeNotFound
	case "409":
		return events.CodeConflict
	case "429":
		return events.CodeRateLimited
	case "503", "504":
		return events.CodeUnavailable
	default:
		return events.CodeInternal
	}
}
