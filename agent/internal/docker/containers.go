package docker

import (
	"context"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/infrapilot/infrapilot/events"
)

// Compose labels the agent reads.
const (
	LabelComposeProject = "com.docker.compose.project"
	LabelComposeService = "com.docker.compose.service"
)

// refRE accepts container and network ids, id prefixes and names. The
// client puts a reference into the request path unescaped, so anything
// else ("../", "?") is refused before it gets there.
var refRE = regexp.MustCompile(`^/?[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}$`)

func checkRef(kind, ref string) (string, error) {
	if !refRE.MatchString(ref) {
		return "", events.Invalid("%s %q is not a valid id or name", kind, ref).
			WithFields(events.FieldError{Field: kind, Message: "must be an id or a name"})
	}
	return strings.TrimPrefix(ref, "/"), nil
}

// Containers lists the running containers, or all of them with all.
func (c *Client) Containers(ctx context.Context, all bool) ([]events.Container, error) {
	if err := c.ready(ctx); err != nil {
		return nil, err
	}
	list, err := c.api.ContainerList(ctx, container.ListOptions{All: all})
	if err != nil {
		return nil, mapError(err, "containers")
	}
	names, err := c.networkNames(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]events.Container, 0, len(list))
	for _, s := range list {
		out = append(out, c.summary(ctx, s, names))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (c *Client) summary(ctx context.Context, s container.Summary, names netIndex) events.Container {
	out := events.Container{
		ID: s.ID, Image: s.Image, ImageID: s.ImageID, Command: s.Command,
		State: string(s.State), Status: s.Status, Health: healthFromStatus(s.Status),
		Created: time.Unix(s.Created, 0).UTC(), Labels: s.Labels,
		Stack: s.Labels[LabelComposeProject], Service: s.Labels[LabelComposeService],
	}
	if len(s.Names) > 0 {
		out.Name = strings.TrimPrefix(s.Names[0], "/")
	}
	for _, p := range s.Ports {
		out.Ports = append(out.Ports, events.Port{IP: p.IP, PrivatePort: int(p.PrivatePort), PublicPort: int(p.PublicPort), Type: p.Type})
	}
	if s.NetworkSettings != nil {
		for key, ep := range s.NetworkSettings.Networks {
			out.Networks = append(out.Networks, c.canonicalNetwork(ctx, key, ep.NetworkID, names))
		}
		sort.Strings(out.Networks)
	}
	return out
}

// healthFromStatus reads the health out of a list entry's status text
// ("Up 3 minutes (healthy)"): the list API has no field for it.
func healthFromStatus(status string) string {
	switch {
	case strings.Contains(status, "(healthy)"):
		return "healthy"
	case strings.Contains(status, "(unhealthy)"):
		return "unhealthy"
	case strings.Contains(status, "starting)"):
		return "starting"
	}
	return ""
}

// Container returns one container in detail.
func (c *Client) Container(ctx context.Context, ref string) (events.ContainerDetail, error) {
	if err := c.ready(ctx); err != nil {
		return events.ContainerDetail{}, err
	}
	id, err := checkRef("container", ref)
	if err != nil {
		return events.ContainerDetail{}, err
	}
	in, err := c.api.ContainerInspect(ctx, id)
	if err != nil {
		return events.ContainerDetail{}, mapError(err, "container "+id)
	}
	names, err := c.networkNames(ctx)
	if err != nil {
		return events.ContainerDetail{}, err
	}
	return c.detail(ctx, in, names), nil
}

func (c *Client) detail(ctx context.Context, in container.InspectResponse, names netIndex) events.ContainerDetail {
	d := events.ContainerDetail{Container: events.Container{
		ID: in.ID, Name: strings.TrimPrefix(in.Name, "/"), ImageID: in.Image,
	}}
	if t, err := time.Parse(time.RFC3339Nano, in.Created); err == nil {
		d.Created = t.UTC()
	}
	if in.Config != nil {
		d.Image = in.Config.Image
		d.Labels = in.Config.Labels
		d.Stack = in.Config.Labels[LabelComposeProject]
		d.Service = in.Config.Labels[LabelComposeService]
		d.TTY = in.Config.Tty
		d.Entrypoint = in.Config.Entrypoint
		d.Cmd = in.Config.Cmd
		d.WorkingDir = in.Config.WorkingDir
		d.Command = strings.Join(append(append([]string{}, in.Config.Entrypoint...), in.Config.Cmd...), " ")
		for _, kv := range in.Config.Env {
			k, _, _ := strings.Cut(kv, "=")
			d.EnvKeys = append(d.EnvKeys, k)
		}
	}
	if st := in.State; st != nil {
		d.State = string(st.Status)
		d.ExitCode = st.ExitCode
		d.OOMKilled = st.OOMKilled
		d.PID = st.Pid
		if st.Health != nil {
			d.Health = string(st.Health.Status)
		}
		d.StartedAt = engineTime(st.StartedAt)
		d.FinishedAt = engineTime(st.FinishedAt)
		d.Status = st.Status
	}
	d.RestartCount = in.RestartCount
	if in.HostConfig != nil {
		d.RestartPolicy = string(in.HostConfig.RestartPolicy.Name)
	}
	for _, m := range in.Mounts {
		d.Mounts = append(d.Mounts, events.Mount{Type: string(m.Type), Name: m.Name, Source: m.Source, Destination: m.Destination, ReadWrite: m.RW})
	}
	if in.NetworkSettings != nil {
		for key, ep := range in.NetworkSettings.Networks {
			name := c.canonicalNetwork(ctx, key, ep.NetworkID, names)
			d.Networks = append(d.Networks, name)
			d.NetworkInfo = append(d.NetworkInfo, events.ContainerNetwork{
				NetworkID: networkIDOf(name, ep.NetworkID, names), Name: name, IPAddress: ep.IPAddress,
				Gateway: ep.Gateway, MacAddress: ep.MacAddress, Aliases: ep.Aliases,
			})
		}
		sort.Strings(d.Networks)
		sort.Slice(d.NetworkInfo, func(i, j int) bool { return d.NetworkInfo[i].Name < d.NetworkInfo[j].Name })
	}
	return d
}

// engineTime parses an engine timestamp; the zero time ("0001-01-01…")
// stays zero.
func engineTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() <= 1 {
		return time.Time{}
	}
	return t.UTC()
}

