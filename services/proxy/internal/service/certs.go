package service

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
)

// certClaim is a certificate request this replica recorded and so must
// send: recording a ProxyCertRequested at the host's version is the claim,
// and of two replicas deciding on the same version only one can append it.
type certClaim struct {
	org, host, agent string
	domains          []string
	attempt          int
}

// certBatch bounds one scan of the certificate worker.
const certBatch = 100

// certWorker obtains certificates through the agents, one at a time. It
// wakes every CertInterval (and at once for a request through the API),
// claims what is due (see domain.Host.CertDue), sends each claim to the
// agent with OpAgentCertIssue and records the outcome: issued (the agent
// is then rendered with the TLS server) or failed with the agent's reason
// and the time of the next attempt. A claim whose replica died is taken
// over by another once its lease has passed.
type certWorker struct {
	s    *Service
	wake chan struct{}

	mu       sync.Mutex
	queue    []certClaim
	inflight map[string]bool
}

func newCertWorker(s *Service) *certWorker {
	return &certWorker{s: s, wake: make(chan struct{}, 1), inflight: map[string]bool{}}
}

// enqueue hands the worker a claim recorded by this replica.
func (w *certWorker) enqueue(c certClaim) {
	w.mu.Lock()
	w.queue = append(w.queue, c)
	w.inflight[c.org+"/"+c.host] = true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *certWorker) run(ctx context.Context) {
	t := time.NewTicker(w.s.cfg.CertInterval)
	defer t.Stop()
	for {
		w.drain(ctx)
		w.scan(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.wake:
		}
	}
}

// drain sends the claims recorded by requests through the API.
func (w *certWorker) drain(ctx context.Context) {
	for ctx.Err() == nil {
		w.mu.Lock()
		if len(w.queue) == 0 {
			w.mu.Unlock()
			return
		}
		c := w.queue[0]
		w.queue = w.queue[1:]
		w.mu.Unlock()
		w.issue(ctx, c)
		w.done(c)
	}
}

func (w *certWorker) done(c certClaim) {
	w.mu.Lock()
	delete(w.inflight, c.org+"/"+c.host)
	w.mu.Unlock()
}

// scan claims the certificate work that is due and does it, one host at a
// time: a claim is sent as soon as it is made, so its lease does not run
// out while it waits behind others. Requests through the API go first.
func (w *certWorker) scan(ctx context.Context) {
	s := w.s
	now := s.now()
	refs, err := s.db.CertCandidates(ctx, now, now.Add(-s.cfg.Cert.Lease), certBatch)
	if err != nil {
		s.logErr(ctx, "certificate worker: scanning hosts", "err", err)
		return
	}
	for _, r := range refs {
		w.drain(ctx)
		if ctx.Err() != nil {
			return
		}
		w.mu.Lock()
		busy := w.inflight[r.OrgID+"/"+r.HostID]
		w.mu.Unlock()
		if busy {
			continue
		}
		h, err := s.loadHost(ctx, r.OrgID, r.HostID)
		if err != nil {
			s.logErr(ctx, "certificate worker: loading host", "org_id", r.OrgID, "host_id", r.HostID, "err", err)
			continue
		}
		ev := h.CertDue(s.now(), s.cfg.Cert)
		if ev == nil {
			continue
		}
		_, err = s.appendTo(ctx, r.OrgID, events.ProxyAggHost, h.ID, h.Ver, *ev)
		switch {
		case errors.Is(err, eventstore.ErrConflict):
			continue // another replica claimed it, or the host changed: next scan decides again
		case err != nil:
			s.logErr(ctx, "certificate worker: recording a request", "org_id", r.OrgID, "host_id", h.ID, "err", err)
			continue
		}
		w.issue(ctx, certClaim{org: r.OrgID, host: h.ID, agent: h.AgentID, domains: ev.Domains, attempt: ev.Attempt})
	}
}

// issue sends one claim to the agent and records the outcome.
func (w *certWorker) issue(ctx context.Context, c certClaim) {
	s := w.s
	a, _, err := s.db.GetAgent(ctx, c.org, c.agent)
	if err != nil {
		s.logErr(ctx, "certificate worker: reading agent settings", "org_id", c.org, "agent_id", c.agent, "err", err)
		return // the lease expires and the request is taken up again
	}
	req := events.CertIssueRequest{HostID: c.host, Domains: c.domains, Email: a.ACMEEmail, DirectoryURL: s.cfg.ACMEDirectoryURL}
	var got events.CertIssued
	callErr := s.callAgent(ctx, c.org, c.agent, events.OpAgentCertIssue, s.cfg.CertTimeout, req, &got)
	if ctx.Err() != nil {
		return // shutting down: the lease hands it to whoever runs next
	}
	reason := ""
	switch {
	case offline(callErr):
		reason = "the agent is not connected"
	case callErr != nil:
		// The agent's error reply carries the CA's reason.
		var e *events.Error
		if errors.As(callErr, &e) && e.Message != "" {
			reason = e.Message
		} else {
			reason = callErr.Error()
		}
	}
	var v uint64
	issued := false
	err = eventstore.RetryConflicts(func() error {
		h, err := s.loadHost(ctx, c.org, c.host)
		if err != nil {
			return err
		}
		if !h.Exists() || h.Cert.Status != events.CertStatusRequested {
			return nil // deleted, or another replica recorded an outcome
		}
		var ev events.Payload
		if reason == "" {
			ev, issued = h.CertIssued(got, c.domains, s.cfg.Cert), true
		} else {
			ev = h.CertFailed(c.domains, reason, c.attempt, s.now(), s.cfg.Cert)
		}
		v, err = s.appendTo(ctx, c.org, events.ProxyAggHost, c.host, h.Ver, ev)
		return err
	})
	if err != nil {
		s.logErr(ctx, "certificate worker: recording the outcome", "org_id", c.org, "host_id", c.host, "err", err)
		return
	}
	if reason != "" {
		s.log.Info("certificate request failed", "org_id", c.org, "host_id", c.host, "attempt", c.attempt, "reason", reason)
	}
	if v > 0 {
		s.await(ctx, c.org, events.ProxyAggHost, c.host, v)
	}
	if issued {
		_ = s.renderAndPush(ctx, c.org, c.agent)
	}
}

// logErr logs an error unless ctx ended (shutting down is not an error).
func (s *Service) logErr(ctx context.Context, msg string, args ...any) {
	if ctx.Err() == nil {
		s.log.Error(msg, args...)
	}
}
