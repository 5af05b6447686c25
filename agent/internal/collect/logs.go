package collect

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/infrapilot/infrapilot/agent/internal/docker"
	"github.com/infrapilot/infrapilot/agent/internal/outbox"
	"github.com/infrapilot/infrapilot/agent/internal/state"
	"github.com/infrapilot/infrapilot/events"
)

// Publisher stores a message for the hub; *outbox.Outbox is one.
type Publisher interface {
	Publish(ctx context.Context, m outbox.Message) error
}

// LogsConfig configures the log followers.
type LogsConfig struct {
	// Subject is events.AgentLogs(org, agent).
	Subject string
	// A batch is sent when it has MaxLines lines (default 1000) or
	// MaxBytes bytes of text (default 256 KiB), or FlushInterval (default
	// 1 s) after its first line.
	MaxLines      int
	MaxBytes      int
	FlushInterval time.Duration
	// ResyncInterval is how often the running containers are listed to
	// catch any start event missed (default 30 s).
	ResyncInterval time.Duration
	Log            *slog.Logger
	Now            func() time.Time
}

func (c *LogsConfig) setDefaults() error {
	if c.Subject == "" {
		return errors.New("collect: logs: no subject")
	}
	if c.MaxLines <= 0 {
		c.MaxLines = 1000
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 256 << 10
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = time.Second
	}
	if c.ResyncInterval <= 0 {
		c.ResyncInterval = 30 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Logs follows the log of every running container and stores it in the
// outbox as AgentLogBatch messages, resuming after a restart exactly
// where it stopped (see positions).
type Logs struct {
	cfg    LogsConfig
	docker *docker.Client
	out    Publisher
	pos    *positions

	mu     sync.Mutex
	active map[string]bool
	wg     sync.WaitGroup
}

// NewLogs prepares the followers; it reads the positions in dir and
// starts nothing.
func NewLogs(cfg LogsConfig, dc *docker.Client, out Publisher, dir state.Dir) (*Logs, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	pos, err := loadPositions(dir, cfg.Now())
	if err != nil {
		return nil, err
	}
	return &Logs{cfg: cfg, docker: dc, out: out, pos: pos, active: map[string]bool{}}, nil
}

// Followed is how many containers are being followed.
func (l *Logs) Followed() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.active)
}

// Run follows containers until ctx ends: those running now, and each one
// that starts (a Docker start event, or the periodic resync). A
// follower's stream ends when its container stops, after its last line.
func (l *Logs) Run(ctx context.Context) error {
	defer l.wg.Wait()
	evs, errs := l.docker.Events(ctx, time.Time{})
	l.resync(ctx)
	tick := time.NewTicker(l.cfg.ResyncInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-evs:
			if ok && ev.Action == events.DockerStart {
				l.ensure(ctx, ev.Container, ev.Name, ev.Stack)
			}
			if !ok {
				evs = nil
			}
		case err := <-errs:
			if ctx.Err() != nil {
				return nil
			}
			// Until the next resync subscribes again, that resync is what
			// finds started containers.
			l.cfg.Log.Warn("logs: docker events ended", "err", err)
			evs, errs = nil, nil
		case <-tick.C:
			if evs == nil && errs == nil {
				evs, errs = l.docker.Events(ctx, time.Time{})
			}
			l.resync(ctx)
		}
	}
}

// resync follows every running container not followed yet and forgets
// the positions of containers that are gone.
func (l *Logs) resync(ctx context.Context) {
	list, err := l.docker.Containers(ctx, true)
	if err != nil {
		if ctx.Err() == nil {
			l.cfg.Log.Warn("logs: list containers", "err", err)
		}
		return
	}
	exists := map[string]bool{}
	for _, c := range list {
		exists[c.ID] = true
		if c.State == "running" {
			l.ensure(ctx, c.ID, c.Name, c.Stack)
		}
	}
	if err := l.pos.forget(func(id string) bool { return exists[id] || l.isActive(id) }); err != nil {
		l.cfg.Log.Warn("logs: save positions", "err", err)
	}
}

func (l *Logs) isActive(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.active[id]
}

func (l *Logs) ensure(ctx context.Context, id, name, stack string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.active[id] || ctx.Err() != nil {
		return
	}
	l.active[id] = true
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer func() {
			l.mu.Lock()
			delete(l.active, id)
			l.mu.Unlock()
		}()
		if err := l.follow(ctx, id, name, stack); err != nil && ctx.Err() == nil {
			l.cfg.Log.Warn("logs: follow", "container", name, "err", err)
		}
	}()
}

