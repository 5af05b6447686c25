package authn

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway/internal/httpapi"
	"github.com/infrapilot/infrapilot/gateway/internal/natsreq"
	"github.com/nats-io/nats.go"
)

// jwksFetchTimeout bounds one JWKS request to the auth service. The fetch
// does not end with the request that started it: other requests may be
// waiting for its answer.
const jwksFetchTimeout = 5 * time.Second

// JWKSCacheControl is the Cache-Control of GET /.well-known/jwks.json.
const JWKSCacheControl = "public, max-age=60"

// keySnapshot is one fetched JWKS. It is never changed after it is built;
// a refresh replaces it whole, so a key the auth service withdrew stops
// verifying at the next refresh.
type keySnapshot struct {
	keys      map[string]ed25519.PublicKey
	published events.JWKS // the accepted keys, as /.well-known/jwks.json serves them
}

// keySet caches the auth service's public signing keys.
//
// Refresh policy: the keys are refetched when a request finds them older
// than refresh (the request that notices fetches; the others keep using
// the old keys meanwhile), and when a token names a kid they lack. No two
// fetches start less than minInterval apart, whatever the cause, so forged
// kids cannot make the gateway flood the auth service. While the auth
// service cannot be reached the last keys stay in use for maxStale, then
// JWT requests answer 503.
type keySet struct {
	nc                             *nats.Conn
	log                            *slog.Logger
	now                            func() time.Time
	refresh, minInterval, maxStale time.Duration

	mu        sync.Mutex
	snap      *keySnapshot  // nil until the first successful fetch
	fetchedAt time.Time     // of snap
	attemptAt time.Time     // start of the last fetch, successful or not
	lastErr   error         // of the last fetch, nil after a success
	inflight  chan struct{} // closed when the running fetch ends; nil when none runs
}

func newKeySet(nc *nats.Conn, log *slog.Logger, now func() time.Time, refresh, minInterval, maxStale time.Duration) *keySet {
	return &keySet{nc: nc, log: log, now: now, refresh: refresh, minInterval: minInterval, maxStale: maxStale}
}

// key returns the public key named kid. A kid unknown after the refresh
// policy has had its say is a rejection; keys that cannot be had at all are
// an unavailable error.
func (s *keySet) key(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	snap, err := s.get(ctx, func(keys map[string]ed25519.PublicKey) bool {
		_, ok := keys[kid]
		return ok
	})
	if err != nil {
		return nil, err
	}
	k, ok := snap.keys[kid]
	if !ok {
		return nil, rejected("unknown kid")
	}
	return k, nil
}

// get returns the current snapshot, refreshed first when it is older than
// refresh or when has reports that it lacks what the caller needs, as far
// as minInterval allows.
func (s *keySet) get(ctx context.Context, has func(map[string]ed25519.PublicKey) bool) (*keySnapshot, error) {
	waited := false
	for {
		s.mu.Lock()
		now := s.now()
		snap := s.snap
		age := now.Sub(s.fetchedAt)
		satisfied := snap != nil && has(snap.keys)
		usable := snap != nil && age < s.maxStale
		if satisfied && age < s.refresh {
			s.mu.Unlock()
			return snap, nil
		}
		if !waited {
			if ch := s.inflight; ch != nil {
				s.mu.Unlock()
				if satisfied && usable {
					return snap, nil // another request is refreshing; the old keys do meanwhile
				}
				select {
				case <-ch:
				case <-ctx.Done():
					return nil, keysUnavailable(ctx.Err())
				}
				waited = true
				continue
			}
			if s.attemptAt.IsZero() || now.Sub(s.attemptAt) >= s.minInterval {
				ch := make(chan struct{})
				s.inflight, s.attemptAt = ch, now
				s.mu.Unlock()
				s.fetch(ctx, ch)
				waited = true
				continue
			}
		}
		lastErr := s.lastErr
		s.mu.Unlock()
		if !usable {
			return nil, keysUnavailable(lastErr)
		}
		return snap, nil
	}
}

// fetch asks the auth service for its keys and installs them; it ends the
// fetch that ch marks.
func (s *keySet) fetch(ctx context.Context, ch chan struct{}) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jwksFetchTimeout)
	defer cancel()
	jwks, err := natsreq.Call[events.Empty, events.JWKS](ctx, s.nc,
		events.ServiceEndpoint(serviceAuth, events.OpAuthJWKS), events.Empty{})
	var snap *keySnapshot
	if err == nil {
		snap = s.parse(ctx, jwks)
	} else {
		s.log.WarnContext(ctx, "authn: cannot fetch signing keys", "err", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.snap, s.fetchedAt, s.lastErr = snap, s.now(), nil
	} else {
		s.lastErr = err
	}
	s.inflight = nil
	close(ch)
}

// parse keeps the keys of jwks the gateway can verify with: OKP Ed25519
// signing keys with a kid, for EdDSA. Others are skipped with a warning.
func (s *keySet) parse(ctx context.Context, jwks events.JWKS) *keySnapshot {
	snap := &keySnapshot{keys: map[string]ed25519.PublicKey{}, published: events.JWKS{Keys: []events.JWK{}}}
	for _, k := range jwks.Keys {
		x, err := base64.RawURLEncoding.Strict().DecodeString(k.X)
		switch {
		case k.Kid == "" || len(k.Kid) > 128:
			s.log.WarnContext(ctx, "authn: signing key without a usable kid skipped")
			continue
		case k.Kty != "OKP" || k.Crv != "Ed25519" || (k.Alg != "" && k.Alg != events.JWTAlgorithm) ||
			(k.Use != "" && k.Use != "sig") || err != nil || len(x) != ed25519.PublicKeySize:
			s.log.WarnContext(ctx, "authn: signing key is not an Ed25519 signing key; skipped", "kid", k.Kid)
			continue
		case snap.keys[k.Kid] != nil:
			s.log.WarnContext(ctx, "authn: duplicate signing key id; the first is kept", "kid", k.Kid)
			continue
		}
		snap.keys[k.Kid] = ed25519.PublicKey(x)
		snap.published.Keys = append(snap.published.Keys, events.JWK{
			Kty: "OKP", Crv: "Ed25519", X: k.X, Kid: k.Kid, Alg: events.JWTAlgorithm, Use: "sig",
		})
	}
	return snap
}

func keysUnavailable(cause error) error {
	return &events.Error{Code: events.CodeUnavailable,
		Message: "signing keys unavailable: the auth service did not answer", Err: cause}
}

// JWKSHandler serves GET /.well-known/jwks.json: the auth service's public
// signing keys the gateway accepts, from the same cache that verifies
// tokens (so a flood of requests here costs the auth service nothing
// extra), with Cache-Control JWKSCacheControl.
func (a *Authenticator) JWKSHandler(w http.ResponseWriter, r *http.Request) {
	snap, err := a.keys.get(r.Context(), func(map[string]ed25519.PublicKey) bool { return true })
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", JWKSCacheControl)
	httpapi.JSON(w, r, http.StatusOK, snap.published)
}
