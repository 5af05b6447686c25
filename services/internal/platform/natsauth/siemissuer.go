package natsauth

import (
	"context"
	"errors"
	"time"
)

// SIEMIssuer issues read-only SIEM credentials to orgs' audit chains with
// these keys and revokes them through a Revoker: what the audit service
// serves POST /audit/siem-credentials with. It creates no consumer: the
// caller creates access.ConsumerConfig() on stream AUDIT through its own
// (APP) JetStream before handing the credential out, and deletes it on
// revocation.
type SIEMIssuer struct {
	keys    *Keys
	revoker *Revoker
	url     string
}

// NewSIEMIssuer returns an issuer of SIEM credentials that tells SIEMs to
// connect to clientURL, the hub's client URL as SIEMs reach it (SIEM users
// may connect as normal clients only, never as leaf nodes).
func NewSIEMIssuer(k *Keys, r *Revoker, clientURL string) (*SIEMIssuer, error) {
	if k == nil || r == nil || clientURL == "" {
		return nil, errors.New("natsauth: SIEM issuer needs keys, a revoker and the client URL")
	}
	return &SIEMIssuer{keys: k, revoker: r, url: clientURL}, nil
}

// Issue returns a credential that reads org's audit chain for ttl (at most
// MaxCredentialTTL), with the name of the consumer to create for it and
// the user key that revokes it.
func (i *SIEMIssuer) Issue(org string, ttl time.Duration) (SIEMAccess, error) {
	return i.keys.SIEMCreds(org, ttl)
}

// Revoke revokes the credential with user key and closes its connections.
func (i *SIEMIssuer) Revoke(ctx context.Context, key string) error {
	return i.revoker.Revoke(ctx, key)
}

// URL is the client URL SIEMs connect to.
func (i *SIEMIssuer) URL() string { return i.url }
