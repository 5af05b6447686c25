package nginx_test

import (
	"context"
	"github.com/infrapilot/infrapilot/agent/internal/nginx/nginxtest"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// A hand-edited host file that someone reloaded nginx with is reported,
// with its host, and restored: the file's content is back and nginx
// serves the desired configuration again. An extra file is reported and
// is not in the restored generation.
func TestDriftIsReportedAndRestored(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	one, two := upstream(t, "one"), upstream(t, "two")
	pa, pb := freePort(t), freePort(t)
	goodA := hostConf(pa, local(one))
	first := r.apply(r.desired(1, host{"host-a", goodA, nil}, host{"host-b", hostConf(pb, local(one)), nil}))
	if !first.Applied {
		t.Fatalf("apply: %+v", first)
	}
	if d, ok := r.c.CheckDrift(context.Background()); ok {
		t.Fatalf("drift right after an apply: %+v", d)
	}

	live := filepath.Join(r.dir, "current", "hosts")
	if err := os.WriteFile(filepath.Join(live, "host-a.conf"), []byte(hostConf(pa, local(two))), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(live, "extra.conf"), []byte("# someone's\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(live, "host-b.conf")); err != nil {
		t.Fatal(err)
	}
	reloadByHand(t, r)
	serves(t, pa, "two") // the hand edit is live

	d, ok := r.c.CheckDrift(context.Background())
	if !ok || !d.Restored || d.Error != "" || d.Revision != 1 {
		t.Fatalf("drift: %+v %v", d, ok)
	}
	if want := []string{"hosts/extra.conf", "hosts/host-a.conf", "hosts/host-b.conf"}; !slices.Equal(d.Files, want) {
		t.Fatalf("drifted files %v, want %v", d.Files, want)
	}
	if want := []string{"host-a", "host-b"}; !slices.Equal(d.HostIDs, want) {
		t.Fatalf("drifted hosts %v, want %v", d.HostIDs, want)
	}
	if r.live("hosts/host-a.conf") != goodA {
		t.Fatal("host-a's file was not restored")
	}
	if r.live("hosts/extra.conf") != "" {
		t.Fatal("the extra file is live")
	}
	serves(t, pa, "one")
	serves(t, pb, "one")
	if d, ok := r.c.CheckDrift(context.Background()); ok {
		t.Fatalf("drift after the restore: %+v", d)
	}
}

// A restarted agent (a new Controller on the same directory) knows what
// is live: the same revision is not applied again (but nginx, stopped
// meanwhile as by a reboot, is started again), a lower one is stale, and
// a hand edit made while it was down is found and restored.
func TestRestartKeepsLastKnownGood(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	one, two := upstream(t, "one"), upstream(t, "two")
	pa := freePort(t)
	goodA := hostConf(pa, local(one))
	d := r.desired(5, host{"host-a", goodA, nil})
	first := r.apply(d)
	if !first.Applied {
		t.Fatalf("apply: %+v", first)
	}
	if err := os.WriteFile(filepath.Join(r.dir, "current", "hosts", "host-a.conf"), []byte(hostConf(pa, local(two))), 0o644); err != nil {
		t.Fatal(err)
	}

	nginxtest.Stop(t, filepath.Join(r.dir, "run", "nginx.pid"))
	r.c = r.controller()
	again := r.apply(d)
	if !again.Applied || again.Generation != first.Generation || !again.AppliedAt.Equal(first.AppliedAt) {
		t.Fatalf("same revision after a restart: %+v", again)
	}
	serves(t, pa, "two") // started on the live (hand-edited) files
	if res := r.apply(r.desired(4, host{"host-a", goodA, nil})); !res.Stale {
		t.Fatalf("lower revision after a restart: %+v", res)
	}
	drift, ok := r.c.CheckDrift(context.Background())
	if !ok || !drift.Restored || !slices.Equal(drift.Files, []string{"hosts/host-a.conf"}) || !slices.Equal(drift.HostIDs, []string{"host-a"}) {
		t.Fatalf("drift after a restart: %+v %v", drift, ok)
	}
	if r.live("hosts/host-a.conf") != goodA {
		t.Fatal("not restored")
	}
	serves(t, pa, "one")
}

// reloadByHand is what an administrator does after editing a file.
func reloadByHand(t *testing.T, r *rig) {
	t.Helper()
	out, err := runNginx(t, "-e", "/dev/null", "-s", "reload", "-c", filepath.Join(r.dir, "current", "nginx.conf"))
	if err != nil {
		t.Fatalf("nginx -s reload: %v: %s", err, out)
	}
}
