package nginx

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/infrapilot/infrapilot/events"
)

// CheckDrift compares the live configuration with what the agent wrote:
// current must point to the last-known-good generation, and that
// generation must hold exactly the files of the manifest in state.json,
// with their content. Anything else — a hand-edited host file, a deleted
// one, a file dropped next to them — is drift: CheckDrift reports the
// files (relative to the generation, "current" for the link itself) and
// the hosts they belong to, and restores the last-known-good set by
// staging it afresh as a new generation, testing, swapping, reloading
// and checking, as an apply does. ok is false when there was no drift
// (or nothing is managed: no apply yet, or external mode).
func (c *Controller) CheckDrift(ctx context.Context) (d events.NginxDrift, ok bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), applyTimeout)
	defer cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st.External || !c.st.lkg() {
		return events.NginxDrift{}, false
	}
	files, hosts := c.drifted()
	if len(files) == 0 {
		return events.NginxDrift{}, false
	}
	d = events.NginxDrift{Revision: c.st.Revision, Files: files, HostIDs: hosts}
	c.cfg.Log.Warn("nginx: drift", "files", files, "hosts", hosts)
	gen := c.newGeneration()
	if err := c.stage(gen, c.st.Files); err != nil {
		d.Error = err.Error()
		return d, true
	}
	if out, err := c.test(ctx, gen); err != nil {
		_ = os.RemoveAll(c.path("gen", gen))
		d.Error = "the last-known-good configuration no longer passes nginx -t: " + testFailure(out, err)
		return d, true
	}
	if err := c.activate(ctx, gen, c.st.Revision, c.st.CheckPort); err != nil {
		d.Error = err.Error()
		if rerr := c.restore(ctx); rerr != nil {
			d.Error += "; going back failed too: " + rerr.Error()
		}
		_ = os.RemoveAll(c.path("gen", gen))
		return d, true
	}
	c.st.Generation = gen
	if c.st.Result != nil {
		r := *c.st.Result
		r.Generation = gen
		c.st.Result = &r
	}
	if err := c.save(); err != nil {
		c.cfg.Log.Error("nginx: save state", "err", err)
	}
	c.prune()
	d.Restored = true
	return d, true
}

// drifted lists what differs between the live generation and the
// manifest.
func (c *Controller) drifted() (files, hosts []string) {
	if c.liveGeneration() != c.st.Generation {
		files = append(files, "current")
	}
	owner := map[string]string{}
	for _, f := range c.st.Files {
		owner[f.Path] = f.HostID
	}
	dir := c.path("gen", c.st.Generation)
	seen := map[string]bool{}
	hostSet := map[string]bool{}
	mark := func(rel string) {
		files = append(files, rel)
		if h := owner[rel]; h != "" {
			hostSet[h] = true
		}
	}
	_ = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return nil
		}
		rel, rerr := filepath.Rel(dir, p)
		if rerr != nil {
			return nil
		}
		seen[rel] = true
		want, known := c.st.Manifest[rel]
		if !known || !e.Type().IsRegular() {
			mark(rel)
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil || digest(string(b)) != want {
			mark(rel)
		}
		return nil
	})
	for rel := range c.st.Manifest {
		if !seen[rel] {
			mark(rel)
		}
	}
	slices.Sort(files)
	for h := range hostSet {
		hosts = append(hosts, h)
	}
	slices.Sort(hosts)
	return files, hosts
}
