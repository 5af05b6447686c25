package service

import (
	"context"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/svcclient"
	"github.com/nats-io/nats.go"
)

// authTimeout bounds a call to the auth service when ctx has no deadline.
const authTimeout = 10 * time.Second

// authUnreachable words the auth service's absence for tenancy's callers.
var authUnreachable = svcclient.Unreachable{NoResponders: "auth service is not running",
	Timeout: "auth service did not answer", Bus: "auth service did not answer"}

// callAuth asks the auth service, passing the request's context (ids,
// org, actor, deadline) on, and returns its reply or its *events.Error.
func callAuth[Req, Resp any](ctx context.Context, nc *nats.Conn, op string, req Req) (Resp, error) {
	var resp Resp
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, authTimeout)
		defer cancel()
	}
	err := svcclient.Call(ctx, nc, events.ServiceEndpoint("auth", op), authUnreachable, req, &resp)
	return resp, err
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
