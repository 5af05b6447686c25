package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/proxy/internal/domain"
	"github.com/infrapilot/infrapilot/services/proxy/internal/nginxconf"
	"github.com/nats-io/nats.go/jetstream"
)

// desiredDoc is what the service keeps in KV (events.BucketAgentDesired,
// events.AgentDesiredKey): the agent's desired state (a reader of the key
// decodes it as an events.NginxDesired) and, per host it carries, a mark
// saying which revision first carried the host's current rendering and
// which version of the host that rendering reflects. The marks let an
// apply result be credited only to the specification it actually carried,
// and they change atomically with the state because they are the same
// value. Agents never see them: they receive Desired().
type desiredDoc struct {
	events.NginxDesired
	Hosts map[string]hostMark `json:"hosts,omitempty"`
}

// hostMark is one host's entry in a desiredDoc.
type hostMark struct {
	// Since is the first revision that carried the host's current file.
	Since uint64 `json:"since"`
	// Version is the host's RenderVersion that file reflects.
	Version uint64 `json:"version"`
}

// Desired is the state as the agent receives it.
func (d *desiredDoc) Desired() events.NginxDesired { return d.NginxDesired }

func (d *desiredDoc) file(hostID string) (events.NginxFile, bool) {
	for _, f := range d.Files {
		if f.HostID == hostID {
			return f, true
		}
	}
	return events.NginxFile{}, false
}

// maxCAS bounds the compare-and-set retries of one render: each retry
// means another replica stored a newer state meanwhile.
const maxCAS = 10

func (s *Service) desiredKV(ctx context.Context) (jetstream.KeyValue, error) {
	s.kvMu.Lock()
	defer s.kvMu.Unlock()
	if s.kv != nil {
		return s.kv, nil
	}
	kv, err := s.js.KeyValue(ctx, events.BucketAgentDesired)
	if err != nil {
		return nil, &events.Error{Code: events.CodeUnavailable, Message: "the desired-state store is unavailable", Err: err}
	}
	s.kv = kv
	return kv, nil
}

// currentDoc returns the agent's stored desired state (nil when there is
// none yet) and its KV revision.
func (s *Service) currentDoc(ctx context.Context, org, agent string) (*desiredDoc, uint64, error) {
	kv, err := s.desiredKV(ctx)
	if err != nil {
		return nil, 0, err
	}
	e, err := kv.Get(ctx, events.AgentDesiredKey(org, agent))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, &events.Error{Code: events.CodeUnavailable, Message: "the desired-state store is unavailable", Err: err}
	}
	var d desiredDoc
	if err := json.Unmarshal(e.Value(), &d); err != nil {
		return nil, 0, fmt.Errorf("desired state of %s/%s is corrupt: %w", org, agent, err)
	}
	return &d, e.Revision(), nil
}

// renderAndPush renders the agent's desired state and, when it changed,
// pushes it to the agent in the background.
func (s *Service) renderAndPush(ctx context.Context, org, agent string) error {
	_, changed, err := s.render(ctx, org, agent)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		s.log.Error("rendering an agent's desired nginx state", "org_id", org, "agent_id", agent, "err", err)
		return err
	}
	if changed {
		s.push.push(org, agent)
	}
	return nil
}

// render computes the agent's desired state from the read model and, when
// it differs from the stored one, stores it as the next revision with a
// compare-and-set on the key's KV revision, so that two replicas
// rendering at once cannot both store revision N+1 (the loser renders
// again on the newer state). It returns the stored state and whether it
// changed.
func (s *Service) render(ctx context.Context, org, agent string) (*desiredDoc, bool, error) {
	defer s.locks.lock("render/" + org + "/" + agent)()
	kv, err := s.desiredKV(ctx)
	if err != nil {
		return nil, false, err
	}
	key := events.AgentDesiredKey(org, agent)
	for range maxCAS {
		prev, kvRev, err := s.currentDoc(ctx, org, agent)
		if err != nil {
			return nil, false, err
		}
		settings, _, err := s.db.GetAgent(ctx, org, agent)
		if err != nil {
			return nil, false, err
		}
		hosts, err := s.db.AgentHosts(ctx, org, agent)
		if err != nil {
			return nil, false, err
		}
		if prev != nil {
			// The revision is part of nginx.conf (the check server
			// answers it): compare at the stored revision.
			same, err := build(settings, hosts, prev.Revision, prev)
			if err != nil {
				return nil, false, err
			}
			if sameDoc(prev, same) {
				return prev, false, nil
			}
		}
		var rev uint64 = 1
		if prev != nil {
			rev = prev.Revision + 1
		}
		next, err := build(settings, hosts, rev, prev)
		if err != nil {
			return nil, false, err
		}
		data, err := json.Marshal(next)
		if err != nil {
			return nil, false, err
		}
		if prev == nil {
			_, err = kv.Create(ctx, key, data)
		} else {
			_, err = kv.Update(ctx, key, data, kvRev)
		}
		switch {
		case err == nil:
			return next, true, nil
		case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
			continue // another replica stored a state meanwhile
		default:
			return nil, false, &events.Error{Code: events.CodeUnavailable, Message: "the desired-state store is unavailable", Err: err}
		}
	}
	return nil, false, events.Errorf(events.CodeUnavailable, "the desired state of agent %s kept changing; retry", agent)
}

// build renders revision rev of an agent's desired state. Hosts whose
// file and version are those prev carried keep their mark; the others are
// marked as first carried by rev.
func build(settings *domain.Agent, hosts []*domain.Host, rev uint64, prev *desiredDoc) (*desiredDoc, error) {
	in := make([]nginxconf.Host, 0, len(hosts))
	for _, h := range hosts {
		in = append(in, nginxconf.Host{ID: h.ID, Spec: h.Spec, CertReady: h.Spec.SSL.Enabled && h.CertReady()})
	}
	d, err := nginxconf.Desired(nginxconf.LayoutFor(settings.Nginx), rev, settings.Mode, in)
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	if d.V == 0 {
		d.V = 1
	}
	doc := &desiredDoc{NginxDesired: d, Hosts: map[string]hostMark{}}
	for _, h := range hosts {
		f, ok := doc.file(h.ID)
		if !ok {
			continue // disabled, or external mode
		}
		m := hostMark{Since: rev, Version: h.RenderVersion}
		if prev != nil {
			if pm, ok := prev.Hosts[h.ID]; ok && pm.Version == h.RenderVersion {
				if pf, ok := prev.file(h.ID); ok && sameFile(pf, f) {
					m.Since = pm.Since
				}
			}
		}
		doc.Hosts[h.ID] = m
	}
	return doc, nil
}

func sameFile(a, b events.NginxFile) bool {
	if a.Path != b.Path || a.Content != b.Content || a.HostID != b.HostID || len(a.Requires) != len(b.Requires) {
		return false
	}
	for i := range a.Requires {
		if a.Requires[i] != b.Requires[i] {
			return false
		}
	}
	return true
}

// sameDoc reports whether two states at the same revision are the same.
func sameDoc(a, b *desiredDoc) bool {
	if a.V != b.V || a.Revision != b.Revision || a.Mode != b.Mode || a.CheckPort != b.CheckPort ||
		len(a.Files) != len(b.Files) || len(a.Hosts) != len(b.Hosts) {
		return false
	}
	for i := range a.Files {
		if !sameFile(a.Files[i], b.Files[i]) {
			return false
		}
	}
	for id, m := range a.Hosts {
		if b.Hosts[id] != m {
			return false
		}
	}
	return true
}
