package proxy_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/proxy"
)

// TestTwoReplicasRenderOneSequence: with two replicas taking creates for
// one agent concurrently, the compare-and-set on the desired state's KV
// revision keeps one sequence of revisions (never two different states
// under one number) and loses no host.
func TestTwoReplicasRenderOneSequence(t *testing.T) {
	t.Parallel()
	h := startReplicas(t, proxy.Config{}, 2)
	w, ag := h.org()
	const n = 12
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var host events.ProxyHost
			if e := h.call(w, events.OpProxyHostCreate, hostWrite(ag.id, fmt.Sprintf("h%d.example.com", i)), &host); e != nil {
				t.Errorf("create %d: %+v", i, e)
			}
			ids[i] = host.ID
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	checkFor(t, func() error {
		d := h.desired(w.org, ag.id)
		for _, id := range ids {
			if _, ok := fileOf(d, id); !ok {
				return errorf("host %s missing from revision %d", id, d.Revision)
			}
		}
		return nil
	})
	for _, id := range ids {
		h.waitStatus(w, ag.id, id, events.ProxyStatusApplied, "")
	}
	seen := map[uint64]string{}
	for _, d := range ag.applies() {
		var paths string
		for _, f := range d.Files {
			paths += f.Path + " "
		}
		if prev, ok := seen[d.Revision]; ok && prev != paths {
			t.Fatalf("revision %d pushed with two different states:\n%s\n%s", d.Revision, prev, paths)
		}
		seen[d.Revision] = paths
	}
}
