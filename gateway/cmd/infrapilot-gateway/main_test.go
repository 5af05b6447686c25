package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/gateway"
	"github.com/infrapilot/infrapilot/gateway/internal/natstest"
)

func TestHelp(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	err := run(context.Background(), []string{"--help"}, func(string) string { return "" }, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("run --help: %v", err)
	}
	for _, want := range []string{"-http", "INFRAPILOT_HTTP", "-nats-url", "INFRAPILOT_NATS_URL", "-nats-creds", "-services", "INFRAPILOT_SERVICES",
		"-auth-rate-limit", "INFRAPILOT_AUTH_RATE_LIMIT", "-jwks-refresh", "INFRAPILOT_JWKS_REFRESH",
		"-apikey-cache-ttl", "INFRAPILOT_APIKEY_CACHE_TTL", "-membership-cache-ttl", "INFRAPILOT_MEMBERSHIP_CACHE_TTL"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("usage lacks %s:\n%s", want, out.String())
		}
	}
}

func TestFlagsOverrideEnv(t *testing.T) {
	t.Parallel()
	env := map[string]string{"INFRAPILOT_HTTP": "0.0.0.0:9000", "INFRAPILOT_NATS_URL": "nats://env:4222", "INFRAPILOT_SERVICES": "auth"}
	o, err := parseFlags([]string{"--nats-url", "nats://flag:4222"}, func(k string) string { return env[k] }, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if o.http != "0.0.0.0:9000" || o.natsURL != "nats://flag:4222" || o.services != "auth" {
		t.Fatalf("options %+v", o)
	}
	if _, err := parseFlags([]string{"extra"}, func(string) string { return "" }, &bytes.Buffer{}); err == nil {
		t.Fatal("stray argument accepted")
	}
}

// TestAuthFlags: the authentication settings come from flags or the
// environment; a bad environment value is an error unless a flag replaces
// it; out-of-range values are refused by the config check.
func TestAuthFlags(t *testing.T) {
	t.Parallel()
	none := func(string) string { return "" }
	o, err := parseFlags(nil, none, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if o.authRateLimit != gateway.DefaultAuthRateLimit || o.jwksRefresh != gateway.DefaultJWKSRefresh ||
		o.apiKeyCacheTTL != gateway.DefaultAPIKeyCacheTTL || o.membershipTTL != gateway.DefaultMembershipCacheTTL {
		t.Fatalf("defaults %+v", o)
	}
	env := map[string]string{"INFRAPILOT_AUTH_RATE_LIMIT": "50", "INFRAPILOT_JWKS_REFRESH": "30s",
		"INFRAPILOT_APIKEY_CACHE_TTL": "1s", "INFRAPILOT_MEMBERSHIP_CACHE_TTL": "-1s"}
	o, err = parseFlags([]string{"--auth-rate-limit", "-1"}, func(k string) string { return env[k] }, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if o.authRateLimit != -1 || o.jwksRefresh != 30*time.Second || o.apiKeyCacheTTL != time.Second || o.membershipTTL != -time.Second {
		t.Fatalf("options %+v", o)
	}
	bad := map[string]string{"INFRAPILOT_AUTH_RATE_LIMIT": "lots", "INFRAPILOT_JWKS_REFRESH": "soon"}
	if _, err := parseFlags(nil, func(k string) string { return bad[k] }, &bytes.Buffer{}); err == nil ||
		!strings.Contains(err.Error(), "INFRAPILOT_AUTH_RATE_LIMIT") || !strings.Contains(err.Error(), "INFRAPILOT_JWKS_REFRESH") {
		t.Fatalf("bad environment: %v", err)
	}
	if _, err := parseFlags([]string{"--auth-rate-limit", "5", "--jwks-refresh", "1m"}, func(k string) string { return bad[k] }, &bytes.Buffer{}); err != nil {
		t.Fatalf("flags replacing a bad environment: %v", err)
	}
	err = run(context.Background(), []string{"--apikey-cache-ttl", "1m"}, none, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "api key cache ttl") {
		t.Fatalf("run with a long api key cache: %v", err)
	}
}

// TestRun drives the binary's wiring end to end: it serves, answers
// /readyz against a real NATS server, and stops cleanly on cancel.
func TestRun(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	ctx, cancel := context.WithCancel(context.Background())
	var logs lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--http", addr, "--nats-url", srv.ClientURL(), "--services", ""},
			func(string) string { return "" }, &logs)
	}()
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not stop")
	}
	if !strings.Contains(logs.String(), `"msg":"gateway stopped"`) {
		t.Fatalf("logs:\n%s", logs.String())
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
