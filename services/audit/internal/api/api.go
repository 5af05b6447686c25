// Package api serves the audit service's core operations on NATS
// request-reply: list, verify, checkpoints, public key, configuration.
// Handlers take the org and the caller's role from the request context
// (the gateway's headers), never from the body, and check the role against
// the permission matrix as the gateway does.
package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/audit/internal/authz"
	"github.com/infrapilot/infrapilot/services/audit/internal/keys"
	"github.com/infrapilot/infrapilot/services/audit/internal/store"
	"github.com/infrapilot/infrapilot/services/audit/internal/verify"
	"github.com/infrapilot/infrapilot/services/internal/platform/endpoint"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
	"github.com/infrapilot/infrapilot/services/internal/platform/reqctx"
)

// Deps are what the handlers use.
type Deps struct {
	Store    *store.Store
	Verifier *verify.Verifier
	Keys     *keys.Ring
	Events   *eventstore.Store
	// Forwarding plans and shows the SIEM destinations of the
	// configuration.
	Forwarding Forwarding
	// Retention returns the last pruning of an org's projections (nil
	// when none); ClickHouse says whether the analytics projection runs.
	Retention  func(ctx context.Context, org string) (*events.AuditRetentionStatus, error)
	ClickHouse func() string
	// ConfigWait bounds how long a configuration change waits for the
	// projection to show it (read-your-writes); default 5s.
	ConfigWait time.Duration
}

// Forwarding is the configuration's view of the SIEM destinations
// (package forwarding).
type Forwarding interface {
	// Plan validates the requested destinations against the current
	// ones, stores the secrets they bring, and returns the new list and
	// whether it changed.
	Plan(ctx context.Context, org string, reqs []events.AuditDestinationRequest, current []events.AuditForwardDestination) ([]events.AuditForwardDestination, bool, error)
	// View returns the destinations as projected (no secrets, with
	// status) and the stream sequence they were projected from.
	View(ctx context.Context, org string) ([]events.AuditDestination, uint64, error)
}

// Register adds the operations to s.
func Register(s *endpoint.Server, d Deps) {
	if d.ConfigWait <= 0 {
		d.ConfigWait = 5 * time.Second
	}
	h := handlers{d}
	endpoint.Handle(s, events.OpAuditList, h.list)
	endpoint.Handle(s, events.OpAuditVerify, h.verify)
	endpoint.Handle(s, events.OpAuditCheckpoints, h.checkpoints)
	endpoint.Handle(s, events.OpAuditPublicKey, h.publicKey)
	endpoint.Handle(s, events.OpAuditGetConfig, h.getConfig)
	endpoint.Handle(s, events.OpAuditPutConfig, h.putConfig)
}

type handlers struct{ Deps }

// orgFor returns the request's org after checking the caller's role.
func orgFor(ctx context.Context, p events.Permission) (string, error) { return authz.Org(ctx, p) }

func (h handlers) list(ctx context.Context, req events.AuditListRequest) (events.List[events.AuditEntry], error) {
	org, err := orgFor(ctx, events.PermAuditRead)
	if err != nil {
		return events.List[events.AuditEntry]{}, err
	}
	f, err := filter(req)
	if err != nil {
		return events.List[events.AuditEntry]{}, err
	}
	return h.Store.List(ctx, org, f, req.Cursor, req.Limit)
}

// filter validates a list request.
func filter(req events.AuditListRequest) (store.Filter, error) {
	var fields []events.FieldError
	bad := func(field, msg string) { fields = append(fields, events.FieldError{Field: field, Message: msg}) }
	f := store.Filter{Action: req.Action, ResourceType: req.ResourceType, Actor: req.Actor}
	for name, v := range map[string]string{"action": req.Action, "resource_type": req.ResourceType, "actor": req.Actor} {
		if len(v) > 200 {
			bad(name, "at most 200 characters")
		}
	}
	var err error
	if req.From != "" {
		if f.From, err = time.Parse(time.RFC3339Nano, req.From); err != nil {
			bad("from", "want an RFC 3339 time")
		}
	}
	if req.To != "" {
		if f.To, err = time.Parse(time.RFC3339Nano, req.To); err != nil {
			bad("to", "want an RFC 3339 time")
		}
	}
	if req.Limit < 0 || req.Limit > events.AuditListMaxLimit {
		bad("limit", fmt.Sprintf("between 1 and %d", events.AuditListMaxLimit))
	}
	if len(fields) > 0 {
		slices.SortFunc(fields, func(a, b events.FieldError) int { return cmp.Compare(a.Field, b.Field) })
		return store.Filter{}, events.Invalid("invalid audit filter").WithFields(fields...)
	}
	return f, nil
}

