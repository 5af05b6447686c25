package natsreq_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway/internal/natsreq"
	"github.com/infrapilot/infrapilot/gateway/internal/natstest"
	"github.com/infrapilot/infrapilot/gateway/internal/reqctx"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

type echoReq struct {
	Name string `json:"name"`
}

type echoResp struct {
	Greeting string `json:"greeting"`
}

func TestCallSuccessAndHeaders(t *testing.T) {
	t.Parallel()
	nc := natstest.Connect(t, natstest.Run(t))
	headers := make(chan micro.Headers, 1)
	natstest.Service(t, nc, "echo", map[string]micro.HandlerFunc{
		"greet": func(req micro.Request) {
			headers <- req.Headers()
			var in echoReq
			if err := json.Unmarshal(req.Data(), &in); err != nil {
				_ = req.Error(string(events.CodeInvalid), err.Error(), nil)
				return
			}
			// An extra field must not break the gateway: additive changes.
			_ = req.Respond([]byte(`{"greeting":"hello ` + in.Name + `","added_later":1}`))
		},
		"empty": func(req micro.Request) { _ = req.Respond(nil) },
	})

	ctx := reqctx.WithRequestInfo(context.Background(), reqctx.RequestInfo{
		RequestID: "req-1", CorrelationID: "corr-1", ClientIP: "203.0.113.9", UserAgent: "test-agent/1",
	})
	ctx = reqctx.WithPrincipal(ctx, reqctx.Principal{OrgID: "org-1", Kind: events.ActorUser, ID: "user-1", Role: "admin"})
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	dl, _ := ctx.Deadline()

	got, err := natsreq.Call[echoReq, echoResp](ctx, nc, events.ServiceEndpoint("echo", "greet"), echoReq{Name: "ada"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Greeting != "hello ada" {
		t.Fatalf("greeting = %q", got.Greeting)
	}
	h := <-headers
	want := map[string]string{
		events.HeaderRequestID:     "req-1",
		events.HeaderCorrelationID: "corr-1",
		events.HeaderActorIP:       "203.0.113.9",
		events.HeaderActorUA:       "test-agent/1",
		events.HeaderOrgID:         "org-1",
		events.HeaderActorKind:     "user",
		events.HeaderActorID:       "user-1",
		events.HeaderRole:          "admin",
		events.HeaderDeadline:      dl.UTC().Format(time.RFC3339Nano),
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}

	if _, err := natsreq.Call[struct{}, echoResp](ctx, nc, events.ServiceEndpoint("echo", "empty"), struct{}{}); err != nil {
		t.Fatalf("empty reply: %v", err)
	}
}

func TestCallAnonymousSendsNoActorHeaders(t *testing.T) {
	t.Parallel()
	nc := natstest.Connect(t, natstest.Run(t))
	headers := make(chan micro.Headers, 1)
	natstest.Service(t, nc, "echo", map[string]micro.HandlerFunc{
		"op": func(req micro.Request) { headers <- req.Headers(); _ = req.Respond(nil) },
	})
	// No deadline on ctx: Call applies DefaultTimeout and still sends one.
	if _, err := natsreq.Call[struct{}, struct{}](context.Background(), nc, events.ServiceEndpoint("echo", "op"), struct{}{}); err != nil {
		t.Fatal(err)
	}
	h := <-headers
	for _, k := range []string{events.HeaderOrgID, events.HeaderActorKind, events.HeaderActorID, events.HeaderRole, events.HeaderRequestID} {
		if v := h.Get(k); v != "" {
			t.Errorf("anonymous call sent %s = %q", k, v)
		}
	}
	dl, err := time.Parse(time.RFC3339Nano, h.Get(events.HeaderDeadline))
	if err != nil {
		t.Fatalf("deadline header: %v", err)
	}
	if until := time.Until(dl); until <= 0 || until > natsreq.DefaultTimeout {
		t.Fatalf("default deadline %s away", until)
	}
}

// TestCallErrorMapping checks that every events.Code a service returns as
// a micro error comes back as the same *events.Error, fields included, and
// that replies not following the convention are still mapped sensibly.
func TestCallErrorMapping(t *testing.T) {
	t.Parallel()
	nc := natstest.Connect(t, natstest.Run(t))
	type scripted struct {
		code, description string
		body              []byte
	}
	cases := map[string]scripted{}
	codes := []events.Code{events.CodeInvalid, events.CodeUnauthorized, events.CodeForbidden, events.CodeNotFound,
		events.CodeConflict, events.CodeRateLimited, events.CodeUnavailable, events.CodeInternal}
	for _, c := range codes {
		e := &events.Error{Code: c, Message: "message for " + string(c)}
		if c == events.CodeInvalid {
			e.Fields = []events.FieldError{{Field: "name", Message: "is required"}}
		}
		body, _ := json.Marshal(e)
		cases[string(c)] = scripted{string(c), e.Message, body}
	}
	cases["plain-body"] = scripted{"conflict", "version mismatch", []byte("not json")}
	cases["numeric"] = scripted{"404", "no such thing", nil}
	cases["unknown"] = scripted{"teapot", "short and stout", nil}

	ops := map[string]micro.HandlerFunc{}
	for name, s := range cases {
		ops[name] = func(req micro.Request) { _ = req.Error(s.code, s.description, s.body) }
	}
	natstest.Service(t, nc, "errs", ops)

	call := func(op string) *events.Error {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := natsreq.Call[struct{}, struct{}](ctx, nc, events.ServiceEndpoint("errs", op), struct{}{})
		var e *events.Error
		if !errors.As(err, &e) {
			t.Fatalf("%s: error %v is not *events.Error", op, err)
		}
		return e
	}
	for _, c := range codes {
		t.Run(string(c), func(t *testing.T) {
			e := call(string(c))
			if e.Code != c || e.Message != "message for "+string(c) {
				t.Fatalf("got %+v", e)
			}
			if c == events.CodeInvalid && (len(e.Fields) != 1 || e.Fields[0].Field != "name") {
				t.Fatalf("fields lost: %+v", e.Fields)
			}
		})
	}
	for op, want := range map[string]events.Error{
		"plain-body": {Code: events.CodeConflict, Message: "version mismatch"},
		"numeric":    {Code: events.CodeNotFound, Message: "no such thing"},
		"unknown":    {Code: events.CodeInternal, Message: "short and stout"},
	} {
		t.Run(op, func(t *testing.T) {
			if e := call(op); e.Code != want.Code || e.Message != want.Message {
				t.Fatalf("got %+v, want %+v", e, want)
			}
		})
	}
}

func TestCallNoResponders(t *testing.T) {
	t.Parallel()
	nc := natstest.Connect(t, natstest.Run(t))
	_, err := natsreq.Call[struct{}, struct{}](context.Background(), nc, events.ServiceEndpoint("billing", "plans"), struct{}{})
	var e *events.Error
	if !errors.As(err, &e) || e.Code != events.CodeUnavailable || e.Message != "service billing is not running" {
		t.Fatalf("got %v", err)
	}
	if !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("cause lost: %v", err)
	}
}

func TestCallDeadline(t *testing.T) {
	t.Parallel()
	nc := natstest.Connect(t, natstest.Run(t))
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	deadlines := make(chan string, 1)
	natstest.Service(t, nc, "slow", map[string]micro.HandlerFunc{
		"op": func(req micro.Request) {
			deadlines <- req.Headers().Get(events.HeaderDeadline)
			<-release // answers only after the caller gave up
			_ = req.Respond(nil)
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	dl, _ := ctx.Deadline()
	_, err := natsreq.Call[struct{}, struct{}](ctx, nc, events.ServiceEndpoint("slow", "op"), struct{}{})
	var e *events.Error
	if !errors.As(err, &e) || e.Code != events.CodeUnavailable || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	if got := <-deadlines; got != dl.UTC().Format(time.RFC3339Nano) {
		t.Fatalf("service saw deadline %q, want %q", got, dl.UTC().Format(time.RFC3339Nano))
	}
}

func TestCallBadReply(t *testing.T) {
	t.Parallel()
	nc := natstest.Connect(t, natstest.Run(t))
	natstest.Service(t, nc, "bad", map[string]micro.HandlerFunc{
		"op": func(req micro.Request) { _ = req.Respond([]byte(`{"greeting":42}`)) },
	})
	_, err := natsreq.Call[struct{}, echoResp](context.Background(), nc, events.ServiceEndpoint("bad", "op"), struct{}{})
	if events.ErrorCode(err) != events.CodeInternal {
		t.Fatalf("got %v", err)
	}
}

func TestCallClosedConnection(t *testing.T) {
	t.Parallel()
	nc := natstest.Connect(t, natstest.Run(t))
	nc.Close()
	_, err := natsreq.Call[struct{}, struct{}](context.Background(), nc, "svc.auth.health", struct{}{})
	if events.ErrorCode(err) != events.CodeUnavailable {
		t.Fatalf("got %v", err)
	}
}
