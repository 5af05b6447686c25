package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/infrapilot/infrapilot/services/internal/platform/config"
	"github.com/infrapilot/infrapilot/services/internal/platform/natsauth"
)

// Files `infrapilot nats-init` writes.
const (
	natsConfFile    = "nats-server.conf"
	serviceCredFile = "service.creds"
)

// runNATSInit prepares a NATS server for production: operator and
// account keys, a complete server configuration in operator mode, and the
// services' credentials. The keys file stays with the control plane
// (`infrapilot run --nats-keys`); the configuration goes to the NATS
// servers; the credentials to every `infrapilot run` process.
func runNATSInit(_ context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fset := flag.NewFlagSet("infrapilot nats-init", flag.ContinueOnError)
	fset.SetOutput(stderr)
	dir := fset.String("dir", "./nats", "directory to write the keys, the server configuration and the credentials into")
	port := fset.Int("port", 4222, "client port of the NATS server")
	leafPort := fset.Int("leaf-port", 7422, "leafnode port agents dial (put TLS in front of it, or add a tls block, when agents connect over the internet)")
	storeDir := fset.String("store-dir", "", "JetStream store directory of the server (default: <dir>/jetstream)")
	fset.Usage = config.Usage(fset, `Usage: infrapilot nats-init [flags]

Creates the NATS operator, its accounts (APP for the services, AGENTS,
SIEM, SYS) and their signing keys, and writes into --dir:

  nats-keys.json     the signing keys (0600): keep it with the control plane,
                     pass it to the process running tenancy with --nats-keys
  nats-server.conf   a complete nats-server configuration in operator mode
  service.creds      credentials for every "infrapilot run" (--nats-creds)
  accounts/          the account resolver's directory

An existing keys file is kept (the command only rewrites the other files), so
running it again never invalidates credentials already issued.

Example:
  infrapilot nats-init --dir /etc/infrapilot/nats
  nats-server -c /etc/infrapilot/nats/nats-server.conf
  infrapilot run --nats-creds /etc/infrapilot/nats/service.creds \
    --nats-keys /etc/infrapilot/nats/nats-keys.json \
    --agent-nats-url tls://hub.example.com:7422 --pg-url … gateway auth tenancy`)
	if err := config.Parse(fset, args, getenv); err != nil {
		return err
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return err
	}
	keysPath := filepath.Join(abs, natsKeysFile)
	_, statErr := os.Stat(keysPath)
	keys, err := natsauth.LoadOrCreate(keysPath)
	if err != nil {
		return err
	}
	if *storeDir == "" {
		*storeDir = filepath.Join(abs, "jetstream")
	}
	resolver := filepath.Join(abs, "accounts")
	if err := os.MkdirAll(resolver, 0o700); err != nil {
		return err
	}
	auth, err := keys.ServerConfig(resolver)
	if err != nil {
		return err
	}
	conf := fmt.Sprintf("port: %d\nmax_payload: 8MB\njetstream: {\n  store_dir: %q\n  domain: hub\n}\nleafnodes: {\n  port: %d\n}\n%s",
		*port, *storeDir, *leafPort, auth)
	if err := os.WriteFile(filepath.Join(abs, natsConfFile), []byte(conf), 0o600); err != nil {
		return err
	}
	creds, err := keys.ServiceCreds("infrapilot")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(abs, serviceCredFile), creds, 0o600); err != nil {
		return err
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		fmt.Fprintf(stdout, "created operator %s\n", keys.OperatorPublicKey())
	} else {
		fmt.Fprintf(stdout, "kept the existing keys of operator %s\n", keys.OperatorPublicKey())
	}
	fmt.Fprintf(stdout, "wrote %s, %s and %s in %s\n", natsKeysFile, natsConfFile, serviceCredFile, abs)
	fmt.Fprintf(stdout, "next: nats-server -c %s\n", filepath.Join(abs, natsConfFile))
	return nil
}