func (h handlers) verify(ctx context.Context, req events.AuditVerifyRequest) (events.AuditVerifyReply, error) {
	org, err := orgFor(ctx, events.PermAuditRead)
	if err != nil {
		return events.AuditVerifyReply{}, err
	}
	return h.Verifier.Verify(ctx, org, req)
}

func (h handlers) checkpoints(ctx context.Context, req events.AuditPageRequest) (events.List[events.SignedCheckpoint], error) {
	org, err := orgFor(ctx, events.PermAuditRead)
	if err != nil {
		return events.List[events.SignedCheckpoint]{}, err
	}
	if req.Limit < 0 || req.Limit > events.AuditListMaxLimit {
		return events.List[events.SignedCheckpoint]{}, events.Invalid("invalid limit").WithFields(
			events.FieldError{Field: "limit", Message: fmt.Sprintf("between 1 and %d", events.AuditListMaxLimit)})
	}
	return h.Store.Checkpoints(ctx, org, req.Cursor, req.Limit)
}

func (h handlers) publicKey(ctx context.Context, _ events.Empty) (events.AuditPublicKeys, error) {
	if _, err := orgFor(ctx, events.PermAuditRead); err != nil {
		return events.AuditPublicKeys{}, err
	}
	return h.Keys.Keys(), nil
}

func (h handlers) getConfig(ctx context.Context, _ events.Empty) (events.AuditConfig, error) {
	org, err := orgFor(ctx, events.PermAuditRead)
	if err != nil {
		return events.AuditConfig{}, err
	}
	c, _, err := h.Store.Config(ctx, org)
	if err != nil {
		return events.AuditConfig{}, err
	}
	return h.decorate(ctx, org, c)
}

// decorate adds the forwarding destinations and the status fields to a
// configuration.
func (h handlers) decorate(ctx context.Context, org string, c events.AuditConfig) (events.AuditConfig, error) {
	c.Forwarding = []events.AuditDestination{}
	if h.Forwarding != nil {
		ds, _, err := h.Forwarding.View(ctx, org)
		if err != nil {
			return events.AuditConfig{}, err
		}
		c.Forwarding = ds
	}
	if h.Retention != nil {
		r, err := h.Retention(ctx, org)
		if err != nil {
			return events.AuditConfig{}, err
		}
		c.Retention = r
	}
	if h.ClickHouse != nil {
		c.ClickHouse = h.ClickHouse()
	}
	return c, nil
}

// ValidateConfig checks a configuration request and returns the event it
// amounts to.
func ValidateConfig(req events.AuditConfigRequest) (events.AuditConfigUpdated, error) {
	var fields []events.FieldError
	switch {
	case req.RetentionDays == nil:
		fields = append(fields, events.FieldError{Field: "retention_days", Message: "required: 30, 90, 180, 365 or 0 (unlimited)"})
	case !slices.Contains(events.RetentionDays, *req.RetentionDays):
		fields = append(fields, events.FieldError{Field: "retention_days", Message: "one of 30, 90, 180, 365 or 0 (unlimited)"})
	}
	switch req.RetentionPolicy {
	case events.RetentionDelete, events.RetentionArchive:
		if req.ComplianceMode && req.RetentionPolicy == events.RetentionDelete {
			fields = append(fields, events.FieldError{Field: "retention_policy", Message: "compliance mode requires archive: nothing is pruned without a verifiable export"})
		}
	default:
		fields = append(fields, events.FieldError{Field: "retention_policy", Message: "delete or archive"})
	}
	if len(fields) > 0 {
		return events.AuditConfigUpdated{}, events.Invalid("invalid audit configuration").WithFields(fields...)
	}
	return events.AuditConfigUpdated{RetentionDays: *req.RetentionDays, RetentionPolicy: req.RetentionPolicy, ComplianceMode: req.ComplianceMode}, nil
}

