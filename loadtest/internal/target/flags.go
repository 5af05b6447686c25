package target

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// Flags name the target on the command line: a running InfraPilot (--url
// and friends) or, by default, one the tool starts itself (--self-host).
type Flags struct {
	URL           string
	Token         string
	Org           string
	NATSURL       string
	NATSCreds     string
	LeafURL       string
	PostgresURL   string
	ClickHouseURL string
	SelfHost      bool
	InfrapilotBin string
	KeepData      bool
	NoClickHouse  bool
}

// Register declares the target flags on fs.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.URL, "url", "", "API base of a running InfraPilot, e.g. http://127.0.0.1:8080/api/v1 (empty: --self-host)")
	fs.StringVar(&f.Token, "token", "", "API key (ipk_…) or access token of an org owner (default $INFRAPILOT_TOKEN)")
	fs.StringVar(&f.Org, "org", "", "org id the token acts in (empty: the token's default org)")
	fs.StringVar(&f.NATSURL, "nats-url", "", "NATS client URL of the hub (baselines, stream observation, service requests)")
	fs.StringVar(&f.NATSCreds, "nats-creds", "", "NATS .creds file of a trusted service (APP account)")
	fs.StringVar(&f.LeafURL, "leaf-url", "", "leafnode URL simulated agents dial (nats-leaf://…; empty: the enrollment reply's)")
	fs.StringVar(&f.PostgresURL, "pg-url", "", "Postgres URL for the raw-capacity baseline (empty: skipped)")
	fs.StringVar(&f.ClickHouseURL, "clickhouse-url", "", "ClickHouse native URL for the raw-capacity baseline (empty: skipped)")
	fs.BoolVar(&f.SelfHost, "self-host", false, "start infrapilot dev on a temporary data dir and run against it (the default when --url is empty)")
	fs.StringVar(&f.InfrapilotBin, "infrapilot-bin", "", "infrapilot binary for --self-host (empty: built once from the repository with go build)")
	fs.BoolVar(&f.KeepData, "keep-data", false, "keep the self-hosted instance's temporary directory (data and dev.log) after the run")
	fs.BoolVar(&f.NoClickHouse, "no-clickhouse", false, "self-hosted: keep logs in Postgres even when clickhouse-server is installed")
}

// Resolve returns the target the flags name, starting a self-hosted
// instance when asked (or when --url is empty). Progress goes to log. The
// caller must Close the target.
func (f *Flags) Resolve(ctx context.Context, log io.Writer) (*Target, error) {
	if f.Token == "" {
		f.Token = os.Getenv("INFRAPILOT_TOKEN")
	}
	if f.SelfHost || f.URL == "" {
		if f.URL != "" {
			return nil, errors.New("--self-host and --url exclude each other")
		}
		return selfHost(ctx, f, log)
	}
	if f.Token == "" {
		return nil, errors.New("--url needs --token (or $INFRAPILOT_TOKEN): an API key or access token of an org owner")
	}
	t := &Target{
		APIURL: strings.TrimRight(f.URL, "/"), Token: f.Token, OrgID: f.Org,
		NATSURL: f.NATSURL, NATSCreds: f.NATSCreds, LeafURL: f.LeafURL,
		PostgresURL: f.PostgresURL, ClickHouseURL: f.ClickHouseURL, HTTP: NewHTTPClient(),
	}
	if !strings.HasPrefix(f.Token, "ipk_") {
		t.UserToken = f.Token
	}
	if err := t.fillIdentity(ctx); err != nil {
		return nil, err
	}
	return t, nil
}

// NewHTTPClient returns a client for load: enough idle connections per
// host that an open-loop load of thousands of requests a second reuses
// connections instead of exhausting ports, and no overall timeout (each
// operation has its own context deadline).
func NewHTTPClient() *http.Client {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        4096,
		MaxIdleConnsPerHost: 4096,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{Transport: tr}
}

// fillIdentity finds the org and the user behind the token when the flags
// did not name them: a user token lists its orgs (the first is the
// default); an API key names its creator among the org's keys.
func (t *Target) fillIdentity(ctx context.Context) error {
	if t.UserToken != "" {
		var me struct {
			ID string `json:"id"`
		}
		if err := t.DoAs(ctx, t.UserToken, "", http.MethodGet, "/auth/me", nil, &me); err != nil {
			return fmt.Errorf("GET /auth/me: %w", err)
		}
		t.UserID = me.ID
		if t.OrgID == "" {
			var orgs struct {
				Items []struct {
					ID string `json:"id"`
				} `json:"items"`
			}
			if err := t.DoAs(ctx, t.UserToken, "", http.MethodGet, "/orgs", nil, &orgs); err != nil {
				return fmt.Errorf("GET /orgs: %w", err)
			}
			if len(orgs.Items) == 0 {
				return errors.New("the token's user belongs to no org")
			}
			t.OrgID = orgs.Items[0].ID
		}
		return nil
	}
	var keys struct {
		Items []struct {
			Prefix    string `json:"prefix"`
			CreatedBy string `json:"created_by"`
		} `json:"items"`
	}
	if err := t.Do(ctx, http.MethodGet, "/auth/api-keys", nil, &keys); err != nil {
		return fmt.Errorf("GET /auth/api-keys (the key needs the owner or admin role): %w", err)
	}
	for _, k := range keys.Items {
		if k.Prefix != "" && strings.HasPrefix(t.Token, k.Prefix) {
			t.UserID = k.CreatedBy
		}
	}
	return nil
}

// Close stops a self-hosted instance (SIGINT, then kill) and removes its
// temporary directory, and closes the service connection.
func (t *Target) Close() error {
	t.mu.Lock()
	nc, stop := t.svcConn, t.stop
	t.svcConn, t.stop = nil, nil
	t.mu.Unlock()
	if nc != nil {
		nc.Close()
	}
	if stop != nil {
		return stop()
	}
	return nil
}
