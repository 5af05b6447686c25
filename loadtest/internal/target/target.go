// Package target is the InfraPilot a load scenario runs against: a running
// instance named by flags (API URL, NATS URL and credentials, an admin API
// key), or one the tool starts itself (`infrapilot dev` on a temporary data
// directory). Scenarios see only a *Target.
package target

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
)

// Target is a reachable InfraPilot.
type Target struct {
	// APIURL is the gateway's API base, e.g. http://127.0.0.1:8080/api/v1.
	APIURL string
	// Token authenticates API calls: an API key (ipk_…) or an access
	// token of an org admin.
	Token string
	// OrgID is the org the token acts in (the X-Org-ID header).
	OrgID string
	// NATSURL and NATSCreds (a .creds file of a trusted service, APP
	// account) reach the hub directly, for baselines and for observing
	// streams; empty when not given.
	NATSURL   string
	NATSCreds string
	// LeafURL is the hub's leafnode address (nats-leaf://…) simulated
	// agents dial with their enrolled credentials.
	LeafURL string
	// PostgresURL and ClickHouseURL, when known, let the baseline measure
	// the raw capacity of the same databases.
	PostgresURL   string
	ClickHouseURL string
	// SelfHosted is true when the tool started this instance itself.
	SelfHosted bool
	// DataDir is the self-hosted instance's data directory.
	DataDir string
	// PprofURL is the self-hosted hub's net/http/pprof base
	// (http://127.0.0.1:port/debug/pprof) when the tool built the binary;
	// empty otherwise.
	PprofURL string
	// PID is the self-hosted `infrapilot dev` process (0 otherwise): its
	// /proc entry tells the hub's CPU and memory (NATS, services and
	// gateway run in it; its Postgres and ClickHouse are processes of
	// their own).
	PID int
	// HTTP is the client used for API calls.
	HTTP *http.Client
	// UserToken is an access token of the admin user when the tool
	// logged in itself (self-hosted): some routes (POST /orgs, /auth/me)
	// need a user, not an API key. It expires (minutes); empty otherwise.
	UserToken string
	// UserID is the admin user's id when known.
	UserID string

	mu      sync.Mutex
	svcConn *nats.Conn
	stop    func() error
}

// APIError is a non-2xx answer of the API. Its Kind groups it in reports
// ("http_429", "http_503", …).
type APIError struct {
	Status int
	Body   string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("HTTP %d: %s", e.Status, strings.TrimSpace(e.Body))
}

// Kind implements harness.Kinded.
func (e *APIError) Kind() string { return fmt.Sprintf("http_%d", e.Status) }

// Do calls the API: method on APIURL+path with in as JSON (nil: no body),
// decoding a 2xx JSON answer into out (nil: discarded). A non-2xx answer
// is an *APIError.
func (t *Target) Do(ctx context.Context, method, path string, in, out any) error {
	return t.DoAs(ctx, t.Token, t.OrgID, method, path, in, out)
}

// DoAs is Do with another token and org (per-org scenarios).
func (t *Target) DoAs(ctx context.Context, token, org, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, t.APIURL+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if org != "" {
		req.Header.Set("X-Org-ID", org)
	}
	c := t.HTTP
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return &APIError{Status: resp.StatusCode, Body: string(b)}
	}
	if out != nil && len(b) > 0 {
		return json.Unmarshal(b, out)
	}
	return nil
}
