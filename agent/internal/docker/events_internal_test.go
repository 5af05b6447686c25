package docker

import (
	"testing"
	"time"

	dockerevents "github.com/docker/docker/api/types/events"
	"github.com/infrapilot/infrapilot/events"
)

// An OOM kill cannot be provoked reliably on the test machine's podman
// (cgroup v1 without a memory controller for containers), so the
// conversion of the engines' messages is checked on its own: the actions
// reported, podman's "died", the exit code of a die, and the rest ignored.
func TestDockerEventConversion(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	msg := func(typ dockerevents.Type, action string, attrs map[string]string) dockerevents.Message {
		return dockerevents.Message{Type: typ, Action: dockerevents.Action(action), TimeNano: at.UnixNano(),
			Actor: dockerevents.Actor{ID: "c1", Attributes: attrs}}
	}
	for _, tc := range []struct {
		in   dockerevents.Message
		ok   bool
		want string
		code *int
	}{
		{msg(dockerevents.ContainerEventType, "oom", map[string]string{"name": "web"}), true, events.DockerOOM, nil},
		{msg(dockerevents.ContainerEventType, "died", map[string]string{"exitCode": "137"}), true, events.DockerDie, ptr(137)},
		{msg(dockerevents.ContainerEventType, "die", map[string]string{"exitCode": "0"}), true, events.DockerDie, ptr(0)},
		{msg(dockerevents.ContainerEventType, "restart", nil), true, events.DockerRestart, nil},
		{msg(dockerevents.ContainerEventType, "start", map[string]string{LabelComposeProject: "shop"}), true, events.DockerStart, nil},
		{msg(dockerevents.ContainerEventType, "exec_start", nil), false, "", nil},
		{msg(dockerevents.NetworkEventType, "connect", nil), false, "", nil},
	} {
		got, ok := dockerEvent(tc.in)
		if ok != tc.ok || got.Action != tc.want {
			t.Fatalf("%s: got %+v %v", tc.in.Action, got, ok)
		}
		if !ok {
			continue
		}
		if !got.Time.Equal(at) || got.Container != "c1" || got.Kind != events.AgentEventKindDocker || got.V != events.TelemetryVersion {
			t.Fatalf("%s: %+v", tc.in.Action, got)
		}
		if (tc.code == nil) != (got.ExitCode == nil) || tc.code != nil && *tc.code != *got.ExitCode {
			t.Fatalf("%s: exit code %v", tc.in.Action, got.ExitCode)
		}
	}
}

func ptr(i int) *int { return &i }
