package simagent

import (
	"encoding/json"
	"testing"

	"github.com/infrapilot/infrapilot/events"
)

func TestAgentAnswersLikeTheRealResponder(t *testing.T) {
	a := New(Identity{OrgID: "o1", AgentID: "a1", Hostname: "h1"}, 5)
	running := a.Containers()[0]
	stopped := a.Containers()[4]
	if running.State != "running" || stopped.State != "exited" {
		t.Fatalf("containers: %+v", a.Containers())
	}
	tests := []struct {
		name, op, body string
		code           events.Code // expected error code, "" for success
		check          func(t *testing.T, resp any)
	}{
		{"ping", events.OpAgentPing, "", "", func(t *testing.T, resp any) {
			if info := resp.(events.AgentInfo); info.AgentID != "a1" || info.Version != Version {
				t.Fatalf("ping: %+v", info)
			}
		}},
		{"list running", events.OpAgentContainersList, "{}", "", func(t *testing.T, resp any) {
			var l events.List[events.Container]
			if err := json.Unmarshal(resp.([]byte), &l); err != nil || len(l.Items) != 4 {
				t.Fatalf("list: %d items, %v", len(l.Items), err)
			}
		}},
		{"list all", events.OpAgentContainersList, `{"all":true}`, "", func(t *testing.T, resp any) {
			var l events.List[events.Container]
			if err := json.Unmarshal(resp.([]byte), &l); err != nil || len(l.Items) != 5 {
				t.Fatalf("list all: %d items, %v", len(l.Items), err)
			}
		}},
		{"restart by name", events.OpAgentContainerRestart, `{"id":"` + stopped.Name + `"}`, "", func(t *testing.T, resp any) {
			if c := resp.(events.Container); c.ID != stopped.ID || c.State != "running" {
				t.Fatalf("restart: %+v", c)
			}
		}},
		{"stop by id prefix", events.OpAgentContainerStop, `{"id":"` + running.ID[:12] + `"}`, "", func(t *testing.T, resp any) {
			if c := resp.(events.Container); c.ID != running.ID || c.State != "exited" {
				t.Fatalf("stop: %+v", c)
			}
		}},
		{"inspect", events.OpAgentContainerInspect, `{"id":"` + running.ID + `"}`, "", func(t *testing.T, resp any) {
			if d := resp.(events.ContainerDetail); d.ID != running.ID {
				t.Fatalf("inspect: %+v", d)
			}
		}},
		{"unknown container", events.OpAgentContainerRestart, `{"id":"nope"}`, events.CodeNotFound, nil},
		{"unknown field", events.OpAgentContainersList, `{"everything":true}`, events.CodeInvalid, nil},
		{"trailing data", events.OpAgentContainersList, `{} {}`, events.CodeInvalid, nil},
		{"timeout out of range", events.OpAgentContainerRestart, `{"id":"x","timeout":601}`, events.CodeInvalid, nil},
		{"unknown operation", "exec.open", `{}`, events.CodeNotFound, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := a.answer(tt.op, []byte(tt.body))
			if tt.code != "" {
				if events.ErrorCode(err) != tt.code {
					t.Fatalf("err %v, want code %s", err, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, resp)
		})
	}
}
