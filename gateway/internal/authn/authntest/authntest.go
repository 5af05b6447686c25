// Package authntest provides test doubles for the gateway's authentication:
// an Ed25519 access-token issuer, and STAND-INS for the identity operations
// of the auth service (jwks, apikey_verify) and the tenancy service
// (membership, default_org).
//
// The stand-ins exist because the real services are built in parallel
// with the gateway; they answer over real NATS exactly as the contract in
// events/api_identity.go says the real ones must, and count their calls so
// tests can bound the gateway's traffic. End-to-end tests run the gateway
// against the real services. Only test files import this package.
package authntest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway/internal/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// Issuer signs access tokens the way the auth service does: EdDSA, with a
// kid header.
type Issuer struct {
	Kid string
	Key ed25519.PrivateKey
}

// NewIssuer makes an issuer with a fresh key.
func NewIssuer(t testing.TB, kid string) *Issuer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &Issuer{Kid: kid, Key: priv}
}

// Public is the issuer's public key.
func (i *Issuer) Public() ed25519.PublicKey { return i.Key.Public().(ed25519.PublicKey) }

// JWK is the issuer's public key as the auth service publishes it.
func (i *Issuer) JWK() events.JWK {
	return events.JWK{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(i.Public()),
		Kid: i.Kid, Alg: events.JWTAlgorithm, Use: "sig"}
}

// Claims are valid access-token claims for user sub issued at now, with a
// 15-minute lifetime.
func Claims(sub string, now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss": events.JWTIssuer, "aud": events.JWTAudience, "sub": sub,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(15 * time.Minute).Unix(),
		"jti": "jti-" + sub, "sid": "session-" + sub,
	}
}

// Sign signs claims with the issuer's key and kid.
func (i *Issuer) Sign(t testing.TB, claims jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	tok.Header["kid"] = i.Kid
	s, err := tok.SignedString(i.Key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Token is a valid access token for user sub issued at now.
func (i *Issuer) Token(t testing.TB, sub string, now time.Time) string {
	t.Helper()
	return i.Sign(t, Claims(sub, now))
}

// Identity is the STAND-IN for the auth and tenancy services' identity
// operations. Its zero state knows no key, no API key and no membership;
// tests script it with the setters, which are safe while it serves.
type Identity struct {
	// Calls count the requests each operation received.
	JWKSCalls, APIKeyCalls, MembershipCalls, DefaultOrgCalls atomic.Int64

	mu       sync.Mutex
	jwks     events.JWKS
	apiKeys  map[string]events.ResolvedPrincipal
	members  map[[2]string]events.Role // (org, user)
	defaults map[string]string         // user → org

	auth, tenancy micro.Service
}

// StartIdentity serves the stand-in on nc as the services "auth" and
// "tenancy"; both stop when the test ends.
func StartIdentity(t testing.TB, nc *nats.Conn) *Identity {
	t.Helper()
	s := &Identity{
		jwks:     events.JWKS{Keys: []events.JWK{}},
		apiKeys:  map[string]events.ResolvedPrincipal{},
		members:  map[[2]string]events.Role{},
		defaults: map[string]string{},
	}
	s.auth = natstest.Service(t, nc, "auth", map[string]micro.HandlerFunc{
		events.OpAuthJWKS:         s.handleJWKS,
		events.OpAuthVerifyAPIKey: s.handleVerifyAPIKey,
	})
	s.tenancy = natstest.Service(t, nc, "tenancy", map[string]micro.HandlerFunc{
		events.OpTenancyMembership: s.handleMembership,
		events.OpTenancyDefaultOrg: s.handleDefaultOrg,
	})
	return s
}

// SetJWKS replaces the published keys.
func (s *Identity) SetJWKS(keys ...events.JWK) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jwks = events.JWKS{Keys: append([]events.JWK{}, keys...)}
}

// AddAPIKey makes key resolve to p.
func (s *Identity) AddAPIKey(key string, p events.ResolvedPrincipal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apiKeys[key] = p
}

// RevokeAPIKey makes key unknown.
func (s *Identity) RevokeAPIKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.apiKeys, key)
}

// SetMember gives user role in org; the first org of a user is its default.
func (s *Identity) SetMember(org, user string, role events.Role) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.members[[2]string{org, user}] = role
	if _, ok := s.defaults[user]; !ok {
		s.defaults[user] = org
	}
}

// RemoveMember takes user out of org (and its default org, if that one).
func (s *Identity) RemoveMember(org, user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.members, [2]string{org, user})
	if s.defaults[user] == org {
		delete(s.defaults, user)
	}
}

// StopAuth and StopTenancy take a stand-in off the bus, as an outage does.
func (s *Identity) StopAuth() { _ = s.auth.Stop() }

// StopTenancy takes the tenancy stand-in off the bus.
func (s *Identity) StopTenancy() { _ = s.tenancy.Stop() }

func (s *Identity) handleJWKS(req micro.Request) {
	s.JWKSCalls.Add(1)
	s.mu.Lock()
	jwks := s.jwks
	s.mu.Unlock()
	_ = req.RespondJSON(jwks)
}

func (s *Identity) handleVerifyAPIKey(req micro.Request) {
	s.APIKeyCalls.Add(1)
	var in events.VerifyAPIKeyRequest
	if err := json.Unmarshal(req.Data(), &in); err != nil {
		Fail(req, events.Invalid("malformed request"))
		return
	}
	s.mu.Lock()
	p, ok := s.apiKeys[in.Key]
	s.mu.Unlock()
	if !ok {
		Fail(req, events.Errorf(events.CodeUnauthorized, "invalid api key"))
		return
	}
	_ = req.RespondJSON(p)
}

func (s *Identity) handleMembership(req micro.Request) {
	s.MembershipCalls.Add(1)
	var in events.MembershipRequest
	if err := json.Unmarshal(req.Data(), &in); err != nil {
		Fail(req, events.Invalid("malformed request"))
		return
	}
	s.mu.Lock()
	role, ok := s.members[[2]string{in.OrgID, in.UserID}]
	s.mu.Unlock()
	if !ok {
		Fail(req, events.NotFound("organisation not found"))
		return
	}
	_ = req.RespondJSON(events.MembershipReply{OrgID: in.OrgID, Role: role})
}

func (s *Identity) handleDefaultOrg(req micro.Request) {
	s.DefaultOrgCalls.Add(1)
	var in events.DefaultOrgRequest
	if err := json.Unmarshal(req.Data(), &in); err != nil {
		Fail(req, events.Invalid("malformed request"))
		return
	}
	s.mu.Lock()
	org, ok := s.defaults[in.UserID]
	role := s.members[[2]string{org, in.UserID}]
	s.mu.Unlock()
	if !ok {
		Fail(req, events.NotFound("no organisation"))
		return
	}
	_ = req.RespondJSON(events.MembershipReply{OrgID: org, Role: role})
}

// Fail answers req with e the way a real service's endpoint does: the
// micro error headers carry the code, the body is the error's JSON.
func Fail(req micro.Request, e *events.Error) {
	body, _ := json.Marshal(e)
	_ = req.Error(string(e.Code), e.Message, body)
}
