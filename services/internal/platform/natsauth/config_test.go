package natsauth_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/natsx"
	"github.com/nats-io/nats-server/v2/server"
)

// ServerConfig runs an external server (or cluster) the way production
// does: a configuration file with the operator, the system account, a full
// resolver and the accounts preloaded. Revocations pushed to it survive a
// restart with the same file, since a preload never replaces a newer JWT.
func TestServerConfigRunsAnExternalServerInOperatorMode(t *testing.T) {
	t.Parallel()
	k := newKeys(t)
	dir := t.TempDir()
	conf, err := k.ServerConfig(filepath.Join(dir, "accounts"))
	if err != nil {
		t.Fatal(err)
	}
	h := &hub{t: t, keys: k, dir: dir}
	if h.port, err = natsx.FreePort("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if h.leafPort, err = natsx.FreePort("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	conf += fmt.Sprintf("listen: \"127.0.0.1:%d\"\nleafnodes { listen: \"127.0.0.1:%d\" }\njetstream { store_dir: %q, domain: hub }\n",
		h.port, h.leafPort, filepath.Join(dir, "js"))
	path := filepath.Join(dir, "nats-server.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	start := func() {
		t.Helper()
		opts, err := server.ProcessConfigFile(path)
		if err != nil {
			t.Fatalf("config rejected: %v\n%s", err, conf)
		}
		opts.NoSigs, opts.NoLog = true, true
		srv, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		srv.Start()
		if !srv.ReadyForConnections(wait) {
			t.Fatal("server not ready")
		}
		h.srv = srv
	}
	start()
	t.Cleanup(h.stop)

	svc, _ := h.services()
	rv := h.revoker()
	ctx := ctxT(t)
	if err := rv.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	creds1, pub1, err := k.AgentCreds("o1", "a1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	l := h.startLeaf(creds1)
	l.waitConnected(t)
	answer(t, l.client(t, "o1", "a1"), "o1", "a1")
	checkRequest(t, svc, events.AgentCommand("o1", "a1", "ping"), "a1")
	if err := rv.Revoke(ctx, pub1); err != nil {
		t.Fatal(err)
	}
	natsCheck(t, func() error {
		if n := h.srv.NumLeafNodes(); n != 0 {
			return fmt.Errorf("revoked agent still connected")
		}
		return nil
	})

	h.stop()
	start()
	refused(t, h, creds1)
	if err := h.revoker().Sync(ctx); err != nil {
		t.Fatal(err)
	}
	refused(t, h, creds1)
	h.agentOnLeaf("o1", "a2")
}
