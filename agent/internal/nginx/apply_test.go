package nginx_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infrapilot/infrapilot/events"
)

// Create, update and delete through a real nginx (started by the first
// apply), with requests reaching real upstreams; the same revision again
// gives the same result, a lower one is stale, old generations are
// pruned.
func TestApplyCreateUpdateDelete(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	one, two, three := upstream(t, "one"), upstream(t, "two"), upstream(t, "three")
	pa, pb := freePort(t), freePort(t)

	res := r.apply(r.desired(1, host{"host-a", hostConf(pa, local(one)), nil}))
	if !res.Applied || res.Error != "" || hostStatus(res, "host-a").Status != events.NginxHostApplied || res.Nginx.Version == "" {
		t.Fatalf("create: %+v", res)
	}
	serves(t, pa, "one")

	res = r.apply(r.desired(2, host{"host-a", hostConf(pa, local(two)), nil}, host{"host-b", hostConf(pb, local(three)), nil}))
	if !res.Applied || len(res.Hosts) != 2 {
		t.Fatalf("update: %+v", res)
	}
	serves(t, pa, "two")
	serves(t, pb, "three")

	d3 := r.desired(3, host{"host-b", hostConf(pb, local(one)), nil})
	res3 := r.apply(d3)
	if !res3.Applied || len(res3.Hosts) != 1 {
		t.Fatalf("delete: %+v", res3)
	}
	serves(t, pb, "one")
	gone(t, pa) // old workers let go of its socket as they finish
	if _, err := os.Stat(filepath.Join(r.dir, "current", "hosts", "host-a.conf")); !os.IsNotExist(err) {
		t.Fatalf("the deleted host's file is live: %v", err)
	}

	again := r.apply(d3)
	if !again.Applied || again.Generation != res3.Generation || !again.AppliedAt.Equal(res3.AppliedAt) {
		t.Fatalf("same revision again: %+v, first %+v", again, res3)
	}
	stale := r.apply(r.desired(2, host{"host-a", hostConf(pa, local(two)), nil}))
	if !stale.Stale || stale.Applied || stale.Generation != res3.Generation {
		t.Fatalf("stale: %+v", stale)
	}
	serves(t, pb, "one")

	for rev := uint64(4); rev <= 6; rev++ {
		if res := r.apply(r.desired(rev, host{"host-b", hostConf(pb, local(two)), nil})); !res.Applied {
			t.Fatalf("revision %d: %+v", rev, res)
		}
	}
	gens, _ := os.ReadDir(filepath.Join(r.dir, "gen"))
	if len(gens) != 3 {
		t.Fatalf("%d generations kept, want 3", len(gens))
	}
	st, err := os.Stat(filepath.Join(r.dir, "state.json"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("state.json: %v %v", st, err)
	}
}

// A host whose file fails `nginx -t` is reported failed with nginx's own
// line; its previous configuration keeps serving, its file is not
// deleted, and the other hosts of the same revision are applied. A new
// host that fails is simply not served.
func TestFailingHostKeepsPreviousConfig(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	one, two := upstream(t, "one"), upstream(t, "two")
	pa, pb, pc, pd := freePort(t), freePort(t), freePort(t), freePort(t)
	goodA := hostConf(pa, local(one))
	if res := r.apply(r.desired(1, host{"host-a", goodA, nil}, host{"host-b", hostConf(pb, local(one)), nil})); !res.Applied {
		t.Fatalf("revision 1: %+v", res)
	}
	serves(t, pa, "one")

	res := r.apply(r.desired(2,
		host{"host-a", hostConf(pa, "http://nope.invalid"), nil},
		host{"host-b", hostConf(pb, local(two)), nil},
		host{"host-c", hostConf(pc, local(two)), nil},
		host{"host-d", hostConf(pd, "http://nope2.invalid"), nil}))
	if !res.Applied || res.Error != "" {
		t.Fatalf("revision 2: %+v", res)
	}
	a := hostStatus(res, "host-a")
	wantA := `nginx: [emerg] host not found in upstream "nope.invalid" in ` +
		filepath.Join(r.dir, "gen", res.Generation, "hosts", "host-a.conf") + ":4"
	if a.Status != events.NginxHostFailed || a.Error != wantA {
		t.Fatalf("host-a: %+v, want error %q", a, wantA)
	}
	if d := hostStatus(res, "host-d"); d.Status != events.NginxHostFailed || !strings.Contains(d.Error, `host not found in upstream "nope2.invalid"`) {
		t.Fatalf("host-d: %+v", d)
	}
	for _, id := range []string{"host-b", "host-c"} {
		if h := hostStatus(res, id); h.Status != events.NginxHostApplied {
			t.Fatalf("%s: %+v", id, h)
		}
	}
	serves(t, pb, "two")
	serves(t, pc, "two")
	serves(t, pa, "one") // the old configuration of host-a still serves
	if got := r.live("hosts/host-a.conf"); got != goodA {
		t.Fatalf("host-a's live file is %q, want the previous one", got)
	}
	if _, err := get(pd); err == nil {
		t.Fatal("the failed new host answers")
	}

	res = r.apply(r.desired(3, host{"host-a", hostConf(pa, local(two)), nil}, host{"host-b", hostConf(pb, local(two)), nil}))
	if !res.Applied || hostStatus(res, "host-a").Status != events.NginxHostApplied {
		t.Fatalf("revision 3: %+v", res)
	}
	serves(t, pa, "two")
}

// An error in nginx.conf fails the whole apply: the last-known-good set
// keeps serving and the revision is not recorded (it can be retried).
func TestMainFileFailureKeepsLastKnownGood(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	one, two := upstream(t, "one"), upstream(t, "two")
	pa := freePort(t)
	first := r.apply(r.desired(1, host{"host-a", hostConf(pa, local(one)), nil}))
	if !first.Applied {
		t.Fatalf("revision 1: %+v", first)
	}
	bad := r.desired(2, host{"host-a", hostConf(pa, local(two)), nil})
	bad.Files[0].Content = strings.Replace(bad.Files[0].Content, "worker_processes 1;", "worker_processes 1;\nbogus_directive on;", 1)
	res := r.apply(bad)
	if res.Applied || !strings.HasPrefix(res.Error, `nginx: [emerg] unknown directive "bogus_directive" in `) || res.Generation != first.Generation {
		t.Fatalf("bad main file: %+v", res)
	}
	serves(t, pa, "one")
	if got, _ := getURL(fmt.Sprintf("http://127.0.0.1:%d/infrapilot-revision", r.checkPort)); got != "1" {
		t.Fatalf("check server answers %q", got)
	}
	if res := r.apply(r.desired(2, host{"host-a", hostConf(pa, local(two)), nil})); !res.Applied {
		t.Fatalf("revision 2 fixed: %+v", res)
	}
	serves(t, pa, "two")
}

// A configuration nginx -t accepts but the master refuses at reload (a
// port already taken) is detected from the error log, and the previous
// generation is swapped back and reloaded.
func TestReloadFailureRestoresPrevious(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	one, two := upstream(t, "one"), upstream(t, "two")
	pa := freePort(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	pt := taken.Addr().(*net.TCPAddr).Port
	first := r.apply(r.desired(1, host{"host-a", hostConf(pa, local(one)), nil}))
	if !first.Applied {
		t.Fatalf("revision 1: %+v", first)
	}
	res := r.apply(r.desired(2, host{"host-a", hostConf(pa, local(two)), nil}, host{"host-t", hostConf(pt, local(two)), nil}))
	if res.Applied || !strings.Contains(res.Error, "bind() to 127.0.0.1:") || !strings.Contains(res.Error, "Address already in use") {
		t.Fatalf("reload failure: %+v", res)
	}
	if target, _ := os.Readlink(filepath.Join(r.dir, "current")); target != filepath.Join("gen", first.Generation) {
		t.Fatalf("current -> %s, want generation %s", target, first.Generation)
	}
	serves(t, pa, "one")
}

// A host whose certificate is not on disk is not applied; the others are.
func TestMissingCertificateFailsHost(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	one := upstream(t, "one")
	pa, pb := freePort(t), freePort(t)
	cert := filepath.Join(r.dir, "certs", "host-b", "fullchain.pem")
	d := r.desired(1, host{"host-a", hostConf(pa, local(one)), nil}, host{"host-b", hostConf(pb, local(one)), []string{cert}})
	res := r.apply(d)
	if b := hostStatus(res, "host-b"); !res.Applied || b.Status != events.NginxHostFailed || b.Error != "certificate "+cert+" is missing" {
		t.Fatalf("missing certificate: %+v", res)
	}
	serves(t, pa, "one")
	if r.live("hosts/host-b.conf") != "" {
		t.Fatal("the host without its certificate is live")
	}
	if err := os.MkdirAll(filepath.Dir(cert), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cert, []byte("pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	d.Revision = 2
	d.Files[0].Content = mainConf(r.dir, r.checkPort, 2, "", "")
	if res := r.apply(d); hostStatus(res, "host-b").Status != events.NginxHostApplied {
		t.Fatalf("with the certificate: %+v", res)
	}
	serves(t, pb, "one")
}

// External mode touches nothing: the files and nginx stay as they are,
// and drift is no longer restored.
func TestExternalModeTouchesNothing(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	one := upstream(t, "one")
	pa := freePort(t)
	first := r.apply(r.desired(1, host{"host-a", hostConf(pa, local(one)), nil}))
	res := r.apply(events.NginxDesired{V: 1, Revision: 2, Mode: events.ProxyModeExternal})
	if res.Applied || res.Error != "" || res.Hosts != nil || res.Stale {
		t.Fatalf("external: %+v", res)
	}
	if target, _ := os.Readlink(filepath.Join(r.dir, "current")); target != filepath.Join("gen", first.Generation) {
		t.Fatalf("current -> %s", target)
	}
	serves(t, pa, "one")
	hand := filepath.Join(r.dir, "current", "hosts", "host-a.conf")
	if err := os.WriteFile(hand, []byte("# mine now\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if d, ok := r.c.CheckDrift(context.Background()); ok {
		t.Fatalf("drift reported in external mode: %+v", d)
	}
	if b, _ := os.ReadFile(hand); string(b) != "# mine now\n" {
		t.Fatal("a file was restored in external mode")
	}
}

// Test runs nginx -t on a desired state without applying it.
func TestTestOnly(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	pa := freePort(t)
	ok := r.c.Test(context.Background(), r.desired(1, host{"host-a", hostConf(pa, local(1)), nil}))
	if !ok.OK || !strings.Contains(ok.Output, "test is successful") {
		t.Fatalf("good: %+v", ok)
	}
	bad := r.c.Test(context.Background(), r.desired(1, host{"host-a", hostConf(pa, "http://nope.invalid"), nil}))
	if bad.OK || !strings.Contains(bad.Output, `[emerg] host not found in upstream "nope.invalid"`) {
		t.Fatalf("bad: %+v", bad)
	}
	if gens, _ := os.ReadDir(filepath.Join(r.dir, "gen")); len(gens) != 0 {
		t.Fatalf("Test left %d generations", len(gens))
	}
	if _, err := os.Lstat(filepath.Join(r.dir, "current")); !os.IsNotExist(err) {
		t.Fatal("Test made a generation live")
	}
}

// Paths that would write outside the generation are refused before
// anything is written.
func TestInvalidDesiredStateIsRefused(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	for _, p := range []string{"../evil.conf", "/etc/nginx/nginx.conf", "hosts/../../x.conf", "Hosts/A.conf", "hosts//a.conf", "hosts/a b.conf", "./nginx.conf"} {
		d := r.desired(1)
		d.Files = append(d.Files, events.NginxFile{Path: p, Content: "x", HostID: "h"})
		if res := r.apply(d); res.Applied || !strings.HasPrefix(res.Error, "invalid desired state: ") {
			t.Fatalf("%q: %+v", p, res)
		}
	}
	d := r.desired(1)
	d.Files = d.Files[:0]
	if res := r.apply(d); !strings.Contains(res.Error, "no nginx.conf") {
		t.Fatalf("no main file: %+v", res)
	}
	if gens, _ := os.ReadDir(filepath.Join(r.dir, "gen")); len(gens) != 0 {
		t.Fatalf("%d generations written", len(gens))
	}
}
