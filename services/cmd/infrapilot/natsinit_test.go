package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/infrapilot/infrapilot/services/internal/platform/pgtest"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// TestNATSInitAndRunWithKeys prepares a NATS server with `infrapilot
// nats-init`, starts a real nats-server from the configuration it wrote,
// and runs `infrapilot run` against it with the service credentials and
// the keys: agents enroll (credentials issued) and are deleted
// (credentials revoked through the system account) as in dev; a client
// without credentials is refused.
func TestNATSInitAndRunWithKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nats")
	natsPort, leafPort := freePort(t), freePort(t)
	var out syncBuffer
	if code := Main(context.Background(), []string{"nats-init", "--dir", dir, "--port", fmt.Sprint(natsPort), "--leaf-port", fmt.Sprint(leafPort)},
		&out, &out, func(string) string { return "" }); code != 0 {
		t.Fatalf("nats-init: %d\n%s", code, out.String())
	}
	for _, f := range []string{natsKeysFile, natsConfFile, serviceCredFile} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, err, st)
		}
	}
	// Running it again keeps the keys: issued credentials stay valid.
	keysBefore, _ := os.ReadFile(filepath.Join(dir, natsKeysFile))
	Main(context.Background(), []string{"nats-init", "--dir", dir, "--port", fmt.Sprint(natsPort), "--leaf-port", fmt.Sprint(leafPort)},
		&out, &out, func(string) string { return "" })
	if keysAfter, _ := os.ReadFile(filepath.Join(dir, natsKeysFile)); string(keysAfter) != string(keysBefore) {
		t.Fatal("nats-init replaced existing keys")
	}

	opts, err := server.ProcessConfigFile(filepath.Join(dir, natsConfFile))
	if err != nil {
		t.Fatalf("the written configuration does not load: %v", err)
	}
	opts.Host, opts.LeafNode.Host, opts.NoSigs, opts.NoLog = "127.0.0.1", "127.0.0.1", true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	if nc, err := nats.Connect(natsURL); err == nil {
		nc.Close()
		t.Fatal("a client without credentials was let in")
	}

	httpPort := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var runOut syncBuffer
	go func() {
		done <- Main(ctx, []string{"run", "--nats-url", natsURL, "--nats-creds", filepath.Join(dir, serviceCredFile),
			"--nats-keys", filepath.Join(dir, natsKeysFile), "--agent-nats-url", fmt.Sprintf("nats-leaf://127.0.0.1:%d", leafPort),
			"--pg-url", pgtest.URL(t), "--http", fmt.Sprintf("127.0.0.1:%d", httpPort), "--required-services", "auth,tenancy",
			"--auth-rate-limit", "1000", "gateway", "auth", "tenancy"}, &runOut, &runOut, func(string) string { return "" })
	}()
	defer func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("run exited %d\n%s", code, runOut.String())
			}
		case <-time.After(30 * time.Second):
			t.Error("run did not stop")
		}
	}()
	natstest.CheckFor(t, 60*time.Second, 100*time.Millisecond, func() error {
		select {
		case code := <-done:
			done <- code
			t.Fatalf("run exited early with %d:\n%s", code, runOut.String())
		default:
		}
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", httpPort))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})

	c := newAPIClient(t, httpPort)
	a := register(c, "ops@example.com", "Ops")
	tok := c.must(201, "POST", api+"/orgs/"+a.orgID+"/enrollment-tokens", a.access, a.orgID, map[string]any{"name": "prod"}).str("token")
	en := c.must(200, "POST", api+"/agents/enroll", "", "", map[string]any{"token": tok, "fingerprint": "m1",
		"hostname": "web-1", "os": "linux", "arch": "amd64", "version": "test"})
	if !strings.Contains(en.str("credentials"), "NATS USER JWT") || en.str("nats_url") != fmt.Sprintf("nats-leaf://127.0.0.1:%d", leafPort) {
		t.Fatalf("enrollment: %s", en.Raw)
	}
	c.must(http.StatusNoContent, "DELETE", api+"/agents/"+en.str("agent_id"), a.access, a.orgID, nil)
}
