package collect

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/infrapilot/infrapilot/agent/internal/docker"
	"github.com/infrapilot/infrapilot/agent/internal/outbox"
	"github.com/infrapilot/infrapilot/agent/internal/state"
	"github.com/infrapilot/infrapilot/events"
)

// EventsConfig configures the Docker event collector.
type EventsConfig struct {
	// Subject is events.AgentEvents(org, agent).
	Subject string
	Log     *slog.Logger
	Now     func() time.Time
}

// Events stores the engine's container events (start, die, oom,
// restart) in the outbox as AgentDockerEvent messages. Its cursor (the
// time of the last event stored) is kept in the state directory: after a
// restart, or a lost connection to the engine, it asks the engine for the
// events since then. The engine's "since" has whole seconds, so events of
// that second come again; their ids (container, action, time) make the
// copies disappear in the outbox or at the hub.
type Events struct {
	cfg    EventsConfig
	docker *docker.Client
	out    Publisher
	dir    state.Dir
	cursor eventsCursor
}

type eventsCursor struct {
	Since time.Time `json:"since"`
}

// NewEvents prepares the collector; it reads its cursor and starts
// nothing.
func NewEvents(cfg EventsConfig, dc *docker.Client, out Publisher, dir state.Dir) (*Events, error) {
	if cfg.Subject == "" {
		return nil, errors.New("collect: events: no subject")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	e := &Events{cfg: cfg, docker: dc, out: out, dir: dir}
	err := dir.ReadJSON(state.EventsFile, &e.cursor)
	if errors.Is(err, fs.ErrNotExist) {
		e.cursor.Since = cfg.Now().UTC()
		err = dir.WriteJSON(state.EventsFile, e.cursor)
	}
	if err != nil {
		return nil, err
	}
	return e, nil
}

// Run stores events until ctx ends, re-subscribing with backoff when the
// engine's stream ends.
func (e *Events) Run(ctx context.Context) error {
	backoff := 500 * time.Millisecond
	for ctx.Err() == nil {
		evs, errs := e.docker.Events(ctx, e.cursor.Since)
		got := false
		for ev := range evs {
			got = true
			if err := e.store(ctx, ev); err != nil {
				return nil // ctx ended; the cursor was not advanced
			}
		}
		if err := <-errs; err != nil && ctx.Err() == nil {
			e.cfg.Log.Warn("events: docker events ended", "err", err)
		}
		if got {
			backoff = 500 * time.Millisecond
		}
		sleepCtx(ctx, backoff)
		backoff = min(2*backoff, 30*time.Second)
	}
	return nil
}

func (e *Events) store(ctx context.Context, ev events.AgentDockerEvent) error {
	data, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	m := outbox.Message{Subject: e.cfg.Subject, ID: EventID(e.cfg.Subject, ev), Data: data}
	backoff := 100 * time.Millisecond
	for {
		err := e.out.Publish(ctx, m)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		e.cfg.Log.Warn("events: outbox refused an event; retrying", "err", err)
		sleepCtx(ctx, backoff)
		backoff = min(2*backoff, 10*time.Second)
	}
	if ev.Time.After(e.cursor.Since) {
		e.cursor.Since = ev.Time
		if err := e.dir.WriteJSON(state.EventsFile, e.cursor); err != nil {
			e.cfg.Log.Warn("events: save cursor", "err", err)
		}
	}
	return nil
}

// EventID is the Nats-Msg-Id of a container event.
func EventID(subject string, ev events.AgentDockerEvent) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n%d", subject, ev.Container, ev.Action, ev.Time.UnixNano())
	return "event-" + hex.EncodeToString(h.Sum(nil)[:16])
}
