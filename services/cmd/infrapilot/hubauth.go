package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/infrapilot/infrapilot/services/internal/platform/natsauth"
	"github.com/infrapilot/infrapilot/services/internal/platform/natsx"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Files of the secured hub in a data dir.
const (
	natsKeysFile    = "nats-keys.json" // operator and account signing seeds, 0600
	natsAccountsDir = "nats-accounts"  // the account resolver's JWTs
)

// securedHub is the embedded hub in operator mode (natsauth): services
// connect to APP with service credentials, agents to AGENTS with
// credentials enrollment issues, and the system account connection pushes
// revocations.
type securedHub struct {
	hub     *natsx.Hub
	keys    *natsauth.Keys
	nc      *nats.Conn // the services' connection (account APP)
	sys     *nats.Conn // account SYS, for revocation pushes
	revoker *natsauth.Revoker
	issuer  *natsauth.AgentIssuer
}

// startSecuredHub starts the hub of dataDir in operator mode (creating
// its keys on the first start) and connects the services and the system
// account to it. leafURL is what enrolled agents are told to dial.
func startSecuredHub(ctx context.Context, dataDir string, cfg natsx.HubConfig, leafURL func(*natsx.Hub) string, name string, log *slog.Logger) (_ *securedHub, err error) {
	keys, err := natsauth.LoadOrCreate(filepath.Join(dataDir, natsKeysFile))
	if err != nil {
		return nil, err
	}
	cfg.Configure = func(o *server.Options) error {
		return keys.ConfigureServer(o, filepath.Join(dataDir, natsAccountsDir))
	}
	h := &securedHub{keys: keys}
	if h.hub, err = natsx.StartHub(cfg); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			h.Close()
		}
	}()
	svcCreds, err := keys.ServiceCreds(name)
	if err != nil {
		return nil, err
	}
	if h.nc, err = connectWith(h.hub.ClientURL(), name, svcCreds, log); err != nil {
		return nil, err
	}
	leaf := ""
	if h.hub.LeafPort() > 0 {
		leaf = leafURL(h.hub)
	}
	if h.sys, h.revoker, h.issuer, err = issuers(ctx, keys, h.nc, h.hub.ClientURL(), name, 1, leaf, log); err != nil {
		return nil, err
	}
	return h, nil
}

// issuers connects to the system account and returns the issuer of agent
// credentials: what a process that runs the tenancy service needs to
// enroll and delete agents. nc is the process's services connection (its
// JetStream holds the revocation record); replicas is that bucket's.
// Revocations recorded while the servers were behind (a crash between
// record and push) are pushed first.
func issuers(ctx context.Context, keys *natsauth.Keys, nc *nats.Conn, url, name string, replicas int, leafURL string, log *slog.Logger) (*nats.Conn, *natsauth.Revoker, *natsauth.AgentIssuer, error) {
	sysCreds, err := keys.SystemCreds()
	if err != nil {
		return nil, nil, nil, err
	}
	sys, err := connectWith(url, name+"-system", sysCreds, log)
	if err != nil {
		return nil, nil, nil, err
	}
	fail := func(err error) (*nats.Conn, *natsauth.Revoker, *natsauth.AgentIssuer, error) {
		sys.Close()
		return nil, nil, nil, err
	}
	js, err := natsx.JetStream(nc)
	if err != nil {
		return fail(err)
	}
	rev, err := keys.NewRevoker(ctx, js, sys, replicas)
	if err != nil {
		return fail(err)
	}
	if err := rev.Sync(ctx); err != nil {
		return fail(fmt.Errorf("nats revocations: %w", err))
	}
	if leafURL == "" {
		return sys, rev, nil, nil
	}
	issuer, err := natsauth.NewAgentIssuer(keys, rev, leafURL, 0)
	if err != nil {
		return fail(err)
	}
	return sys, rev, issuer, nil
}

func connectWith(url, name string, creds []byte, log *slog.Logger) (*nats.Conn, error) {
	opt, err := natsauth.ConnectOption(creds)
	if err != nil {
		return nil, err
	}
	return natsx.Connect(natsx.ConnConfig{URL: url, Name: name, Options: []nats.Option{opt}}, log)
}

// Close closes the connections and stops the hub.
func (h *securedHub) Close() {
	if h.sys != nil {
		h.sys.Close()
	}
	if h.nc != nil && !h.nc.IsClosed() {
		h.nc.Close()
	}
	if h.hub != nil {
		h.hub.Shutdown()
	}
}
