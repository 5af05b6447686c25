package docker

import (
	"bytes"
	"context"
	"io"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/infrapilot/infrapilot/events"
)

// maxCapture bounds each captured stream of ExecCapture.
const maxCapture = 1 << 20

// ExecResult is the outcome of a command run to completion in a container.
type ExecResult struct {
	Stdout, Stderr string
	ExitCode       int
}

// ExecCapture runs cmd in a container without a terminal or stdin, waits
// until it exits and returns its output and exit code. It is how the
// agent drives a containerised nginx (`docker exec <c> nginx -t …`), where
// an interactive session (Exec) would be the wrong tool: nothing is typed,
// and the exit code matters. Each stream is cut at 1 MiB. A non-zero exit
// is not an error: the caller reads ExitCode.
func (c *Client) ExecCapture(ctx context.Context, ref string, cmd []string) (ExecResult, error) {
	if err := c.ready(ctx); err != nil {
		return ExecResult{}, err
	}
	id, err := checkRef("container", ref)
	if err != nil {
		return ExecResult{}, err
	}
	if len(cmd) == 0 {
		return ExecResult{}, events.Invalid("no command to run")
	}
	created, err := c.api.ContainerExecCreate(ctx, id, container.ExecOptions{
		Cmd: cmd, AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		return ExecResult{}, mapError(err, "container "+id)
	}
	hj, err := c.api.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return ExecResult{}, mapError(err, "exec in container "+id)
	}
	defer hj.Close()
	stop := context.AfterFunc(ctx, func() { hj.Close() })
	defer stop()
	var stdout, stderr bytes.Buffer
	_, copyErr := stdcopy.StdCopy(&limited{w: &stdout}, &limited{w: &stderr}, hj.Reader)
	if ctx.Err() != nil {
		return ExecResult{}, mapError(ctx.Err(), "exec in container "+id)
	}
	if copyErr != nil && copyErr != io.EOF {
		return ExecResult{}, mapError(copyErr, "exec in container "+id)
	}
	// The stream ends when the process exits; the engine may report it
	// running for a moment longer.
	for {
		in, err := c.api.ContainerExecInspect(ctx, created.ID)
		if err != nil {
			return ExecResult{}, mapError(err, "exec "+created.ID)
		}
		if !in.Running {
			return ExecResult{Stdout: stdout.String(), Stderr: stderr.String(), ExitCode: in.ExitCode}, nil
		}
		select {
		case <-ctx.Done():
			return ExecResult{}, mapError(ctx.Err(), "exec "+created.ID)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// limited keeps the first maxCapture bytes written to it and swallows the
// rest, so that a chatty command cannot exhaust the agent's memory and
// the stream is still read to its end.
type limited struct{ w *bytes.Buffer }

func (l *limited) Write(p []byte) (int, error) {
	if room := maxCapture - l.w.Len(); room > 0 {
		l.w.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
