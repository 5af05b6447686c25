package chain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// Config tunes the chain writer. Zero fields take their defaults.
type Config struct {
	// CheckpointEvery: every entry whose index is a multiple of it gets a
	// signed checkpoint (default 1000).
	CheckpointEvery uint64
	// CheckpointInterval bounds how long an org's newest entries stay
	// without a checkpoint (default 60s): an org with entries no
	// checkpoint covers gets one of its last entry after that long.
	CheckpointInterval time.Duration
	// MaxInFlight bounds the appends published and not yet acknowledged
	// (default 1024): the depth of the pipeline.
	MaxInFlight int
	// MaxHeld bounds the source events held unacknowledged by this
	// process, queued or in flight (default 8192).
	MaxHeld int
	// AckWait is the source consumers' ack wait (default 30s). A source
	// event held longer than a third of it is treated as possibly
	// redelivered elsewhere (see Writer).
	AckWait time.Duration
	// MaxAckPending bounds unacknowledged events per source consumer,
	// across replicas (default 4096).
	MaxAckPending int
	// PullBatch is how many events one pull asks for (default 256).
	PullBatch int
	// PublishTimeout bounds the wait for one append's acknowledgement
	// (default 10s); its outcome is then unknown and the event is
	// retried as possibly stored.
	PublishTimeout time.Duration
	// DrainTimeout bounds how long Run keeps appending held events after
	// its context ends (default 10s); what is left is handed back.
	DrainTimeout time.Duration
	// Sources are the streams chained (default DefaultSources()).
	Sources []Source
}

// Source is one stream the writer chains events from, through a durable
// consumer of its own.
type Source struct {
	// Durable is the consumer's name; renaming it re-reads the stream
	// (the chain stays correct: re-read events are recognised, but it
	// costs a lookup per event).
	Durable string
	Stream  string
	Filter  string
}

// DefaultSources are the domain-event streams of every service: one
// durable consumer "audit_chain_<service>" each. The audit service's own
// events (configuration, retention, keys) are chained too; its chains and
// checkpoints are on other subjects of the same stream and never are.
func DefaultSources() []Source {
	out := make([]Source, 0, len(events.Services))
	for _, svc := range events.Services {
		out = append(out, Source{Durable: "audit_chain_" + svc, Stream: events.DomainStream(svc), Filter: events.DomainEvents(svc)})
	}
	return out
}

func (c *Config) setDefaults() {
	if c.CheckpointEvery == 0 {
		c.CheckpointEvery = 1000
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = time.Minute
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 1024
	}
	if c.MaxHeld == 0 {
		c.MaxHeld = 8192
	}
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = 4096
	}
	if c.PullBatch == 0 {
		c.PullBatch = 256
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = 10 * time.Second
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 10 * time.Second
	}
	if c.Sources == nil {
		c.Sources = DefaultSources()
	}
}

// Validate reports a configuration the writer cannot run with.
func (c Config) Validate() error {
	switch {
	case c.CheckpointInterval < time.Second:
		return fmt.Errorf("audit chain: checkpoint interval %s is below 1s", c.CheckpointInterval)
	case c.MaxInFlight < 1 || c.MaxHeld < c.MaxInFlight:
		return fmt.Errorf("audit chain: MaxInFlight %d / MaxHeld %d: want 1 <= MaxInFlight <= MaxHeld", c.MaxInFlight, c.MaxHeld)
	case c.AckWait < time.Second:
		return fmt.Errorf("audit chain: AckWait %s is below 1s", c.AckWait)
	case c.MaxAckPending < 1 || c.PullBatch < 1:
		return errors.New("audit chain: MaxAckPending and PullBatch must be positive")
	case c.PublishTimeout <= 0 || c.DrainTimeout <= 0:
		return errors.New("audit chain: PublishTimeout and DrainTimeout must be positive")
	case len(c.Sources) == 0:
		return errors.New("audit chain: no sources")
	}
	for _, s := range c.Sources {
		if !events.ValidToken(s.Durable) || !events.ValidToken(s.Stream) || s.Filter == "" {
			return fmt.Errorf("audit chain: invalid source %+v", s)
		}
	}
	return nil
}

// Signer signs checkpoints.
type Signer interface {
	Sign(cp *events.SignedCheckpoint) error
}

// Deps are the writer's collaborators.
type Deps struct {
	NC      *nats.Conn
	Log     *slog.Logger
	Metrics prometheus.Registerer
	Now     func() time.Time
	Signer  Signer
	// Seen reports whether an event is already in org's chain, for an
	// event that may have been chained beyond the stream's duplicate
	// window (the Postgres projection's unique event id answers it).
	Seen func(ctx context.Context, org, eventID string) (bool, error)
}

func (d *Deps) validate() error {
	if d.NC == nil || d.Signer == nil || d.Seen == nil {
		return errors.New("audit chain: NC, Signer and Seen are required")
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return nil
}