func (h handlers) putConfig(ctx context.Context, req events.AuditConfigRequest) (events.AuditConfig, error) {
	org, err := orgFor(ctx, events.PermAuditManage)
	if err != nil {
		return events.AuditConfig{}, err
	}
	want, err := ValidateConfig(req)
	if err != nil {
		return events.AuditConfig{}, err
	}
	if req.Forwarding != nil && h.Forwarding == nil {
		return events.AuditConfig{}, events.Invalid("SIEM forwarding is not available")
	}
	ref := eventstore.Ref{OrgID: org, Type: events.AuditAggConfig, ID: org}
	for range 3 {
		evs, version, err := h.Events.Load(ctx, ref)
		if err != nil {
			return events.AuditConfig{}, err
		}
		cfg, fwd, cfgAt, fwdAt := current(evs)
		var payloads []events.Payload
		if len(evs) == 0 || cfg != want {
			payloads = append(payloads, want)
		}
		if req.Forwarding != nil {
			dests, changed, err := h.Forwarding.Plan(ctx, org, *req.Forwarding, fwd.Destinations)
			if err != nil {
				return events.AuditConfig{}, err
			}
			if changed {
				payloads = append(payloads, events.AuditForwardingUpdated{Destinations: dests})
			}
		}
		if len(payloads) == 0 {
			return h.waitConfig(ctx, org, cfgAt, fwdAt)
		}
		// One event at a time, so that each projection can be waited for
		// at the sequence of its own event.
		conflict := false
		for _, p := range payloads {
			env, err := events.New(p, events.Aggregate{Type: ref.Type, ID: ref.ID}, reqctx.Meta(ctx))
			if err != nil {
				return events.AuditConfig{}, err
			}
			version, err = h.Events.Append(ctx, ref, version, env)
			if errors.Is(err, eventstore.ErrConflict) {
				conflict = true
				break
			}
			if err != nil {
				return events.AuditConfig{}, err
			}
			if _, ok := p.(events.AuditConfigUpdated); ok {
				cfgAt = version
			} else {
				fwdAt = version
			}
		}
		if conflict {
			continue
		}
		return h.waitConfig(ctx, org, cfgAt, fwdAt)
	}
	return events.AuditConfig{}, events.Errorf(events.CodeConflict, "the audit configuration is being changed concurrently; try again")
}

// current is the configuration and the destinations the events of the
// configuration aggregate set, and the stream sequences of the events that
// set them.
func current(evs []events.Envelope) (c events.AuditConfigUpdated, f events.AuditForwardingUpdated, cfgAt, fwdAt uint64) {
	for _, env := range evs {
		p, err := events.Catalogue.Decode(env)
		if err != nil {
			continue
		}
		switch p := p.(type) {
		case *events.AuditConfigUpdated:
			c, cfgAt = *p, env.Sequence
		case *events.AuditForwardingUpdated:
			f, fwdAt = *p, env.Sequence
		}
	}
	return c, f, cfgAt, fwdAt
}

// waitConfig waits, bounded, until the projections show the
// configuration at cfgAt and the destinations at fwdAt (or later), and
// returns them.
func (h handlers) waitConfig(ctx context.Context, org string, cfgAt, fwdAt uint64) (events.AuditConfig, error) {
	ctx, cancel := context.WithTimeout(ctx, h.ConfigWait)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		c, seq, err := h.Store.Config(ctx, org)
		if err == nil && seq >= cfgAt {
			fwdSeq := fwdAt
			if h.Forwarding != nil {
				_, fwdSeq, err = h.Forwarding.View(ctx, org)
			}
			if err == nil && fwdSeq >= fwdAt {
				return h.decorate(ctx, org, c)
			}
		}
		select {
		case <-ctx.Done():
			return events.AuditConfig{}, events.Errorf(events.CodeUnavailable, "the configuration was saved but is not visible yet; read it again shortly")
		case <-tick.C:
		}
	}
}
