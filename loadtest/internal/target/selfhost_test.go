//go:build linux

package target

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSelfHost runs the whole --self-host path against the real binary:
// build infrapilot from the repository (with the pprof overlay), start
// `infrapilot dev` on a temporary data dir (its own Postgres; no
// ClickHouse, to keep the test short), log in, create an API key; the
// target then answers authenticated API calls, service requests over NATS
// with the service credentials (moving the org to "enterprise"), and
// pprof. Close stops the process and removes the directory.
func TestSelfHost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var log bytes.Buffer
	f := Flags{NoClickHouse: true}
	tg, err := f.Resolve(ctx, &log)
	if err != nil {
		t.Fatalf("resolve: %v\n%s", err, log.String())
	}
	closed := false
	defer func() {
		if !closed {
			_ = tg.Close()
		}
	}()
	if !tg.SelfHosted || tg.PID == 0 || tg.OrgID == "" || tg.UserID == "" || !strings.HasPrefix(tg.Token, "ipk_") ||
		tg.NATSURL == "" || tg.NATSCreds == "" || tg.PostgresURL == "" || tg.LeafURL == "" || tg.ClickHouseURL != "" {
		t.Fatalf("target %+v", tg)
	}
	if !strings.Contains(log.String(), "self-host: ready") {
		t.Errorf("progress:\n%s", log.String())
	}

	var org struct {
		ID   string `json:"id"`
		Plan string `json:"plan"`
	}
	if err := tg.Do(ctx, http.MethodGet, "/orgs/"+tg.OrgID, nil, &org); err != nil || org.ID != tg.OrgID {
		t.Fatalf("GET /orgs/%s with the API key: %+v, %v", tg.OrgID, org, err)
	}
	if err := tg.SetPlan(ctx, tg.OrgID, "enterprise"); err != nil {
		t.Fatalf("set plan over NATS: %v", err)
	}
	if err := tg.Do(ctx, http.MethodGet, "/orgs/"+tg.OrgID, nil, &org); err != nil || org.Plan != "enterprise" {
		t.Fatalf("after set plan: %+v, %v", org, err)
	}
	var apiErr *APIError
	if err := tg.DoAs(ctx, "ipk_wrong", tg.OrgID, http.MethodGet, "/agents", nil, nil); !errors.As(err, &apiErr) || apiErr.Kind() != "http_401" {
		t.Errorf("a wrong key: %v", err)
	}

	if tg.PprofURL == "" {
		t.Fatal("no pprof listener in the built binary")
	}
	resp, err := http.Get(tg.PprofURL + "/cmdline")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("pprof: %v %v", resp, err)
	}
	resp.Body.Close()

	dataDir, pid := tg.DataDir, tg.PID
	closed = true
	if err := tg.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("data dir %s still there: %v", dataDir, err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("infrapilot dev (pid %d) still running: %v", pid, err)
	}
}
