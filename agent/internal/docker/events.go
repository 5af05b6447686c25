package docker

import (
	"context"
	"strconv"
	"time"

	dockerevents "github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/infrapilot/infrapilot/events"
)

// reportedActions are the container events the agent reports.
var reportedActions = []string{events.DockerStart, events.DockerDie, events.DockerOOM, events.DockerRestart}

// Events streams container start, die, oom and restart events from since
// (zero: from now) until ctx ends or the stream fails; the error channel
// then carries one error (nil when ctx ended) and both channels close.
//
// Podman reports these actions under the same names (its "died" is
// "die" on the compatible API, though its event filter only knows
// "died"), and a "restart" next to the "die"/"start" pair a restart
// causes, as Docker does. It reports no network events, which the agent
// does not use.
func (c *Client) Events(ctx context.Context, since time.Time) (<-chan events.AgentDockerEvent, <-chan error) {
	out := make(chan events.AgentDockerEvent, 64)
	errc := make(chan error, 1)
	// Only the type is filtered by the engine: podman's event filter
	// wants its own names ("died" for "die"), so the actions are picked
	// here.
	f := filters.NewArgs(filters.Arg("type", string(dockerevents.ContainerEventType)))
	if err := c.ready(ctx); err != nil {
		close(out)
		errc <- err
		close(errc)
		return out, errc
	}
	opts := dockerevents.ListOptions{Filters: f}
	if !since.IsZero() {
		opts.Since = strconv.FormatInt(since.Unix(), 10)
	}
	msgs, errs := c.api.Events(ctx, opts)
	go func() {
		defer close(out)
		defer close(errc)
		for {
			select {
			case m := <-msgs:
				ev, ok := dockerEvent(m)
				if !ok {
					continue
				}
				if !since.IsZero() && ev.Time.Before(since) {
					continue
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					errc <- nil
					return
				}
			case err := <-errs:
				if ctx.Err() != nil {
					err = nil
				}
				errc <- mapError(err, "events")
				return
			}
		}
	}()
	return out, errc
}

// dockerEvent converts an engine event; ok is false for events the agent
// does not report (engines may ignore the filter).
func dockerEvent(m dockerevents.Message) (events.AgentDockerEvent, bool) {
	if m.Type != dockerevents.ContainerEventType {
		return events.AgentDockerEvent{}, false
	}
	action := string(m.Action)
	if action == "died" {
		action = events.DockerDie
	}
	if !contains(reportedActions, action) {
		return events.AgentDockerEvent{}, false
	}
	t := time.Unix(0, m.TimeNano).UTC()
	if m.TimeNano == 0 {
		t = time.Unix(m.Time, 0).UTC()
	}
	attrs := m.Actor.Attributes
	ev := events.AgentDockerEvent{
		V: events.TelemetryVersion, Kind: events.AgentEventKindDocker, Action: action, Time: t,
		Container: m.Actor.ID, Name: attrs["name"], Image: attrs["image"], Stack: attrs[LabelComposeProject],
	}
	if code, err := strconv.Atoi(attrs["exitCode"]); err == nil && action == events.DockerDie {
		ev.ExitCode = &code
	}
	return ev, true
}
