package docker

import (
	"context"
	"errors"
	"io"
	"sync"
	"syscall"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/infrapilot/infrapilot/events"
)

// ExecOptions describes a command to run in a container.
type ExecOptions struct {
	// Cmd defaults to /bin/sh.
	Cmd []string
	// TTY gives the process a terminal of Rows×Cols; its stdout and
	// stderr are then one stream.
	TTY        bool
	Rows, Cols uint
	User       string
	WorkingDir string
}

// Exec is a running exec session: Read gives the process's output (stdout
// and stderr merged), Write feeds its stdin. It is an io.ReadWriteCloser;
// Resize changes its terminal. Read and Write may be used from different
// goroutines; Close may be called from any goroutine, more than once.
type Exec struct {
	c   *Client
	id  string
	tty bool
	hj  types.HijackedResponse
	out io.Reader

	closeOnce sync.Once
	closeErr  error
}

// Exec starts cmd in a container and attaches to it.
func (c *Client) Exec(ctx context.Context, ref string, opts ExecOptions) (*Exec, error) {
	if err := c.ready(ctx); err != nil {
		return nil, err
	}
	id, err := checkRef("container", ref)
	if err != nil {
		return nil, err
	}
	if len(opts.Cmd) == 0 {
		opts.Cmd = []string{"/bin/sh"}
	}
	var size *[2]uint
	if opts.TTY && opts.Rows > 0 && opts.Cols > 0 {
		size = &[2]uint{opts.Rows, opts.Cols}
	}
	created, err := c.api.ContainerExecCreate(ctx, id, container.ExecOptions{
		Cmd: opts.Cmd, Tty: opts.TTY, AttachStdin: true, AttachStdout: true, AttachStderr: true,
		ConsoleSize: size, User: opts.User, WorkingDir: opts.WorkingDir,
	})
	if err != nil {
		return nil, mapError(err, "container "+id)
	}
	hj, err := c.api.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{Tty: opts.TTY, ConsoleSize: size})
	if err != nil {
		return nil, mapError(err, "exec in container "+id)
	}
	e := &Exec{c: c, id: created.ID, tty: opts.TTY, hj: hj, out: hj.Reader}
	if !opts.TTY {
		// Without a terminal the engine multiplexes stdout and stderr in
		// frames; the session's output is both, in order.
		pr, pw := io.Pipe()
		go func() {
			_, err := stdcopy.StdCopy(pw, pw, hj.Reader)
			pw.CloseWithError(err)
		}()
		e.out = pr
	}
	return e, nil
}

// ID is the engine's exec id.
func (e *Exec) ID() string { return e.id }

// Read reads the process's output; io.EOF when it has exited.
func (e *Exec) Read(p []byte) (int, error) { return e.out.Read(p) }

// Write writes to the process's stdin.
func (e *Exec) Write(p []byte) (int, error) { return e.hj.Conn.Write(p) }

// Resize changes the terminal size of a TTY session.
func (e *Exec) Resize(ctx context.Context, rows, cols uint) error {
	if !e.tty {
		return events.Invalid("the session has no terminal")
	}
	if rows == 0 || cols == 0 || rows > 1000 || cols > 1000 {
		return events.Invalid("terminal size %dx%d is out of range", rows, cols)
	}
	return mapError(e.c.api.ContainerExecResize(ctx, e.id, container.ResizeOptions{Height: rows, Width: cols}), "exec "+e.id)
}

// CloseWrite ends the process's stdin (EOF); its output stays readable.
func (e *Exec) CloseWrite() error { return e.hj.CloseWrite() }

// Wait waits until the process has exited and returns its exit code.
func (e *Exec) Wait(ctx context.Context) (int, error) {
	for {
		in, err := e.c.api.ContainerExecInspect(ctx, e.id)
		if err != nil {
			return -1, mapError(err, "exec "+e.id)
		}
		if !in.Running {
			return in.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return -1, mapError(ctx.Err(), "exec "+e.id)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// closeGrace is how long Close waits for the process to end after each
// step.
const closeGrace = 2 * time.Second

// Close ends the session cleanly, the way closing a terminal does:
//
//  1. stdin is closed: a process reading it (a shell without a terminal)
//     sees EOF and exits;
//  2. the process still running after closeGrace is hung up (SIGHUP), then
//     killed (SIGKILL) after another closeGrace. Neither engine has an
//     API for this, and neither delivers a hangup when the attach
//     connection closes (with a terminal, a shell ignores stdin's EOF), so
//     the agent signals the PID the engine reports, which it can when it
//     runs on the engine's host, as it is installed to;
//  3. the connection is closed.
//
// An error says the process could not be ended; the session's resources
// are released all the same.
//
// Podman leaves a conmon process behind every exec for up to five minutes
// whatever the client does; it is podman's, not the agent's, and the
// tests clean them up by PID.
func (e *Exec) Close() error {
	e.closeOnce.Do(func() {
		defer e.hj.Close()
		_ = e.hj.CloseWrite()
		for _, sig := range []syscall.Signal{0, syscall.SIGHUP, syscall.SIGKILL} {
			if sig != 0 {
				if err := e.signal(sig); err != nil {
					e.closeErr = err
					return
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), closeGrace)
			_, err := e.Wait(ctx)
			cancel()
			if err == nil {
				return
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				e.closeErr = err
				return
			}
		}
		e.closeErr = events.Errorf(events.CodeConflict, "exec %s is still running after close", e.id)
	})
	return e.closeErr
}

// signal sends sig to the exec'd process through the host's PID.
func (e *Exec) signal(sig syscall.Signal) error {
	ctx, cancel := context.WithTimeout(context.Background(), closeGrace)
	defer cancel()
	in, err := e.c.api.ContainerExecInspect(ctx, e.id)
	if err != nil {
		return mapError(err, "exec "+e.id)
	}
	if !in.Running {
		return nil
	}
	if in.Pid <= 0 {
		return events.Errorf(events.CodeConflict, "exec %s is still running and its PID is unknown", e.id)
	}
	if err := syscall.Kill(in.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return events.Errorf(events.CodeConflict, "exec %s is still running: signal %d: %w", e.id, in.Pid, err)
	}
	return nil
}
