package target

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/nats-io/nats.go"
)

// ErrNoNATS is returned when a scenario needs the hub but the target has
// no NATS URL (an external target given without --nats-url).
var ErrNoNATS = errors.New("the target has no NATS URL and credentials (--nats-url, --nats-creds)")

// LoadtestActor is the actor of the tool's own service requests: a system
// actor, as for InfraPilot's own components.
var LoadtestActor = events.Actor{Kind: events.ActorSystem, ID: "infrapilot-loadtest"}

// NATS opens a new connection to the hub with the service credentials.
// Scenarios that measure open their own connections so that they do not
// share one socket's buffers; the caller closes it.
func (t *Target) NATS(_ context.Context) (*nats.Conn, error) {
	if t.NATSURL == "" {
		return nil, ErrNoNATS
	}
	opts := []nats.Option{nats.Name("infrapilot-loadtest"), nats.Timeout(10 * time.Second),
		nats.MaxReconnects(-1), nats.ReconnectBufSize(64 << 20)}
	if t.NATSCreds != "" {
		opts = append(opts, nats.UserCredentials(t.NATSCreds))
	}
	nc, err := nats.Connect(t.NATSURL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS %s: %w", t.NATSURL, err)
	}
	return nc, nil
}

// serviceConn is the shared connection of service requests.
func (t *Target) serviceConn(ctx context.Context) (*nats.Conn, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.svcConn != nil && !t.svcConn.IsClosed() {
		return t.svcConn, nil
	}
	nc, err := t.NATS(ctx)
	if err != nil {
		return nil, err
	}
	t.svcConn = nc
	return nc, nil
}

// ServiceRequest calls operation op of service (svc.<service>.<op>) over
// NATS as the tool's system actor, in org (empty: no org), the way a
// trusted service does (events/headers.go): used for what the API does
// not offer, such as moving an org to the "enterprise" plan so that a
// big simulated fleet fits. A service error is an *events.Error.
func (t *Target) ServiceRequest(ctx context.Context, service, op, org string, in, out any) error {
	return t.ServiceRequestAs(ctx, service, op, org, LoadtestActor, "", in, out)
}

// ServiceRequestAs is ServiceRequest with another actor and the actor's
// role in org (empty: none), for operations that act for a user.
func (t *Target) ServiceRequestAs(ctx context.Context, service, op, org string, actor events.Actor, role events.Role, in, out any) error {
	nc, err := t.serviceConn(ctx)
	if err != nil {
		return err
	}
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	subject := events.ServiceEndpoint(service, op)
	msg := nats.NewMsg(subject)
	msg.Data = body
	if org != "" {
		msg.Header.Set(events.HeaderOrgID, org)
	}
	if role != "" {
		msg.Header.Set(events.HeaderRole, string(role))
	}
	msg.Header.Set(events.HeaderActorKind, string(actor.Kind))
	msg.Header.Set(events.HeaderActorID, actor.ID)
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	dl, _ := ctx.Deadline()
	msg.Header.Set(events.HeaderDeadline, dl.UTC().Format(time.RFC3339Nano))
	reply, err := nc.RequestMsgWithContext(ctx, msg)
	if err != nil {
		return fmt.Errorf("%s: %w", subject, err)
	}
	if code := reply.Header.Get(events.HeaderServiceErrorCode); code != "" {
		var e events.Error
		if json.Unmarshal(reply.Data, &e) != nil || e.Code == "" {
			e = events.Error{Code: events.Code(code), Message: reply.Header.Get(events.HeaderServiceError)}
		}
		return &e
	}
	if out == nil || len(reply.Data) == 0 {
		return nil
	}
	return json.Unmarshal(reply.Data, out)
}

// SetPlan moves org to plan (for example "enterprise": unlimited agents)
// through the tenancy service.
func (t *Target) SetPlan(ctx context.Context, org, plan string) error {
	return t.ServiceRequest(ctx, "tenancy", events.OpTenancySetPlan, org, events.SetPlanRequest{Plan: plan}, nil)
}
