package nginx

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/infrapilot/infrapilot/agent/internal/docker"
	"github.com/infrapilot/infrapilot/events"
)

// Exec runs the nginx binary wherever nginx lives, so that the controller
// is the same for a local nginx and a containerised one.
type Exec interface {
	// Run runs nginx with args and returns what it printed (stderr, where
	// nginx writes its messages, then stdout). err is non-nil when nginx
	// could not run or exited non-zero; the output then holds nginx's
	// reason.
	Run(ctx context.Context, args ...string) (output string, err error)
	// CheckHost is the address the check server is reached at from the
	// agent: 127.0.0.1 for a local nginx, the container's address
	// otherwise.
	CheckHost(ctx context.Context) (string, error)
}

// LocalExec runs nginx as a local process.
type LocalExec struct {
	// Binary is the nginx executable (path or name on PATH).
	Binary string
}

// Run runs Binary. Started without `-g "daemon off;"`, nginx's master
// daemonises and the command returns once it is up (or failed); its
// output is captured until then. WaitDelay bounds the wait for the
// daemon to let go of the output pipe, which it does as soon as it has
// opened its error log.
func (e LocalExec) Run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, e.Binary, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	return out.String(), err
}

// CheckHost is the loopback address: a local check server listens there
// only.
func (LocalExec) CheckHost(context.Context) (string, error) { return "127.0.0.1", nil }

// ContainerAPI is what ContainerExec needs of the container engine;
// *docker.Client is one.
type ContainerAPI interface {
	ExecCapture(ctx context.Context, ref string, cmd []string) (docker.ExecResult, error)
	Container(ctx context.Context, ref string) (events.ContainerDetail, error)
}

// ContainerExec runs nginx in a container: `docker exec <container> nginx
// …` through the engine API, as the seed did.
type ContainerExec struct {
	API       ContainerAPI
	Container string
	// Binary is nginx inside the container (default "nginx").
	Binary string
}

// NewContainerExec returns the Exec of a containerised nginx.
func NewContainerExec(api ContainerAPI, container, binary string) ContainerExec {
	if binary == "" {
		binary = "nginx"
	}
	return ContainerExec{API: api, Container: container, Binary: binary}
}

// Command is the command run in the container for args.
func (e ContainerExec) Command(args ...string) []string {
	return append([]string{e.Binary}, args...)
}

// Run execs nginx in the container and waits for it.
func (e ContainerExec) Run(ctx context.Context, args ...string) (string, error) {
	res, err := e.API.ExecCapture(ctx, e.Container, e.Command(args...))
	if err != nil {
		return "", fmt.Errorf("docker exec %s: %w", e.Container, err)
	}
	out := res.Stderr + res.Stdout
	if res.ExitCode != 0 {
		return out, fmt.Errorf("docker exec %s %s: exit status %d", e.Container, strings.Join(e.Command(args...), " "), res.ExitCode)
	}
	return out, nil
}

// CheckHost is the container's first network address; a container on
// the host's network has none and is reached on the loopback address.
func (e ContainerExec) CheckHost(ctx context.Context) (string, error) {
	d, err := e.API.Container(ctx, e.Container)
	if err != nil {
		return "", err
	}
	for _, n := range d.NetworkInfo {
		if n.IPAddress != "" {
			return n.IPAddress, nil
		}
	}
	return "127.0.0.1", nil
}
