package service

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/auth/internal/domain"
	"github.com/infrapilot/infrapilot/services/auth/internal/secret"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
	"github.com/jackc/pgx/v5"
)

// keyCacheTTL is how long a replica signs with the key it loaded before
// looking for a newer one. After a rotation, other replicas may sign with
// the previous key for up to this long, so the previous public key stays
// in the JWKS for AccessTTL + 2 × keyCacheTTL after it was superseded.
const keyCacheTTL = 30 * time.Second

type signingKey struct {
	kid         string
	pub         ed25519.PublicKey
	activatedAt time.Time
}

// keyCache holds the active private key and the public keys of the JWKS.
type keyCache struct {
	mu       sync.Mutex
	loadedAt time.Time
	active   ed25519.PrivateKey
	kid      string
	public   []signingKey // activated keys, oldest first
}

// accessClaims are the claims of an access token.
type accessClaims struct {
	jwt.RegisteredClaims
	events.AccessClaims
}

// signAccess issues an access token for u in session sid.
func (s *Service) signAccess(ctx context.Context, u *domain.User, sid string) (string, error) {
	priv, kid, err := s.activeKey(ctx)
	if err != nil {
		return "", err
	}
	now := s.now()
	jti, err := uuid.NewV7()
	if err != nil {
		return "", err
	}
	claims := accessClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: s.cfg.Issuer, Subject: u.ID, Audience: jwt.ClaimStrings{s.cfg.Audience},
			ExpiresAt: jwt.NewNumericDate(now.Add(s.cfg.AccessTTL)), NotBefore: jwt.NewNumericDate(now),
			IssuedAt: jwt.NewNumericDate(now), ID: jti.String(),
		},
		AccessClaims: events.AccessClaims{SessionID: sid, Email: u.Email},
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	t.Header["kid"] = kid
	return t.SignedString(priv)
}

// activeKey returns the private key to sign with, loading the keys when
// the cache is stale and creating the first key when there is none.
func (s *Service) activeKey(ctx context.Context) (ed25519.PrivateKey, string, error) {
	c := &s.keys
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.active != nil && s.now().Sub(c.loadedAt) < keyCacheTTL {
		return c.active, c.kid, nil
	}
	if err := s.loadKeysLocked(ctx); err != nil {
		return nil, "", err
	}
	if c.active == nil {
		if _, err := s.rotate(ctx, true); err != nil {
			return nil, "", err
		}
		if err := s.loadKeysLocked(ctx); err != nil {
			return nil, "", err
		}
		if c.active == nil {
			return nil, "", events.Errorf(events.CodeUnavailable, "no signing key is active yet; retry")
		}
	}
	return c.active, c.kid, nil
}

