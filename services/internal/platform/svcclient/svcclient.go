// Package svcclient calls another service's (or an agent's) request-reply
// operation on behalf of the work in ctx: the request context (ids, org,
// role, actor) goes along in the Ip-* headers and ctx's deadline in
// events.HeaderDeadline, so the responder authorises, traces and gives up
// as it would for the original caller.
//
// Responders answer the way platform/endpoint does (micro error replies
// whose body is the *events.Error), so a failure comes back as the
// responder's *events.Error, and a responder that cannot be reached as a
// CodeUnavailable *events.Error worded by the caller.
package svcclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/reqctx"
	"github.com/nats-io/nats.go"
)

// Unreachable words the errors of a call whose responder could not be
// reached, as the caller's users should read them. Each becomes the message
// of a CodeUnavailable *events.Error wrapping the NATS error.
type Unreachable struct {
	// NoResponders is the message when nobody serves the subject (for an
	// agent: it is offline). errors.Is(err, nats.ErrNoResponders) tells
	// this case apart.
	NoResponders string
	// Timeout is the message when no answer came before ctx's deadline.
	Timeout string
	// Bus is the message when the connection failed; empty means
	// "message bus unavailable".
	Bus string
}

// Named is the usual wording for a responder called who ("the agent"):
// "<who> is not connected" and "<who> did not answer in time".
func Named(who string) Unreachable {
	return Unreachable{NoResponders: who + " is not connected", Timeout: who + " did not answer in time"}
}

// Call sends req as JSON to subject on behalf of the work in ctx and waits
// for the reply until ctx ends. It decodes a reply into resp (nil: the
// reply is ignored, as is an empty one), returns the responder's
// *events.Error when it answered with one, and the caller's wording of un
// when the responder could not be reached.
func Call(ctx context.Context, nc *nats.Conn, subject string, un Unreachable, req, resp any) error {
	data, err := json.Marshal(req)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(subject)
	msg.Data = data
	reqctx.From(ctx).Headers(msg.Header)
	if dl, ok := ctx.Deadline(); ok {
		msg.Header.Set(events.HeaderDeadline, dl.UTC().Format(time.RFC3339Nano))
	}
	reply, err := nc.RequestMsgWithContext(ctx, msg)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return &events.Error{Code: events.CodeUnavailable, Message: un.NoResponders, Err: err}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return &events.Error{Code: events.CodeUnavailable, Message: un.Timeout, Err: err}
	case err != nil:
		bus := un.Bus
		if bus == "" {
			bus = "message bus unavailable"
		}
		return &events.Error{Code: events.CodeUnavailable, Message: bus, Err: err}
	}
	return Decode(subject, reply, resp)
}

// Decode reads a request-reply answer: the responder's *events.Error when
// it is an error reply (the code from the header, the message from the
// body or else the header), otherwise the JSON body decoded into resp
// (nil or an empty body: nothing to decode).
func Decode(subject string, reply *nats.Msg, resp any) error {
	if code := reply.Header.Get(events.HeaderServiceErrorCode); code != "" {
		var e events.Error
		if json.Unmarshal(reply.Data, &e) != nil || e.Message == "" {
			e.Message = reply.Header.Get(events.HeaderServiceError)
		}
		e.Code = events.Code(code)
		return &e
	}
	if resp == nil || len(reply.Data) == 0 {
		return nil
	}
	if err := json.Unmarshal(reply.Data, resp); err != nil {
		return fmt.Errorf("%s: decode reply: %w", subject, err)
	}
	return nil
}
