package natsauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// BucketRevocations is the JetStream KV bucket (in APP) holding the
// revocations of each account, keyed by account name. It is the record
// the servers are brought in line with: the resolver offers no
// compare-and-swap, so two control-plane processes pushing account JWTs at
// once could otherwise each overwrite the other's revocation.
const BucketRevocations = "nats_revocations"

// pushAttempts bounds how often one update pushes before giving up.
const pushAttempts = 6

// Revoker revokes credentials and keeps the servers' account JWTs in line
// with the revocation record. Any number of processes may use one at the
// same time: each revocation is first committed to BucketRevocations with
// optimistic concurrency, then every account JWT is pushed until the
// servers hold a superset of the record. Whoever pushes a stale JWT checks
// the record again afterwards and pushes the newer one.
type Revoker struct {
	keys *Keys
	kv   jetstream.KeyValue
	sys  *nats.Conn
}

// NewRevoker creates the revocation bucket if needed (replicas: 1 for a
// single server, 3 in a production cluster) and returns a Revoker that
// records through js (a services connection) and pushes through sys (a
// connection with SystemCreds).
func (k *Keys) NewRevoker(ctx context.Context, js jetstream.JetStream, sys *nats.Conn, replicas int) (*Revoker, error) {
	if replicas < 1 {
		replicas = 1
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      BucketRevocations,
		Description: "revoked NATS users per account; the servers' account JWTs are kept a superset of it",
		History:     10,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("natsauth: revocation bucket: %w", err)
	}
	return &Revoker{keys: k, kv: kv, sys: sys}, nil
}

// Revoke revokes user userPub (the public key returned by AgentCreds or
// SIEMCreds, or UserPublicKey of any creds these keys issued). It records
// the user as revoked in the AGENTS, SIEM and APP accounts, re-signs their
// JWTs with the operator signing key and pushes them. Every server applies
// the update at once: a live connection of the user, a leaf node included,
// is closed, and its credentials are refused from then on, across
// restarts.
//
// The user is revoked in every account rather than in "its" account so
// that a caller can never revoke in the wrong one and silently leave the
// credential valid. Revoke is idempotent (each credential has its own user
// key, so an existing entry for userPub covers it); retry it on error.
func (r *Revoker) Revoke(ctx context.Context, userPub string) error {
	if !nkeys.IsValidPublicUserKey(userPub) {
		return fmt.Errorf("natsauth: revoke: %q is not a user public key", userPub)
	}
	add := jwt.RevocationList{userPub: time.Now().Unix()}
	return r.all(ctx, []Account{AccountAgents, AccountSIEM, AccountApp}, add)
}

// Sync pushes every account's current definition with the recorded
// revocations and those the servers hold. The control plane runs it at
// start so that a change to this package's account definitions (an
// export, a permission template) reaches an external cluster.
func (r *Revoker) Sync(ctx context.Context) error {
	return r.all(ctx, accounts, nil)
}

func (r *Revoker) all(ctx context.Context, accts []Account, add jwt.RevocationList) error {
	errs := make([]error, len(accts))
	var wg sync.WaitGroup
	for i, a := range accts {
		wg.Go(func() {
			if err := r.update(ctx, a, add); err != nil {
				errs[i] = fmt.Errorf("natsauth: account %s: %w", a, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// update commits add to account a's record, then pushes until the servers
// hold everything the record holds. With add nil (Sync) it pushes once
// even if nothing is missing.
func (r *Revoker) update(ctx context.Context, a Account, add jwt.RevocationList) error {
	if len(add) > 0 {
		if err := r.commit(ctx, a, add); err != nil {
			return err
		}
	}
	pub := r.keys.accounts[a].pub
	backoff := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		want, _, err := r.load(ctx, a)
		if err != nil {
			return err
		}
		have, err := r.keys.lookup(ctx, r.sys, pub)
		if err != nil {
			return err
		}
		if (attempt > 0 || add != nil) && covers(have, r.keys.prune(a, want, time.Now())) {
			return nil
		}
		if attempt == pushAttempts {
			return fmt.Errorf("the servers still lack recorded revocations after %d pushes", pushAttempts)
		}
		for u, at := range want {
			if at > have[u] {
				have[u] = at
			}
		}
		tok, err := r.keys.accountJWT(a, r.keys.prune(a, have, time.Now()))
		if err != nil {
			return err
		}
		if err := push(ctx, r.sys, tok); err != nil {
			return err
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return ctx.Err()
		}
		backoff *= 2
	}
}

// commit adds entries to account a's record with compare-and-swap,
// retrying when another process wrote in between.
func (r *Revoker) commit(ctx context.Context, a Account, add jwt.RevocationList) error {
	for attempt := 0; ; attempt++ {
		cur, rev, err := r.load(ctx, a)
		if err != nil {
			return err
		}
		changed := false
		for u, at := range add {
			if _, ok := cur[u]; !ok {
				cur[u] = at
				changed = true
			}
		}
		if !changed {
			return nil
		}
		data, err := json.Marshal(r.keys.prune(a, cur, time.Now()))
		if err != nil {
			return err
		}
		if rev == 0 {
			_, err = r.kv.Create(ctx, string(a), data)
		} else {
			_, err = r.kv.Update(ctx, string(a), data, rev)
		}
		if err == nil {
			return nil
		}
		if attempt == 20 || ctx.Err() != nil {
			return fmt.Errorf("record revocation: %w", err)
		}
	}
}

// load reads account a's record and its revision (0: no record yet).
func (r *Revoker) load(ctx context.Context, a Account) (jwt.RevocationList, uint64, error) {
	e, err := r.kv.Get(ctx, string(a))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return jwt.RevocationList{}, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read revocations: %w", err)
	}
	out := jwt.RevocationList{}
	if err := json.Unmarshal(e.Value(), &out); err != nil {
		return nil, 0, fmt.Errorf("read revocations: %w", err)
	}
	return out, e.Revision(), nil
}

// covers reports whether have revokes everything want revokes.
func covers(have, want jwt.RevocationList) bool {
	for u, at := range want {
		if have[u] < at {
			return false
		}
	}
	return true
}