// batch is the lines read and not yet stored.
type batch struct {
	from, to events.LogPosition
	lines    []events.LogLine
	bytes    int
}

// follow streams one container's log into the outbox until the container
// stops (nil) or ctx ends.
func (l *Logs) follow(ctx context.Context, id, name, stack string) error {
	mark := l.pos.get(id)
	r, err := l.docker.Logs(ctx, id, docker.LogOptions{Follow: true, Since: mark.Committed.Time})
	if err != nil {
		return err
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lines := make(chan events.LogLine, 256)
	readErr := make(chan error, 1)
	go func() {
		defer close(lines)
		for {
			line, err := r.Next()
			if err != nil {
				readErr <- err
				return
			}
			select {
			case lines <- line:
			case <-fctx.Done():
				readErr <- fctx.Err()
				return
			}
		}
	}()
	go func() {
		<-fctx.Done()
		r.Close()
	}()

	cur := events.LogPosition{Time: mark.Committed.Time}
	b := &batch{from: mark.Committed, to: mark.Committed}
	target := mark.Pending // a batch to re-form exactly, after a crash
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	flush := func() error {
		timer.Stop()
		if len(b.lines) == 0 {
			return nil
		}
		if err := l.store(ctx, id, name, stack, b); err != nil {
			return err
		}
		target = nil
		*b = batch{from: b.to, to: b.to}
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
			if target == nil {
				if err := flush(); err != nil {
					return err
				}
			}
		case line, ok := <-lines:
			if !ok {
				if err := <-readErr; !errors.Is(err, io.EOF) && ctx.Err() == nil {
					l.cfg.Log.Warn("logs: stream broke; resuming later", "container", name, "err", err)
				}
				if target != nil && len(b.lines) > 0 && !samePos(b.to, *target) {
					l.cfg.Log.Warn("logs: log ended before the batch being re-sent; its lines may arrive twice",
						"container", name, "want", *target, "got", b.to)
				}
				return flush()
			}
			cur = advance(cur, line)
			if line.Time.IsZero() {
				line.Time = cur.Time // as advance counted it, so readers count alike
			}
			if !after(cur, mark.Committed) {
				continue // stored before the restart
			}
			if len(b.lines) == 0 && target == nil {
				timer.Reset(l.cfg.FlushInterval)
			}
			b.lines = append(b.lines, line)
			b.bytes += len(line.Text) + 48
			b.to = cur
			switch {
			case target != nil && !after(*target, cur):
				if !samePos(cur, *target) {
					l.cfg.Log.Warn("logs: re-read passed the batch being re-sent", "container", name)
				}
				err = flush()
			case target == nil && (len(b.lines) >= l.cfg.MaxLines || b.bytes >= l.cfg.MaxBytes):
				err = flush()
			}
			if err != nil {
				return err
			}
		}
	}
}

// store records the intent, stores the batch in the outbox (retrying
// until it is stored or ctx ends) and commits its end.
func (l *Logs) store(ctx context.Context, id, name, stack string, b *batch) error {
	msg := events.AgentLogBatch{V: events.TelemetryVersion, Container: id, Name: name, Stack: stack,
		From: b.from, To: b.to, Lines: b.lines}
	data, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	if err := l.pos.intend(id, name, b.from, b.to); err != nil {
		return err
	}
	m := outbox.Message{Subject: l.cfg.Subject, ID: BatchID(l.cfg.Subject, id, b.from, b.to), Data: data}
	backoff := 100 * time.Millisecond
	for {
		err := l.out.Publish(ctx, m)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil // the intent stays; the next run re-sends this batch
		}
		l.cfg.Log.Warn("logs: outbox refused a batch; retrying", "container", name, "err", err)
		sleepCtx(ctx, backoff)
		backoff = min(2*backoff, 10*time.Second)
	}
	return l.pos.commit(id, name, b.to)
}

// BatchID is the Nats-Msg-Id of a log batch: a digest of the subject (so
// of the org and agent), the container and the batch's two positions.
// The same lines always get the same id.
func BatchID(subject, container string, from, to events.LogPosition) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%d/%d/%d\n%d/%d/%d", subject, container,
		from.Time.UnixNano(), from.Stdout, from.Stderr, to.Time.UnixNano(), to.Stdout, to.Stderr)
	return "logs-" + hex.EncodeToString(h.Sum(nil)[:16])
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
