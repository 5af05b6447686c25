package endpoint_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/endpoint"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/infrapilot/infrapilot/services/internal/platform/reqctx"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

type greetReq struct {
	Name string `json:"name"`
}

type greetResp struct {
	Greeting string `json:"greeting"`
	Org      string `json:"org"`
	Actor    string `json:"actor"`
}

func start(t *testing.T, checks map[string]endpoint.Check) (*nats.Conn, *prometheus.Registry) {
	t.Helper()
	srv := natstest.Run(t)
	nc := srv.Connect()
	reg := prometheus.NewRegistry()
	s, err := endpoint.New(endpoint.Config{Service: "demo", Version: "1.2.3", Instance: "i1", Checks: checks}, nc, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	endpoint.Handle(s, "greet", func(ctx context.Context, req greetReq) (greetResp, error) {
		info := reqctx.From(ctx)
		switch req.Name {
		case "":
			return greetResp{}, events.Invalid("name is required").WithFields(events.FieldError{Field: "name", Message: "required"})
		case "ghost":
			return greetResp{}, events.NotFound("no such person")
		case "boom":
			return greetResp{}, errors.New("database password is hunter2")
		case "panic":
			panic("handler bug")
		case "slow":
			<-ctx.Done()
			return greetResp{}, ctx.Err()
		}
		return greetResp{Greeting: "hello " + req.Name, Org: info.OrgID, Actor: info.Actor.ID}, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	return nc, reg
}

func call(t *testing.T, nc *nats.Conn, op string, body string, hdr nats.Header, timeout time.Duration) *nats.Msg {
	t.Helper()
	msg := nats.NewMsg(events.ServiceEndpoint("demo", op))
	msg.Data = []byte(body)
	if hdr != nil {
		msg.Header = hdr
	}
	reply, err := nc.RequestMsg(msg, timeout)
	if err != nil {
		t.Fatalf("%s: %v", op, err)
	}
	return reply
}

func TestTypedHandlerGetsContextFromHeaders(t *testing.T) {
	nc, reg := start(t, nil)
	h := nats.Header{}
	reqctx.Info{OrgID: "org1", Actor: events.Actor{Kind: events.ActorUser, ID: "u1"}, RequestID: "r1"}.Headers(h)
	reply := call(t, nc, "greet", `{"name":"ada"}`, h, 2*time.Second)
	if reply.Header.Get(events.HeaderServiceErrorCode) != "" {
		t.Fatalf("unexpected error reply: %v %s", reply.Header, reply.Data)
	}
	var got greetResp
	if err := json.Unmarshal(reply.Data, &got); err != nil {
		t.Fatal(err)
	}
	if got != (greetResp{Greeting: "hello ada", Org: "org1", Actor: "u1"}) {
		t.Fatalf("got %+v", got)
	}
	if n := testutil.ToFloat64(mustCounter(t, reg, "greet", "ok")); n != 1 {
		t.Fatalf("ok counter = %v", n)
	}
}

func mustCounter(t *testing.T, reg *prometheus.Registry, op, code string) prometheus.Collector {
	t.Helper()
	c, err := endpoint.RequestsCounter(reg)
	if err != nil {
		t.Fatal(err)
	}
	return c.WithLabelValues("demo", op, code)
}

func TestErrorMapping(t *testing.T) {
	nc, _ := start(t, nil)
	cases := []struct {
		name, body string
		code       events.Code
		leak       string
	}{
		{"invalid with fields", `{"name":""}`, events.CodeInvalid, ""},
		{"not found", `{"name":"ghost"}`, events.CodeNotFound, ""},
		{"internal hides detail", `{"name":"boom"}`, events.CodeInternal, "hunter2"},
		{"panic is internal", `{"name":"panic"}`, events.CodeInternal, ""},
		{"malformed json", `{"name":`, events.CodeInvalid, ""},
		{"unknown field", `{"nom":"x"}`, events.CodeInvalid, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reply := call(t, nc, "greet", c.body, nil, 2*time.Second)
			if got := reply.Header.Get(events.HeaderServiceErrorCode); got != string(c.code) {
				t.Fatalf("code header %q, want %q (body %s)", got, c.code, reply.Data)
			}
			var e events.Error
			if err := json.Unmarshal(reply.Data, &e); err != nil {
				t.Fatalf("error body is not events.Error JSON: %s", reply.Data)
			}
			if e.Code != c.code || e.Message == "" {
				t.Fatalf("body %+v", e)
			}
			if c.code == events.CodeInvalid && c.name == "invalid with fields" && (len(e.Fields) != 1 || e.Fields[0].Field != "name") {
				t.Fatalf("field errors lost: %+v", e)
			}
			if c.leak != "" && (contains(string(reply.Data), c.leak) || contains(reply.Header.Get(events.HeaderServiceError), c.leak)) {
				t.Fatalf("internal detail leaked to the caller: %s", reply.Data)
			}
		})
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestDeadlineFromCallerBoundsTheHandler(t *testing.T) {
	nc, _ := start(t, nil)
	h := nats.Header{}
	h.Set(events.HeaderDeadline, time.Now().Add(150*time.Millisecond).Format(time.RFC3339Nano))
	began := time.Now()
	reply := call(t, nc, "greet", `{"name":"slow"}`, h, 5*time.Second)
	if took := time.Since(began); took > 3*time.Second {
		t.Fatalf("handler ignored the caller's deadline (took %s)", took)
	}
	if got := reply.Header.Get(events.HeaderServiceErrorCode); got != string(events.CodeUnavailable) {
		t.Fatalf("code %q, want unavailable", got)
	}
}

func TestHealthRunsChecks(t *testing.T) {
	var failing = errors.New("connection refused")
	healthy := true
	nc, _ := start(t, map[string]endpoint.Check{"postgres": func(context.Context) error {
		if healthy {
			return nil
		}
		return failing
	}})
	read := func() events.HealthReply {
		var hr events.HealthReply
		if err := json.Unmarshal(call(t, nc, events.HealthOperation, "", nil, 2*time.Second).Data, &hr); err != nil {
			t.Fatal(err)
		}
		return hr
	}
	if hr := read(); hr.Status != events.HealthOK || hr.Checks["postgres"] != events.HealthOK || hr.Service != "demo" || hr.Version != "1.2.3" {
		t.Fatalf("healthy reply %+v", hr)
	}
	healthy = false
	if hr := read(); hr.Status != events.HealthDegraded || hr.Checks["postgres"] == events.HealthOK {
		t.Fatalf("degraded reply %+v", hr)
	}
}

// TestHealthInfoDoesNotDegrade: a check answering an Info (an optional
// dependency that is not configured) is reported as its text and leaves
// the service healthy; AddCheck adds checks to a server's health.
func TestHealthInfoDoesNotDegrade(t *testing.T) {
	nc, _ := start(t, map[string]endpoint.Check{
		"clickhouse": func(context.Context) error { return endpoint.Info("off (not configured)") },
	})
	var hr events.HealthReply
	if err := json.Unmarshal(call(t, nc, events.HealthOperation, "", nil, 2*time.Second).Data, &hr); err != nil {
		t.Fatal(err)
	}
	if hr.Status != events.HealthOK || hr.Checks["clickhouse"] != "off (not configured)" {
		t.Fatalf("reply %+v", hr)
	}

	srv := natstest.Run(t)
	nc2 := srv.Connect()
	s, err := endpoint.New(endpoint.Config{Service: "added", Version: "1.0.0"}, nc2, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	s.AddCheck("broken", func(context.Context) error { return errors.New("down") })
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	reply, err := nc2.Request(events.ServiceEndpoint("added", events.HealthOperation), nil, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	hr = events.HealthReply{}
	if err := json.Unmarshal(reply.Data, &hr); err != nil || hr.Status != events.HealthDegraded || hr.Checks["broken"] != "error: down" {
		t.Fatalf("reply %+v %v", hr, err)
	}
}

func TestMicroDiscovery(t *testing.T) {
	nc, _ := start(t, nil)
	reply, err := nc.Request("$SRV.PING.demo", nil, 2*time.Second)
	if err != nil {
		t.Fatalf("micro ping: %v", err)
	}
	if !contains(string(reply.Data), `"name":"demo"`) {
		t.Fatalf("ping reply %s", reply.Data)
	}
}
