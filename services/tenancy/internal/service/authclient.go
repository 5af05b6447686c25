package service

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

// authTimeout bounds a call to the auth service when ctx has no deadline.
const authTimeout = 10 * time.Second

// callAuth asks the auth service, passing the request's context (ids,
// org, actor, deadline) on, and returns its reply or its *events.Error.
func callAuth[Req, Resp any](ctx context.Context, nc *nats.Conn, op string, req Req) (Resp, error) {
	var resp Resp
	data, err := json.Marshal(req)
	if err != nil {
		return resp, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, authTimeout)
		defer cancel()
	}
	msg := nats.NewMsg(events.ServiceEndpoint("auth", op))
	msg.Data = data
	reqctx.From(ctx).Headers(msg.Header)
	if dl, ok := ctx.Deadline(); ok {
		msg.Header.Set(events.HeaderDeadline, dl.UTC().Format(time.RFC3339Nano))
	}
	reply, err := nc.RequestMsgWithContext(ctx, msg)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return resp, &events.Error{Code: events.CodeUnavailable, Message: "auth service is not running", Err: err}
	case err != nil:
		return resp, &events.Error{Code: events.CodeUnavailable, Message: "auth service did not answer", Err: err}
	}
	if code := reply.Header.Get(events.HeaderServiceErrorCode); code != "" {
		var e events.Error
		if json.Unmarshal(reply.Data, &e) != nil || e.Message == "" {
			e.Message = reply.Header.Get(events.HeaderServiceError)
		}
		e.Code = events.Code(code)
		return resp, &e
	}
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return resp, fmt.Errorf("auth %s: decode reply: %w", op, err)
	}
	return resp, nil
}

// users returns the auth service's view of ids, by id. Users auth does not
// know are missing from the map.
func (s *Service) users(ctx context.Context, ids []string) (map[string]events.UserSummary, error) {
	out := make(map[string]events.UserSummary, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	list, err := callAuth[events.GetUsersRequest, events.List[events.UserSummary]](ctx, s.nc, events.OpAuthGetUsers, events.GetUsersRequest{IDs: ids})
	if err != nil {
		return nil, err
	}
	for _, u := range list.Items {
		out[u.ID] = u
	}
	return out, nil
}

// withUsers fills in the members' e-mail and name. When auth cannot be
// asked the list is still answered, without them: who is a member and
// with which role is tenancy's own knowledge.
func (s *Service) withUsers(ctx context.Context, ms []events.Member) []events.Member {
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.UserID
	}
	users, err := s.users(ctx, ids)
	if err != nil {
		s.log.Warn("member list without names: auth users_get failed", "err", err)
		return ms
	}
	for i := range ms {
		if u, ok := users[ms[i].UserID]; ok {
			ms[i].Email, ms[i].Name = u.Email, u.Name
		}
	}
	return ms
}
