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

// createOrg asks the tenancy service to create an org.
func (s *Service) createOrg(ctx context.Context, req events.CreateOrgRequest) (events.OrgSummary, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.TenancyTimeout)
	defer cancel()
	var out events.OrgSummary
	err := call(ctx, s.nc, events.ServiceEndpoint("tenancy", events.OpTenancyCreateOrg), req, &out)
	return out, err
}

// call sends one request to another service with the request context of
// ctx in the Ip-* headers and its deadline, and decodes the reply or the
// service's *events.Error.
func call(ctx context.Context, nc *nats.Conn, subject string, req, resp any) error {
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
		return &events.Error{Code: events.CodeUnavailable, Message: fmt.Sprintf("%s is not answering; retry later", subject), Err: err}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return &events.Error{Code: events.CodeUnavailable, Message: fmt.Sprintf("%s did not answer in time", subject), Err: err}
	case err != nil:
		return &events.Error{Code: events.CodeUnavailable, Message: "message bus unavailable", Err: err}
	}
	if code := reply.Header.Get(events.HeaderServiceErrorCode); code != "" {
		var e events.Error
		if json.Unmarshal(reply.Data, &e) != nil || e.Code == "" {
			e = events.Error{Code: events.CodeInternal, Message: reply.Header.Get(events.HeaderServiceError)}
		}
		return &e
	}
	return json.Unmarshal(reply.Data, resp)
}
