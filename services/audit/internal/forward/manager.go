package forward

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/infrapilot/infrapilot/events"
	"github.com/nats-io/nats.go/jetstream"
)

// Manager runs the forwarders of every org's destinations and applies
// configuration changes to them. Every replica of the audit service runs
// one with the same configuration; replicas share each destination's
// durable consumer, and only one of them holds a batch at a time.
type Manager struct {
	js  jetstream.JetStream
	cfg Config
	log *slog.Logger

	applyMu sync.Mutex // one Apply at a time
	mu      sync.Mutex
	ctx     context.Context // Run's; nil before Run
	wg      sync.WaitGroup
	desired map[string]Destination // key org/id
	running map[string]*running
}

type running struct {
	d      Destination
	f      *Forwarder
	cancel context.CancelFunc
	done   chan struct{}
}

// NewManager returns a manager running nothing until Run.
func NewManager(js jetstream.JetStream, cfg Config, log *slog.Logger) *Manager {
	cfg.setDefaults()
	if log == nil {
		log = slog.Default()
	}
	return &Manager{js: js, cfg: cfg, log: log, desired: map[string]Destination{}, running: map[string]*running{}}
}

func dkey(org, id string) string { return org + "/" + id }

// Run starts the forwarders applied so far (and later ones as they are
// applied) and stops them all when ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	m.ctx = ctx
	for k, d := range m.desired {
		m.startLocked(k, d)
	}
	m.mu.Unlock()
	<-ctx.Done()
	m.mu.Lock()
	for _, r := range m.running {
		r.cancel()
	}
	m.mu.Unlock()
	m.wg.Wait()
	return nil
}

// Apply makes dests the destinations of org: new ones start, changed
// ones restart (keeping their consumer's position), and those no longer
// listed stop and have their durable consumer deleted, so a destination
// added again later starts afresh. Every destination is validated first;
// an invalid one fails the whole call and changes nothing.
func (m *Manager) Apply(ctx context.Context, org string, dests []Destination) error {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	seen := map[string]bool{}
	for _, d := range dests {
		if d.OrgID != org {
			return events.Invalid("destination %s belongs to another org", d.ID)
		}
		if err := d.Validate(m.cfg); err != nil {
			return err
		}
		if seen[d.ID] {
			return events.Invalid("destination %s is listed twice", d.ID)
		}
		seen[d.ID] = true
	}
	m.mu.Lock()
	var removed []*running
	var removedIDs []string
	for k, d := range m.desired {
		if d.OrgID == org && !seen[d.ID] {
			delete(m.desired, k)
			removedIDs = append(removedIDs, d.ID)
			if r := m.running[k]; r != nil {
				r.cancel()
				removed = append(removed, r)
				delete(m.running, k)
			}
		}
	}
	for _, d := range dests {
		k := dkey(org, d.ID)
		m.desired[k] = d
		r := m.running[k]
		if r != nil && reflect.DeepEqual(r.d, d) {
			continue
		}
		if r != nil {
			r.cancel()
			m.mu.Unlock()
			<-r.done // the old one must let go of its batch first
			m.mu.Lock()
			delete(m.running, k)
		}
		if m.ctx != nil {
			m.startLocked(k, d)
		}
	}
	m.mu.Unlock()
	var errs []error
	for _, r := range removed {
		<-r.done
	}
	for _, id := range removedIDs {
		err := m.js.DeleteConsumer(ctx, events.StreamAudit, ConsumerName(org, id))
		if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) startLocked(k string, d Destination) {
	f, err := NewForwarder(m.js, d, m.cfg, m.log)
	if err != nil { // validated in Apply; only a config bug gets here
		m.log.Error("forward: cannot start destination", "org_id", d.OrgID, "destination", d.ID, "err", err)
		return
	}
	ctx, cancel := context.WithCancel(m.ctx)
	r := &running{d: d, f: f, cancel: cancel, done: make(chan struct{})}
	m.running[k] = r
	m.wg.Go(func() {
		defer close(r.done)
		if err := f.Run(ctx); err != nil {
			m.log.Warn("forward: destination stopped", "org_id", d.OrgID, "destination", d.ID, "err", err)
		}
	})
}

// Status returns the status of org's destinations, ordered by id. A
// destination applied before Run shows as not running.
func (m *Manager) Status(ctx context.Context, org string) []Status {
	m.mu.Lock()
	var fs []*Forwarder
	var idle []Status
	for k, d := range m.desired {
		if d.OrgID != org {
			continue
		}
		if r := m.running[k]; r != nil {
			fs = append(fs, r.f)
		} else {
			idle = append(idle, Status{DestinationID: d.ID, OrgID: d.OrgID, Kind: d.Kind})
		}
	}
	m.mu.Unlock()
	out := idle
	for _, f := range fs {
		out = append(out, f.Status(ctx))
	}
	slices.SortFunc(out, func(a, b Status) int { return strings.Compare(a.DestinationID, b.DestinationID) })
	return out
}
