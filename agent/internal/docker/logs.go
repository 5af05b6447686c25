package docker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/infrapilot/infrapilot/events"
)

// MaxLineBytes bounds one log line; the rest of a longer line is dropped.
// Docker itself splits lines at 16 KiB.
const MaxLineBytes = 64 << 10

// LogOptions selects a part of a container's log.
type LogOptions struct {
	// Follow keeps the stream open for new lines until the container stops
	// or ctx ends.
	Follow bool
	// Tail, when positive, starts with the last Tail lines.
	Tail int
	// Since, when set, skips lines older than it. Both engines include
	// lines stamped exactly Since; podman compares with its precise time
	// but prints whole seconds, so Since should be a printed timestamp.
	Since time.Time
}

// LogReader reads a container's log line by line, stdout and stderr
// interleaved in the order the engine stored them.
type LogReader struct {
	rc  io.ReadCloser
	br  *bufio.Reader
	tty bool
	// buf holds, per stream, the bytes of a line not yet terminated, and
	// lines split out of a frame and not yet returned.
	partial [3][]byte
	queue   []events.LogLine
}

// Logs opens a container's log. With a TTY the engine sends one raw
// stream (reported as stdout); without, it multiplexes stdout and stderr
// in frames.
func (c *Client) Logs(ctx context.Context, ref string, opts LogOptions) (*LogReader, error) {
	if err := c.ready(ctx); err != nil {
		return nil, err
	}
	id, err := checkRef("container", ref)
	if err != nil {
		return nil, err
	}
	in, err := c.api.ContainerInspect(ctx, id)
	if err != nil {
		return nil, mapError(err, "container "+id)
	}
	o := container.LogsOptions{ShowStdout: true, ShowStderr: true, Timestamps: true, Follow: opts.Follow}
	if opts.Tail > 0 {
		o.Tail = strconv.Itoa(opts.Tail)
	}
	if !opts.Since.IsZero() {
		o.Since = fmt.Sprintf("%d.%09d", opts.Since.Unix(), opts.Since.Nanosecond())
	}
	rc, err := c.api.ContainerLogs(ctx, in.ID, o)
	if err != nil {
		return nil, mapError(err, "container "+id)
	}
	return &LogReader{rc: rc, br: bufio.NewReaderSize(rc, 64<<10), tty: in.Config != nil && in.Config.Tty}, nil
}

// Close ends the stream; a Next blocked on it returns.
func (r *LogReader) Close() error { return r.rc.Close() }

// Next returns the next line. It returns io.EOF at the end of the log
// (or, following, when the container stopped).
func (r *LogReader) Next() (events.LogLine, error) {
	for len(r.queue) == 0 {
		if err := r.fill(); err != nil {
			return events.LogLine{}, err
		}
	}
	l := r.queue[0]
	r.queue = r.queue[1:]
	return l, nil
}

func (r *LogReader) fill() error {
	if r.tty {
		line, err := readLine(r.br)
		if len(line) > 0 || err == nil {
			r.queue = append(r.queue, parseLine(events.StreamStdout, line))
			return nil
		}
		return err
	}
	var hdr [8]byte
	if _, err := io.ReadFull(r.br, hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = io.EOF
		}
		return r.flush(err)
	}
	stream := int(hdr[0])
	if stream != 1 && stream != 2 {
		return fmt.Errorf("docker: malformed log frame (stream %d)", stream)
	}
	size := int64(binary.BigEndian.Uint32(hdr[4:]))
	keep := min(size, int64(MaxLineBytes+64))
	data := make([]byte, keep)
	if _, err := io.ReadFull(r.br, data); err != nil {
		return r.flush(io.EOF)
	}
	if size > keep {
		if _, err := io.CopyN(io.Discard, r.br, size-keep); err != nil {
			return r.flush(io.EOF)
		}
	}
	name := events.StreamStdout
	if stream == 2 {
		name = events.StreamStderr
	}
	buf := append(r.partial[stream], data...)
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			break
		}
		r.queue = append(r.queue, parseLine(name, buf[:i]))
		buf = buf[i+1:]
	}
	if len(buf) > MaxLineBytes+64 {
		r.queue = append(r.queue, parseLine(name, buf))
		buf = nil
	}
	r.partial[stream] = append([]byte(nil), buf...)
	return nil
}

// flush returns what is left of unterminated lines before err.
func (r *LogReader) flush(err error) error {
	for s, name := range [3]string{1: events.StreamStdout, 2: events.StreamStderr} {
		if s > 0 && len(r.partial[s]) > 0 {
			r.queue = append(r.queue, parseLine(name, r.partial[s]))
			r.partial[s] = nil
		}
	}
	if len(r.queue) > 0 {
		return nil
	}
	return err
}

// readLine reads one '\n'-terminated line of at most MaxLineBytes,
// discarding the rest of a longer one.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		if len(line) < MaxLineBytes+64 {
			line = append(line, frag...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return line, err
		}
		return bytes.TrimSuffix(line, []byte("\n")), nil
	}
}

// parseLine splits "<timestamp> <text>". Docker stamps nanoseconds,
// podman whole seconds; a line without a parsable stamp keeps its text
// whole and a zero time.
func parseLine(stream string, b []byte) events.LogLine {
	b = bytes.TrimSuffix(b, []byte("\r"))
	l := events.LogLine{Stream: stream}
	if i := bytes.IndexByte(b, ' '); i > 0 && i <= 40 {
		if t, err := time.Parse(time.RFC3339Nano, string(b[:i])); err == nil {
			l.Time = t.UTC()
			b = b[i+1:]
		}
	}
	if len(b) > MaxLineBytes {
		b = b[:MaxLineBytes]
	}
	l.Text = string(bytes.ToValidUTF8(b, []byte("\uFFFD")))
	return l
}

// Tail returns the last n lines of a container's log (n ≤ 0: 100, at
// most 10000), optionally only those stamped at or after since.
func (c *Client) Tail(ctx context.Context, ref string, n int, since time.Time) ([]events.LogLine, error) {
	switch {
	case n <= 0:
		n = 100
	case n > 10000:
		n = 10000
	}
	r, err := c.Logs(ctx, ref, LogOptions{Tail: n, Since: since})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	out := []events.LogLine{}
	for {
		l, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, mapError(err, "container "+ref)
		}
		out = append(out, l)
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out, nil
}
