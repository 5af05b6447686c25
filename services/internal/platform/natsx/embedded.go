// Package natsx wires NATS for InfraPilot processes: an embedded hub server
// with JetStream (used by `infrapilot dev` and by tests) and client
// connections to an embedded or external server.
package natsx

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// HubConfig configures an embedded NATS hub.
type HubConfig struct {
	// Host the client and leafnode listeners bind to; 127.0.0.1 in dev.
	Host string
	// Port is the client port; 0 picks a free port.
	Port int
	// LeafPort is the leafnode port agents dial; 0 disables leafnodes,
	// -1 picks a free port.
	LeafPort int
	// StoreDir is the JetStream file store directory.
	StoreDir string
	// Domain is the JetStream domain of the hub ("hub"); leaf agents use
	// their own domain and source from/into it.
	Domain string
	// ServerName names the server in logs and cluster state.
	ServerName string
	// Configure, when set, adjusts the server options last, just before the
	// server is created (natsauth uses it to run the hub in operator mode).
	Configure func(*server.Options) error
}

// Hub is a running embedded NATS server with JetStream.
type Hub struct {
	srv      *server.Server
	leafPort int
}

// StartHub starts an embedded NATS server and waits until it accepts
// connections and JetStream is ready.
func StartHub(cfg HubConfig) (*Hub, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("natsx: StoreDir is required")
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.Domain == "" {
		cfg.Domain = "hub"
	}
	if cfg.ServerName == "" {
		cfg.ServerName = "infrapilot-hub"
	}
	port := cfg.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName:         cfg.ServerName,
		Host:               cfg.Host,
		Port:               port,
		JetStream:          true,
		JetStreamDomain:    cfg.Domain,
		StoreDir:           cfg.StoreDir,
		NoSigs:             true,
		NoLog:              true,
		MaxPayload:         8 << 20,
		JetStreamMaxMemory: 256 << 20,
	}
	leafPort := cfg.LeafPort
	if leafPort < 0 {
		p, err := FreePort(cfg.Host)
		if err != nil {
			return nil, err
		}
		leafPort = p
	}
	if leafPort > 0 {
		// There is no getter for a randomly bound leafnode port, so the
		// port is chosen before the server starts.
		opts.LeafNode.Host = cfg.Host
		opts.LeafNode.Port = leafPort
	}
	if cfg.Configure != nil {
		if err := cfg.Configure(opts); err != nil {
			return nil, fmt.Errorf("natsx: configure server: %w", err)
		}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsx: new server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(15 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("natsx: embedded server not ready after 15s (port in use?)")
	}
	return &Hub{srv: srv, leafPort: leafPort}, nil
}

// ClientURL is the nats:// URL clients connect to.
func (h *Hub) ClientURL() string { return h.srv.ClientURL() }

// LeafPort is the leafnode port, 0 when leafnodes are off.
func (h *Hub) LeafPort() int { return h.leafPort }

// Server exposes the embedded server for tests and monitoring.
func (h *Hub) Server() *server.Server { return h.srv }

// Shutdown stops the server and waits for it to finish, flushing the
// JetStream store.
func (h *Hub) Shutdown() {
	h.srv.Shutdown()
	h.srv.WaitForShutdown()
}

// FreePort asks the kernel for a free TCP port on host.
func FreePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("natsx: free port: %w", err)
	}
	defer l.Close()
	_, p, _ := net.SplitHostPort(l.Addr().String())
	return strconv.Atoi(p)
}
