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
	hub    *natsx.Hub
	keys   *natsauth.Keys
	nc     *nats.Conn // the services' connection (account APP)
	sys    *nats.Conn // account SYS, for revocation pushes
	issuer *natsauth.AgentIssuer
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
	sysCreds, err := keys.SystemCreds()
	if err != nil {
		return nil, err
	}
	if h.sys, err = connectWith(h.hub.ClientURL(), name+"-system", sysCreds, log); err != nil {
		return nil, err
	}
	js, err := natsx.JetStream(h.nc)
	if err != nil {
		return nil, err
	}
	rev, err := keys.NewRevoker(ctx, js, h.sys, 1)
	if err != nil {
		return nil, err
	}
	// Revocations recorded while the server's resolver was behind (a crash
	// between record and push) are pushed now.
	if err := rev.Sync(ctx); err != nil {
		return nil, fmt.Errorf("nats revocations: %w", err)
	}
	if h.hub.LeafPort() > 0 {
		if h.issuer, err = natsauth.NewAgentIssuer(keys, rev, leafURL(h.hub), 0); err != nil {
			return nil, err
		}
	}
	return h, nil
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
