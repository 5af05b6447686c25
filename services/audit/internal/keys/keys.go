// Package keys holds the Ed25519 keys the audit service signs checkpoints
// with. The active key is created on first start, stored in the audit
// schema, and announced on the AUDIT stream (audit.signing_key.created) so
// that its public half is on the append-only record; the private half never
// leaves the database and this process.
package keys

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Algorithm is the one signature algorithm of checkpoints.
const Algorithm = "Ed25519"

// KeyID derives a key's id from its public key: the first 16 hex digits of
// its SHA-256, so anyone holding the key can check the id.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

type key struct {
	id      string
	pub     ed25519.PublicKey
	priv    ed25519.PrivateKey // nil for retired keys
	created time.Time
	active  bool
}

// Ring is the set of checkpoint keys: the active one signs, all verify.
// It is safe for concurrent use.
type Ring struct {
	mu     sync.RWMutex
	active key
	all    map[string]key
}

// Load reads the keys from db, creating and announcing the active key when
// there is none. Replicas starting together converge on one key: the
// database's unique index on the active key decides which insert wins.
func Load(ctx context.Context, db *pgxpool.Pool, es *eventstore.Store) (*Ring, error) {
	r, err := read(ctx, db)
	if err != nil {
		return nil, err
	}
	if r.active.priv == nil {
		if err := create(ctx, db); err != nil {
			return nil, err
		}
		if r, err = read(ctx, db); err != nil {
			return nil, err
		}
		if r.active.priv == nil {
			return nil, errors.New("audit keys: no active signing key after creating one")
		}
	}
	if err := announce(ctx, es, r.active); err != nil {
		return nil, err
	}
	return r, nil
}

func create(ctx context.Context, db *pgxpool.Pool) error {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("audit keys: generate: %w", err)
	}
	_, err = db.Exec(ctx, `INSERT INTO signing_keys (key_id, algorithm, public_key, private_key, active)
		VALUES ($1, $2, $3, $4, true) ON CONFLICT (active) WHERE active DO NOTHING`, KeyID(pub), Algorithm, []byte(pub), priv.Seed())
	if err != nil {
		return fmt.Errorf("audit keys: store: %w", err)
	}
	return nil
}

func read(ctx context.Context, db *pgxpool.Pool) (*Ring, error) {
	rows, err := db.Query(ctx, `SELECT key_id, public_key, private_key, active, created_at FROM signing_keys ORDER BY created_at`)
	if err != nil {
		return nil, fmt.Errorf("audit keys: read: %w", err)
	}
	defer rows.Close()
	r := &Ring{all: map[string]key{}}
	for rows.Next() {
		var (
			k         key
			pub, seed []byte
			created   time.Time
			active    bool
			id        string
		)
		if err := rows.Scan(&id, &pub, &seed, &active, &created); err != nil {
			return nil, fmt.Errorf("audit keys: read: %w", err)
		}
		if len(pub) != ed25519.PublicKeySize || len(seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("audit keys: key %s is malformed", id)
		}
		k = key{id: id, pub: pub, created: created.UTC(), active: active}
		if active {
			k.priv = ed25519.NewKeyFromSeed(seed)
			if !k.priv.Public().(ed25519.PublicKey).Equal(k.pub) {
				return nil, fmt.Errorf("audit keys: key %s: private and public halves do not match", id)
			}
			r.active = k
		}
		r.all[id] = k
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit keys: read: %w", err)
	}
	return r, nil
}

// announce appends audit.signing_key.created for k unless it is already on
// the stream (a restart, or another replica did it).
func announce(ctx context.Context, es *eventstore.Store, k key) error {
	ref := eventstore.Ref{OrgID: events.PlatformOrg, Type: events.AuditAggSigningKey, ID: k.id}
	evs, version, err := es.Load(ctx, ref)
	if err != nil {
		return fmt.Errorf("audit keys: load key event: %w", err)
	}
	if len(evs) > 0 {
		return nil
	}
	env, err := events.New(events.AuditSigningKeyCreated{KeyID: k.id, Algorithm: Algorithm, PublicKey: base64.StdEncoding.EncodeToString(k.pub)},
		events.Aggregate{Type: ref.Type, ID: ref.ID},
		events.Meta{OrgID: events.PlatformOrg, Actor: events.SystemActor("audit")})
	if err != nil {
		return err
	}
	if _, err := es.Append(ctx, ref, version, env); err != nil && !errors.Is(err, eventstore.ErrConflict) {
		return fmt.Errorf("audit keys: announce key %s: %w", k.id, err)
	}
	return nil
}

// Sign signs cp with the active key.
func (r *Ring) Sign(cp *events.SignedCheckpoint) error {
	r.mu.RLock()
	k := r.active
	r.mu.RUnlock()
	return cp.Sign(k.id, k.priv)
}

// Public returns the public key with id, or ok false.
func (r *Ring) Public(id string) (ed25519.PublicKey, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	k, ok := r.all[id]
	return k.pub, ok
}

// ActiveID is the id of the signing key.
func (r *Ring) ActiveID() string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.active.id
}

// Keys describes every key, the active one first in the reply's top level.
func (r *Ring) Keys() events.AuditPublicKeys {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := events.AuditPublicKeys{AuditPublicKey: describe(r.active)}
	for _, k := range r.all {
		out.Keys = append(out.Keys, describe(k))
	}
	slices.SortFunc(out.Keys, func(a, b events.AuditPublicKey) int { return strings.Compare(a.CreatedAt+a.KeyID, b.CreatedAt+b.KeyID) })
	return out
}

func describe(k key) events.AuditPublicKey {
	return events.AuditPublicKey{KeyID: k.id, Algorithm: Algorithm, PublicKey: base64.StdEncoding.EncodeToString(k.pub),
		CreatedAt: k.created.Format(time.RFC3339), Active: k.active}
}