// loadKeysLocked reads the activated keys and opens the newest private key.
func (s *Service) loadKeysLocked(ctx context.Context) error {
	rows, err := s.db.Query(ctx, `SELECT kid, public_key, activated_at FROM signing_keys
		WHERE activated_at IS NOT NULL ORDER BY activated_at, kid`)
	if err != nil {
		return err
	}
	var keys []signingKey
	for rows.Next() {
		var k signingKey
		var pub []byte
		if err := rows.Scan(&k.kid, &pub, &k.activatedAt); err != nil {
			rows.Close()
			return err
		}
		k.pub = ed25519.PublicKey(pub)
		keys = append(keys, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	c := &s.keys
	c.public, c.loadedAt = keys, s.now()
	if len(keys) == 0 {
		c.active, c.kid = nil, ""
		return nil
	}
	newest := keys[len(keys)-1]
	if newest.kid == c.kid && c.active != nil {
		return nil
	}
	var sealed []byte
	if err := s.db.QueryRow(ctx, `SELECT private_key_enc FROM signing_keys WHERE kid = $1`, newest.kid).Scan(&sealed); err != nil {
		return err
	}
	sl, err := s.sealing(ctx)
	if err != nil {
		return err
	}
	seed, err := sl.Open(sealed, []byte("jwt:"+newest.kid))
	if err != nil {
		return fmt.Errorf("auth: open signing key %s: %w", newest.kid, err)
	}
	c.active, c.kid = ed25519.NewKeyFromSeed(seed), newest.kid
	return nil
}

// JWKS returns the public keys access tokens may be signed with: the
// active one and the previous ones whose tokens may not have expired yet.
func (s *Service) JWKS(ctx context.Context, _ events.Empty) (events.JWKS, error) {
	if _, _, err := s.activeKey(ctx); err != nil {
		return events.JWKS{}, err
	}
	c := &s.keys
	c.mu.Lock()
	keys := c.public
	c.mu.Unlock()
	out := events.JWKS{Keys: []events.JWK{}}
	retain := s.cfg.AccessTTL + 2*keyCacheTTL
	now := s.now()
	for i, k := range keys {
		if i+1 < len(keys) && now.Sub(keys[i+1].activatedAt) > retain {
			continue // superseded long enough ago that no token it signed is valid
		}
		out.Keys = append(out.Keys, events.JWK{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(k.pub),
			Kid: k.kid, Alg: events.JWTAlgorithm, Use: "sig"})
	}
	// Newest first: verifiers that take the first key find the active one.
	for i, j := 0, len(out.Keys)-1; i < j; i, j = i+1, j-1 {
		out.Keys[i], out.Keys[j] = out.Keys[j], out.Keys[i]
	}
	return out, nil
}

// RotateSigningKey makes a new signing key active.
func (s *Service) RotateSigningKey(ctx context.Context, _ events.Empty) (events.SigningKeyRotateResponse, error) {
	kid, err := s.rotate(ctx, false)
	if err != nil {
		return events.SigningKeyRotateResponse{}, err
	}
	c := &s.keys
	c.mu.Lock()
	c.loadedAt = time.Time{} // sign with the new key from now on
	c.mu.Unlock()
	return events.SigningKeyRotateResponse{Kid: kid}, nil
}

// rotate creates a key, stores it sealed, appends auth.signing_key.rotated
// and waits until the projection has activated it. With ifNone it only
// creates the first key: replicas starting together race on the ring's
// version 0, one wins and the others use its key.
func (s *Service) rotate(ctx context.Context, ifNone bool) (string, error) {
	ref := platformRef(domain.AggSigningKey, domain.SigningKeyRing)
	evs, version, err := s.es.Load(ctx, ref)
	if err != nil {
		return "", err
	}
	var ring domain.KeyRing
	if err := ring.Apply(evs...); err != nil {
		return "", err
	}
	if ifNone && ring.Active() != "" {
		return ring.Active(), s.waitActivated(ctx, ring.Active())
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return "", err
	}
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	kid := thumbprint(pub)
	sl, err := s.sealing(ctx)
	if err != nil {
		return "", err
	}
	sealed, err := sl.Seal(seed, []byte("jwt:"+kid))
	if err != nil {
		return "", err
	}
	if _, err := s.db.Exec(ctx, `INSERT INTO signing_keys (kid, private_key_enc, public_key) VALUES ($1, $2, $3)`, kid, sealed, []byte(pub)); err != nil {
		return "", err
	}
	_, err = s.append(ctx, ref, version, meta(ctx, events.PlatformOrg, events.Actor{}),
		events.SigningKeyRotated{Kid: kid, PreviousKid: ring.Active()})
	if errors.Is(err, eventstore.ErrConflict) {
		_, _ = s.db.Exec(context.WithoutCancel(ctx), `DELETE FROM signing_keys WHERE kid = $1 AND activated_at IS NULL`, kid)
		if ifNone {
			return s.rotate(ctx, true)
		}
		return "", events.Errorf(events.CodeConflict, "another rotation happened at the same time; retry")
	}
	if err != nil {
		return "", err
	}
	s.log.Info("signing key rotated", "kid", kid, "previous_kid", ring.Active())
	return kid, s.waitActivated(ctx, kid)
}

func (s *Service) waitActivated(ctx context.Context, kid string) error {
	return s.waitFor(ctx, func() (bool, error) {
		var at *time.Time
		err := s.db.QueryRow(ctx, `SELECT activated_at FROM signing_keys WHERE kid = $1`, kid).Scan(&at)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil
		}
		return err == nil && at != nil, err
	})
}

// thumbprint is the RFC 7638 JWK thumbprint of an Ed25519 public key.
func thumbprint(pub ed25519.PublicKey) string {
	canon := fmt.Sprintf(`{"crv":"Ed25519","kty":"OKP","x":"%s"}`, base64.RawURLEncoding.EncodeToString(pub))
	sum := sha256.Sum256([]byte(canon))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// sealing returns the sealer of secrets at rest: from the configured key,
// else from the key kept in the auth schema (created on first use; of
// replicas racing to create it, the first insert wins).
func (s *Service) sealing(ctx context.Context) (*secret.Sealer, error) {
	s.sealerMu.Lock()
	defer s.sealerMu.Unlock()
	if s.sealer != nil {
		return s.sealer, nil
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if _, err := s.db.Exec(ctx, `INSERT INTO sealing_key (id, key) VALUES (1, $1) ON CONFLICT (id) DO NOTHING`, key); err != nil {
		return nil, err
	}
	if err := s.db.QueryRow(ctx, `SELECT key FROM sealing_key WHERE id = 1`).Scan(&key); err != nil {
		return nil, err
	}
	sl, err := secret.NewSealer(key)
	if err != nil {
		return nil, err
	}
	s.sealer = sl
	return sl, nil
}
