package target

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// runNATS starts an embedded NATS server on a free port.
func runNATS(t *testing.T) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(s.Shutdown)
	return s
}

// TestServiceRequest: a request reaches svc.<service>.<op> with the
// headers a trusted service sends (org, actor, role, deadline), the reply
// is decoded, and a service error comes back as *events.Error.
func TestServiceRequest(t *testing.T) {
	s := runNATS(t)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	got := make(chan nats.Header, 2)
	_, err = nc.Subscribe(events.ServiceEndpoint("tenancy", events.OpTenancySetPlan), func(m *nats.Msg) {
		got <- m.Header
		var req events.SetPlanRequest
		_ = json.Unmarshal(m.Data, &req)
		if req.Plan != "enterprise" {
			reply := nats.NewMsg(m.Reply)
			reply.Header.Set(events.HeaderServiceError, "plan is not a plan")
			reply.Header.Set(events.HeaderServiceErrorCode, string(events.CodeInvalid))
			reply.Data, _ = json.Marshal(events.Invalid("plan is not a plan"))
			_ = m.RespondMsg(reply)
			return
		}
		_ = m.Respond([]byte(`{"id":"org-1","plan":"enterprise"}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	tg := &Target{NATSURL: s.ClientURL()}
	defer tg.Close()
	ctx := context.Background()

	var out events.OrgSummary
	if err := tg.ServiceRequest(ctx, "tenancy", events.OpTenancySetPlan, "org-1", events.SetPlanRequest{Plan: "enterprise"}, &out); err != nil {
		t.Fatal(err)
	}
	if out.ID != "org-1" || out.Plan != "enterprise" {
		t.Errorf("reply %+v", out)
	}
	h := <-got
	if h.Get(events.HeaderOrgID) != "org-1" || h.Get(events.HeaderActorKind) != string(events.ActorSystem) ||
		h.Get(events.HeaderActorID) != LoadtestActor.ID || h.Get(events.HeaderRole) != "" {
		t.Errorf("headers %v", h)
	}
	if dl, err := time.Parse(time.RFC3339Nano, h.Get(events.HeaderDeadline)); err != nil || time.Until(dl) <= 0 {
		t.Errorf("deadline header %q", h.Get(events.HeaderDeadline))
	}

	err = tg.ServiceRequestAs(ctx, "tenancy", events.OpTenancySetPlan, "org-1",
		events.Actor{Kind: events.ActorUser, ID: "u-1"}, events.RoleOwner, events.SetPlanRequest{Plan: "gold"}, nil)
	var e *events.Error
	if !errors.As(err, &e) || e.Code != events.CodeInvalid {
		t.Fatalf("error %v, want an invalid *events.Error", err)
	}
	if h := <-got; h.Get(events.HeaderActorKind) != "user" || h.Get(events.HeaderActorID) != "u-1" || h.Get(events.HeaderRole) != "owner" {
		t.Errorf("headers %v", h)
	}
}

// TestServiceRequestWithoutNATS: an external target without --nats-url
// says so instead of dialling nothing.
func TestServiceRequestWithoutNATS(t *testing.T) {
	tg := &Target{}
	if err := tg.SetPlan(context.Background(), "org-1", "enterprise"); !errors.Is(err, ErrNoNATS) {
		t.Fatalf("err %v, want ErrNoNATS", err)
	}
}

func TestResolveFlags(t *testing.T) {
	t.Setenv("INFRAPILOT_TOKEN", "")
	for name, f := range map[string]Flags{
		"url without token":  {URL: "http://127.0.0.1:1/api/v1"},
		"self-host with url": {URL: "http://127.0.0.1:1/api/v1", Token: "ipk_x", SelfHost: true},
	} {
		if _, err := f.Resolve(context.Background(), nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestCleanEnv(t *testing.T) {
	got := cleanEnv([]string{"PATH=/bin", "INFRAPILOT_HTTP=:80", "HOME=/root", "INFRAPILOT_ADMIN_PASSWORD=x"})
	if len(got) != 2 || got[0] != "PATH=/bin" || got[1] != "HOME=/root" {
		t.Errorf("cleanEnv = %v", got)
	}
}
