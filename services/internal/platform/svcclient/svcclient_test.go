package svcclient_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/endpoint"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/infrapilot/infrapilot/services/internal/platform/reqctx"
	"github.com/infrapilot/infrapilot/services/internal/platform/svcclient"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

type echoReply struct {
	Org, Role, Actor string
	Deadline         bool
	Text             string
}

// TestCall calls a real endpoint server on a real NATS server: the caller's
// request context reaches the responder, replies and service errors come
// back as such, and a responder that is not there or silent is worded by
// the caller.
func TestCall(t *testing.T) {
	srv := natstest.Run(t)
	nc := srv.Connect()
	es, err := endpoint.New(endpoint.Config{Service: "echo", Version: "0.0.1"}, nc, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	endpoint.Handle(es, "echo", func(ctx context.Context, req events.IDRequest) (echoReply, error) {
		info := reqctx.From(ctx)
		_, dl := ctx.Deadline()
		return echoReply{Org: info.OrgID, Role: info.Role, Actor: info.Actor.ID, Deadline: dl, Text: req.ID}, nil
	})
	endpoint.Handle(es, "fail", func(context.Context, events.IDRequest) (events.Empty, error) {
		return events.Empty{}, events.Invalid("bad id").WithFields(events.FieldError{Field: "id", Message: "is bad"})
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := es.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = es.Stop() })
	// A responder that never answers.
	if _, err := nc.Subscribe("svc.silent.op", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	caller := reqctx.With(context.Background(), reqctx.Info{OrgID: "org1", Role: "viewer", RequestID: "r1",
		Actor: events.Actor{Kind: events.ActorUser, ID: "u1"}})
	within := func(d time.Duration) context.Context {
		ctx, cancel := context.WithTimeout(caller, d)
		t.Cleanup(cancel)
		return ctx
	}
	un := svcclient.Named("the echo service")

	var got echoReply
	if err := svcclient.Call(within(10*time.Second), nc, events.ServiceEndpoint("echo", "echo"), un, events.IDRequest{ID: "hi"}, &got); err != nil {
		t.Fatal(err)
	}
	if want := (echoReply{Org: "org1", Role: "viewer", Actor: "u1", Deadline: true, Text: "hi"}); got != want {
		t.Fatalf("reply %+v, want %+v", got, want)
	}
	if err := svcclient.Call(within(10*time.Second), nc, events.ServiceEndpoint("echo", "echo"), un, events.IDRequest{ID: "x"}, nil); err != nil {
		t.Fatalf("reply ignored: %v", err)
	}

	for _, tc := range []struct {
		name    string
		subject string
		un      svcclient.Unreachable
		timeout time.Duration
		code    events.Code
		message string
		fields  int
		is      error
	}{
		{"service error", events.ServiceEndpoint("echo", "fail"), un, 10 * time.Second, events.CodeInvalid, "bad id", 1, nil},
		{"no responders", events.ServiceEndpoint("gone", "op"), un, 10 * time.Second, events.CodeUnavailable, "the echo service is not connected", 0, nats.ErrNoResponders},
		{"timeout", "svc.silent.op", un, 200 * time.Millisecond, events.CodeUnavailable, "the echo service did not answer in time", 0, context.DeadlineExceeded},
		{"worded by the caller", events.ServiceEndpoint("gone", "op"), svcclient.Unreachable{NoResponders: "echo is down"}, 10 * time.Second,
			events.CodeUnavailable, "echo is down", 0, nats.ErrNoResponders},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := svcclient.Call(within(tc.timeout), nc, tc.subject, tc.un, events.IDRequest{ID: "x"}, &got)
			var e *events.Error
			if !errors.As(err, &e) || e.Code != tc.code || e.Message != tc.message || len(e.Fields) != tc.fields {
				t.Fatalf("got %v, want %s %q", err, tc.code, tc.message)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("%v does not wrap %v", err, tc.is)
			}
		})
	}
}
