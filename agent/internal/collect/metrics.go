package collect

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/infrapilot/infrapilot/agent/internal/docker"
	"github.com/infrapilot/infrapilot/agent/internal/outbox"
	"github.com/infrapilot/infrapilot/events"
)

// MetricsConfig configures the metrics collector.
type MetricsConfig struct {
	// Subject is events.AgentMetrics(org, agent).
	Subject string
	// Interval between samples (default 10 s).
	Interval time.Duration
	Log      *slog.Logger
	Now      func() time.Time
}

// Metrics samples the host and every running container each Interval
// and stores one AgentMetricsMessage per sample in the outbox. A sample
// the outbox refuses (it is full) is dropped: samples are periodic, logs
// and events are what must not be lost.
type Metrics struct {
	cfg    MetricsConfig
	docker *docker.Client
	out    Publisher

	host hostSampler
	prev map[string]docker.Stats
}

// NewMetrics prepares the collector; it starts nothing.
func NewMetrics(cfg MetricsConfig, dc *docker.Client, out Publisher) (*Metrics, error) {
	if cfg.Subject == "" {
		return nil, errors.New("collect: metrics: no subject")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Metrics{cfg: cfg, docker: dc, out: out, prev: map[string]docker.Stats{}}, nil
}

// Run samples now and every Interval until ctx ends.
func (m *Metrics) Run(ctx context.Context) error {
	tick := time.NewTicker(m.cfg.Interval)
	defer tick.Stop()
	for {
		msg := m.Sample(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err := m.publish(ctx, msg); err != nil && ctx.Err() == nil {
			m.cfg.Log.Warn("metrics: sample dropped", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (m *Metrics) publish(ctx context.Context, msg events.AgentMetricsMessage) error {
	data, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	h := sha256.Sum256(fmt.Appendf(nil, "%s\n%d", m.cfg.Subject, msg.Time.UnixNano()))
	return m.out.Publish(ctx, outbox.Message{Subject: m.cfg.Subject, ID: "metrics-" + hex.EncodeToString(h[:16]), Data: data})
}

// Sample takes one sample. CPU figures are relative to the previous
// sample, so the first one has none. It is not safe for concurrent use.
func (m *Metrics) Sample(ctx context.Context) events.AgentMetricsMessage {
	// A sample must not outlive its interval: an engine that hangs would
	// otherwise stop the host metrics too.
	ctx, cancel := context.WithTimeout(ctx, max(m.cfg.Interval, 5*time.Second))
	defer cancel()
	now := m.cfg.Now().UTC()
	msg := events.AgentMetricsMessage{V: events.TelemetryVersion, Time: now, Host: m.host.sample(ctx, now),
		Containers: []events.ContainerStats{}}
	list, err := m.docker.Containers(ctx, false)
	if err != nil {
		if ctx.Err() == nil {
			m.cfg.Log.Warn("metrics: list containers", "err", err)
		}
		return msg
	}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		sem  = make(chan struct{}, 4)
		next = map[string]docker.Stats{}
	)
	for _, c := range list {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s, err := m.docker.Stats(ctx, c.ID)
			if err != nil {
				return // stopped since the list, most likely
			}
			if s.Name == "" {
				s.Name = c.Name
			}
			mu.Lock()
			defer mu.Unlock()
			if prev, ok := m.prev[c.ID]; ok {
				s.CPUPercent = docker.CPUPercent(prev, s)
			}
			next[c.ID] = s
			msg.Containers = append(msg.Containers, s.ContainerStats)
		}()
	}
	wg.Wait()
	m.prev = next
	sort.Slice(msg.Containers, func(i, j int) bool { return msg.Containers[i].Name < msg.Containers[j].Name })
	return msg
}