// Start starts a container. Starting a running container succeeds.
func (c *Client) Start(ctx context.Context, ref string) (events.Container, error) {
	if err := c.ready(ctx); err != nil {
		return events.Container{}, err
	}
	id, err := checkRef("container", ref)
	if err != nil {
		return events.Container{}, err
	}
	if err := mapError(c.api.ContainerStart(ctx, id, container.StartOptions{}), "container "+id); err != nil {
		return events.Container{}, err
	}
	return c.current(ctx, id)
}

// Stop stops a container, waiting timeout seconds (nil: the engine's
// default) before it is killed. Stopping a stopped container succeeds.
func (c *Client) Stop(ctx context.Context, ref string, timeout *int) (events.Container, error) {
	if err := c.ready(ctx); err != nil {
		return events.Container{}, err
	}
	id, err := checkRef("container", ref)
	if err != nil {
		return events.Container{}, err
	}
	if err := mapError(c.api.ContainerStop(ctx, id, container.StopOptions{Timeout: timeout}), "container "+id); err != nil {
		return events.Container{}, err
	}
	return c.current(ctx, id)
}

// Restart restarts a container.
func (c *Client) Restart(ctx context.Context, ref string, timeout *int) (events.Container, error) {
	if err := c.ready(ctx); err != nil {
		return events.Container{}, err
	}
	id, err := checkRef("container", ref)
	if err != nil {
		return events.Container{}, err
	}
	if err := mapError(c.api.ContainerRestart(ctx, id, container.StopOptions{Timeout: timeout}), "container "+id); err != nil {
		return events.Container{}, err
	}
	return c.current(ctx, id)
}

// current is a container's summary after an operation.
func (c *Client) current(ctx context.Context, id string) (events.Container, error) {
	d, err := c.Container(ctx, id)
	if err != nil {
		return events.Container{}, err
	}
	return d.Container, nil
}
