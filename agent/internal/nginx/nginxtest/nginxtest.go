// Package nginxtest holds what tests of the nginx controller and of the
// agent around it share: stopping the nginx master a test's agent started.
package nginxtest

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/agent/internal/nginx"
)

// Stop ends the nginx master named by pidFile (SIGTERM: fast shutdown,
// the master stops its workers) and waits up to 10 s for it to be gone,
// then kills it. A missing or unreadable pid file means nothing runs.
func Stop(t testing.TB, pidFile string) {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	alive := func() bool { return syscall.Kill(pid, 0) == nil && !nginx.Zombie(pid) }
	deadline := time.Now().Add(10 * time.Second)
	for alive() && time.Now().Before(deadline) {
		// Polling for the process to exit: there is no event to wait on
		// for a process that is not our child.
		time.Sleep(20 * time.Millisecond)
	}
	if alive() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		t.Logf("nginx %d did not stop; killed", pid)
	}
}
