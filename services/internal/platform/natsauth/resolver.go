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
)

// Account JWT subjects served by every server (system account only).
const (
	claimsUpdateSubject = "$SYS.REQ.CLAIMS.UPDATE"
	claimsLookupFormat  = "$SYS.REQ.ACCOUNT.%s.CLAIMS.LOOKUP"
	accountInfoFormat   = "$SYS.REQ.ACCOUNT.%s.INFO"
)

// Timing of the conversation with the servers. Every server of a cluster
// answers a lookup; the answers arriving within collectWindow of the first
// are merged, so that a server that has not seen an update yet cannot make
// us drop a revocation another server holds.
const (
	firstAnswerTimeout = 10 * time.Second
	collectWindow      = 250 * time.Millisecond
)

// lookup returns the union of account pub's revocations as the servers
// hold them: the JWT each server's resolver stores (CLAIMS.LOOKUP) and the
// JWT each server currently applies (ACCOUNT.INFO). Only JWTs signed by
// this operator's signing key count. Both sources matter: a system user
// can make a resolver store any well-formed account JWT (the server checks
// the issuer only when applying it), so a tampered store must not make us
// push a JWT without the revocations the servers still enforce.
func (k *Keys) lookup(ctx context.Context, sys *nats.Conn, pub string) (jwt.RevocationList, error) {
	var stored, live [][]byte
	var storedErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		stored, storedErr = collect(ctx, sys, fmt.Sprintf(claimsLookupFormat, pub), nil, collectWindow)
	})
	// An account no client uses may be loaded nowhere; then only the
	// stored JWTs exist and a missing answer here is fine.
	wg.Go(func() {
		live, _ = collect(ctx, sys, fmt.Sprintf(accountInfoFormat, pub), nil, collectWindow)
	})
	wg.Wait()
	if storedErr != nil {
		return nil, fmt.Errorf("look up account JWT: %w", storedErr)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := jwt.RevocationList{}
	merge := func(tok string) {
		for u, at := range k.revocationsOf(tok) {
			if at > out[u] {
				out[u] = at
			}
		}
	}
	for _, tok := range stored {
		merge(string(tok)) // empty: this server does not know the account
	}
	for _, raw := range live {
		var r struct {
			Data *struct {
				JWT string `json:"jwt"`
			} `json:"data"`
		}
		if json.Unmarshal(raw, &r) == nil && r.Data != nil {
			merge(r.Data.JWT)
		}
	}
	return out, nil
}

// claimUpdateResponse is a server's answer to a claims update.
type claimUpdateResponse struct {
	Data *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"data"`
	Error *struct {
		Code        int    `json:"code"`
		Description string `json:"description"`
	} `json:"error"`
}

// push sends an account JWT to every server; each validates it, stores it
// and, if the operator signed it, applies it to its connections. Only the
// first answer is awaited: the caller reads back from every server.
func push(ctx context.Context, sys *nats.Conn, tok string) error {
	answers, err := collect(ctx, sys, claimsUpdateSubject, []byte(tok), 0)
	if err != nil {
		return fmt.Errorf("push account JWT: %w", err)
	}
	for _, raw := range answers {
		var r claimUpdateResponse
		if err := json.Unmarshal(raw, &r); err != nil {
			return fmt.Errorf("push account JWT: bad answer: %w", err)
		}
		if r.Error != nil {
			return fmt.Errorf("push account JWT: server refused: %s", r.Error.Description)
		}
	}
	return nil
}

// collect publishes a request and gathers the answers that arrive within
// window of the first one (servers of a cluster each answer).
func collect(ctx context.Context, nc *nats.Conn, subject string, data []byte, window time.Duration) ([][]byte, error) {
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(subject, inbox, data); err != nil {
		return nil, err
	}
	first, cancel := context.WithTimeout(ctx, firstAnswerTimeout)
	defer cancel()
	msg, err := sub.NextMsgWithContext(first)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return nil, errors.New("no answer from any server (is this a system account connection to a server in operator mode with a full resolver?)")
		}
		return nil, err
	}
	answers := [][]byte{msg.Data}
	if window <= 0 {
		return answers, nil
	}
	rest, cancelRest := context.WithTimeout(ctx, window)
	defer cancelRest()
	for {
		msg, err := sub.NextMsgWithContext(rest)
		if err != nil {
			return answers, nil
		}
		answers = append(answers, msg.Data)
	}
}
