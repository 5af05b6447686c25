package simagent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/loadtest/internal/harness"
	"github.com/infrapilot/infrapilot/loadtest/internal/target"
)

// Identity is what an enrollment gave a simulated agent.
type Identity struct {
	OrgID, AgentID string
	// LeafURL is the hub's leafnode URL from the enrollment reply.
	LeafURL string
	// Creds is the agent's .creds text (user JWT and nkey seed).
	Creds       []byte
	Fingerprint string
	Hostname    string
}

// EnrollOptions tunes EnrollMany.
type EnrollOptions struct {
	// Run distinguishes this run's machines: fingerprints and host names
	// are "<Run>-<i>", so a run never re-enrolls an earlier run's agent.
	Run string
	// Parallel bounds concurrent enrollments (default 16).
	Parallel int
	// Rec, when set, records each enrollment's latency and error.
	Rec *harness.Recorder
	// Timeout bounds one enrollment (default 30 s).
	Timeout time.Duration
	// Retries is how many times a failed enrollment is tried again
	// (default 2) before EnrollMany gives up on the whole fleet.
	Retries int
	// PerToken is how many machines share one enrollment token (0: all
	// of them). Each use of a token is an event of the token's aggregate
	// that the next enrollment with it replays, and concurrent uses
	// conflict on it, so one token for a very large fleet enrolls
	// ever more slowly; a few hundred per token keeps the rate steady.
	PerToken int
}

// ErrRateLimited explains an HTTP 429 on POST /agents/enroll: the
// gateway's per-IP limit on unauthenticated auth routes, which a fleet
// enrolled from one machine exceeds at once.
var ErrRateLimited = errors.New("POST /agents/enroll answered 429: the gateway rate-limits unauthenticated auth routes per client IP; " +
	"start InfraPilot with --auth-rate-limit -1 for load tests (the self-hosted target does)")

// EnrollMany creates enrollment tokens for n machines (POST
// /orgs/{org}/enrollment-tokens, one per PerToken machines, max_uses
// each its share) and enrolls n simulated machines through the API (POST
// /agents/enroll, no bearer: the token authenticates), Parallel at a
// time. It returns the identities in order, or the first error that
// retries could not overcome.
func EnrollMany(ctx context.Context, t *target.Target, n int, opts EnrollOptions) ([]Identity, error) {
	if n <= 0 {
		return nil, nil
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 16
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.Retries < 0 {
		opts.Retries = 0
	} else if opts.Retries == 0 {
		opts.Retries = 2
	}
	if opts.Run == "" {
		opts.Run = fmt.Sprintf("lt%d", time.Now().UnixNano())
	}
	per := opts.PerToken
	if per <= 0 || per > n {
		per = n
	}
	// Machine i uses token i mod k: concurrent enrollments spread over
	// the tokens instead of queueing on one.
	tokens := make([]string, (n+per-1)/per)
	k := len(tokens)
	for i := range tokens {
		uses := n / k
		if i < n%k {
			uses++
		}
		tok, err := CreateToken(ctx, t, fmt.Sprintf("loadtest %s #%d", opts.Run, i+1), uses)
		if err != nil {
			return nil, err
		}
		tokens[i] = tok
	}
	out := make([]Identity, n)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		firstErr error
		errOnce  sync.Once
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	for range min(opts.Parallel, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				id, err := enrollOne(ctx, t, tokens[i%k], opts, i)
				if err != nil {
					fail(fmt.Errorf("enroll machine %d of %d: %w", i+1, n, err))
					return
				}
				out[i] = id
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// CreateToken creates an enrollment token for uses machines (expiring in
// a day) and returns the token text.
func CreateToken(ctx context.Context, t *target.Target, name string, uses int) (string, error) {
	var tok events.NewEnrollmentToken
	err := t.Do(ctx, http.MethodPost, "/orgs/"+t.OrgID+"/enrollment-tokens",
		events.CreateEnrollmentTokenRequest{Name: name, MaxUses: uses, ExpiresIn: "24h"}, &tok)
	if err != nil {
		return "", fmt.Errorf("create an enrollment token: %w", err)
	}
	return tok.Token, nil
}

func enrollOne(ctx context.Context, t *target.Target, token string, opts EnrollOptions, i int) (Identity, error) {
	host := fmt.Sprintf("%s-%d", opts.Run, i)
	req := events.EnrollAgentRequest{Token: token, Fingerprint: "sim-" + host, Hostname: host, OS: "linux", Arch: "amd64", Version: Version}
	var lastErr error
	for attempt := 0; attempt <= opts.Retries && ctx.Err() == nil; attempt++ {
		start := time.Now()
		octx, cancel := context.WithTimeout(ctx, opts.Timeout)
		var resp events.AgentEnrollment
		err := t.DoAs(octx, "", "", http.MethodPost, "/agents/enroll", req, &resp)
		cancel()
		if err == nil && (resp.AgentID == "" || resp.Credentials == "") {
			err = errors.New("enrollment reply without an agent id or credentials")
		}
		if opts.Rec != nil {
			opts.Rec.Observe(time.Now(), time.Since(start), err)
		}
		if err == nil {
			return Identity{OrgID: resp.OrgID, AgentID: resp.AgentID, LeafURL: resp.NATSURL, Creds: []byte(resp.Credentials),
				Fingerprint: req.Fingerprint, Hostname: host}, nil
		}
		var apiErr *target.APIError
		if errors.As(err, &apiErr) {
			switch {
			case apiErr.Status == http.StatusTooManyRequests:
				return Identity{}, ErrRateLimited
			case apiErr.Status < 500:
				return Identity{}, err // the request itself is refused: retrying changes nothing
			}
		}
		lastErr = err
	}
	if lastErr == nil {
		lastErr = ctx.Err()
	}
	return Identity{}, lastErr
}

// ConnectOptions tunes ConnectMany.
type ConnectOptions struct {
	// LeafURL overrides the enrollment's leafnode URL.
	LeafURL string
	// Parallel bounds concurrent handshakes (default 32).
	Parallel int
	// Timeout bounds one handshake (default 30 s).
	Timeout time.Duration
	// Rec, when set, records each handshake's latency and error.
	Rec *harness.Recorder
	// Retries is how many more times a failed handshake is tried, a
	// second apart, as a real agent's leaf node keeps reconnecting
	// (default 0).
	Retries int
}

// ConnectMany connects every agent, Parallel at a time. An agent that
// fails to connect is recorded (Rec) and left unconnected; the count of
// connected agents is returned.
func ConnectMany(ctx context.Context, agents []*Agent, opts ConnectOptions) int {
	if opts.Parallel <= 0 {
		opts.Parallel = 32
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	var (
		next, ok atomic.Int64
		wg       sync.WaitGroup
	)
	for range min(opts.Parallel, len(agents)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(agents) {
					return
				}
				for attempt := 0; attempt <= opts.Retries && ctx.Err() == nil; attempt++ {
					if attempt > 0 {
						sleep(ctx, time.Second)
					}
					start := time.Now()
					cctx, cancel := context.WithTimeout(ctx, opts.Timeout)
					err := agents[i].Connect(cctx, opts.LeafURL)
					cancel()
					if opts.Rec != nil {
						opts.Rec.Observe(time.Now(), time.Since(start), err)
					}
					if err == nil {
						ok.Add(1)
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	return int(ok.Load())
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
