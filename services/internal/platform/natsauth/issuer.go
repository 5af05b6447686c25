package natsauth

import (
	"context"
	"errors"
	"time"
)

// AgentIssuer issues agents' credentials with these keys and revokes them
// through a Revoker: what the tenancy service enrolls and deletes agents
// with.
type AgentIssuer struct {
	keys    *Keys
	revoker *Revoker
	url     string
	ttl     time.Duration
}

// NewAgentIssuer returns an issuer of agent credentials valid for ttl
// (MaxCredentialTTL when zero) that tells agents to dial leafURL.
func NewAgentIssuer(k *Keys, r *Revoker, leafURL string, ttl time.Duration) (*AgentIssuer, error) {
	if k == nil || r == nil || leafURL == "" {
		return nil, errors.New("natsauth: agent issuer needs keys, a revoker and the leafnode URL")
	}
	if ttl == 0 {
		ttl = MaxCredentialTTL
	}
	if err := checkTTL(ttl); err != nil {
		return nil, err
	}
	return &AgentIssuer{keys: k, revoker: r, url: leafURL, ttl: ttl}, nil
}

// Issue returns the .creds of agent in org and the user key that revokes
// them.
func (i *AgentIssuer) Issue(org, agent string) ([]byte, string, error) {
	return i.keys.AgentCreds(org, agent, i.ttl)
}

// Revoke revokes the credentials with user key and closes their
// connections.
func (i *AgentIssuer) Revoke(ctx context.Context, key string) error {
	return i.revoker.Revoke(ctx, key)
}

// URL is the leafnode URL agents dial.
func (i *AgentIssuer) URL() string { return i.url }
