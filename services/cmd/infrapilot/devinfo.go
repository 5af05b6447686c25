package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Files `infrapilot dev` writes into its data directory while it runs, so
// that tools on the same machine (the load harness, scripts) can find and
// reach it without parsing its output.
const (
	// devInfoFile describes the running instance (devInfo); it is removed
	// when dev stops.
	devInfoFile = "dev.json"
	// devServiceCredsFile holds NATS credentials of the APP account (a
	// trusted service's): the same secret class as nats-keys.json beside
	// it, so it is written 0600.
	devServiceCredsFile = "service.creds"
)

// devInfo is the content of dev.json.
type devInfo struct {
	PID           int       `json:"pid"`
	StartedAt     time.Time `json:"started_at"`
	Version       string    `json:"version"`
	APIURL        string    `json:"api_url"`
	NATSURL       string    `json:"nats_url"`
	LeafURL       string    `json:"leaf_url,omitempty"`
	PostgresURL   string    `json:"postgres_url"`
	ClickHouseURL string    `json:"clickhouse_url,omitempty"`
	// ServiceCreds is the path of the service credentials file.
	ServiceCreds string `json:"service_creds"`
	AdminEmail   string `json:"admin_email,omitempty"`
}

// writeDevInfo writes service.creds and then dev.json (so a reader that
// sees dev.json finds the credentials), each atomically and 0600. The
// returned function removes dev.json.
func writeDevInfo(dataDir string, info devInfo, creds []byte) (func(), error) {
	info.ServiceCreds = filepath.Join(dataDir, devServiceCredsFile)
	if err := writeFileAtomic(info.ServiceCreds, creds); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dataDir, devInfoFile)
	if err := writeFileAtomic(path, append(b, '\n')); err != nil {
		return nil, err
	}
	return func() { _ = os.Remove(path) }, nil
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}
