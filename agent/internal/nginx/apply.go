package nginx

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/infrapilot/infrapilot/events"
)

// applyTimeout bounds one Apply. An apply runs to its end even when the
// caller stops waiting: stopping half-way could leave a generation
// swapped in but not checked, or not restored.
const applyTimeout = 2 * time.Minute

// Apply makes d the live configuration, as far as nginx accepts it:
//
//   - a revision below the applied one is ignored (Stale); the applied
//     revision again gives the result it gave;
//   - in external mode nothing of nginx is touched (and drift is no
//     longer checked);
//   - the files are staged as a new generation; a host whose required
//     certificate is missing, or whose file nginx names in a failing
//     `nginx -t`, is left out, keeping its last-known-good file if it
//     had one, and reported failed with the reason (nginx's exact error
//     line); this repeats while it makes progress;
//   - an error in nginx.conf, or one nginx does not place in a host's
//     file, fails the whole apply: the live generation stays;
//   - otherwise the generation is swapped in, nginx reloaded (started if
//     not running) and the check server polled until it answers the
//     revision; if that fails, the previous generation is swapped back
//     and reloaded, and Error says what failed.
//
// The result is the same for every call; it says what is live.
func (c *Controller) Apply(ctx context.Context, d events.NginxDesired) events.NginxApplyResult {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), applyTimeout)
	defer cancel()
	info := c.Info(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	start := time.Now()
	res := c.apply(ctx, d, info)
	res.V, res.Revision, res.Nginx = 1, d.Revision, info
	if res.AppliedAt.IsZero() {
		res.AppliedAt = c.cfg.Now().UTC()
	}
	c.cfg.Log.Info("nginx: apply", "revision", d.Revision, "applied", res.Applied, "stale", res.Stale,
		"generation", res.Generation, "error", res.Error, "failed_hosts", countFailed(res.Hosts), "took", time.Since(start))
	return res
}

func countFailed(hs []events.NginxHostResult) int {
	n := 0
	for _, h := range hs {
		if h.Status == events.NginxHostFailed {
			n++
		}
	}
	return n
}

func (c *Controller) apply(ctx context.Context, d events.NginxDesired, info events.NginxAgentInfo) events.NginxApplyResult {
	if d.Revision < c.st.Revision {
		return events.NginxApplyResult{Stale: true, Applied: false, Generation: c.st.Generation}
	}
	if d.Revision == c.st.Revision && c.st.Result != nil {
		r := *c.st.Result
		if !c.st.External {
			if err := c.ensureRunning(ctx); err != nil {
				r.Error = err.Error()
			}
		}
		return r
	}
	if err := validate(d); err != nil {
		return events.NginxApplyResult{Error: "invalid desired state: " + err.Error(), Generation: c.st.Generation}
	}
	if d.Mode == events.ProxyModeExternal {
		r := events.NginxApplyResult{V: 1, Revision: d.Revision, Nginx: info, AppliedAt: c.cfg.Now().UTC()}
		c.st.External, c.st.Revision, c.st.Result = true, d.Revision, &r
		if err := c.save(); err != nil {
			r.Error = err.Error()
		}
		return r
	}

	files, hosts, gen, err := c.stageValid(ctx, d)
	if err != nil {
		return events.NginxApplyResult{Error: err.Error(), Hosts: failedOnly(hosts), Generation: c.st.Generation}
	}
	if err := c.activate(ctx, gen, d.Revision, d.CheckPort); err != nil {
		msg := err.Error()
		if rerr := c.restore(ctx); rerr != nil {
			msg += "; restoring the previous configuration failed too: " + rerr.Error()
		}
		_ = os.RemoveAll(c.path("gen", gen))
		return events.NginxApplyResult{Error: msg, Hosts: failedOnly(hosts), Generation: c.st.Generation}
	}
	r := events.NginxApplyResult{V: 1, Revision: d.Revision, Applied: true, Hosts: hosts, Generation: gen,
		Nginx: info, AppliedAt: c.cfg.Now().UTC()}
	c.st = persisted{Revision: d.Revision, Generation: gen, CheckPort: d.CheckPort, Files: files,
		Manifest: manifest(files), Result: &r}
	if err := c.save(); err != nil {
		c.cfg.Log.Error("nginx: save state", "err", err)
	}
	c.prune()
	return r
}

func failedOnly(hs []events.NginxHostResult) []events.NginxHostResult {
	var out []events.NginxHostResult
	for _, h := range hs {
		if h.Status == events.NginxHostFailed {
			out = append(out, h)
		}
	}
	return out
}

// stageValid stages d as a new generation that passes `nginx -t`,
// leaving out the hosts that fail (see Apply). It returns the files of
// the generation and every desired host's outcome; an error means the
// set cannot be made valid (the generation is removed).
func (c *Controller) stageValid(ctx context.Context, d events.NginxDesired) ([]events.NginxFile, []events.NginxHostResult, string, error) {
	p := newPlan(d, c.st.Files)
	for _, f := range d.Files {
		if miss := c.missing(f); len(miss) > 0 {
			if f.HostID == "" {
				return nil, nil, "", fmt.Errorf("%s requires %s, which is missing", f.Path, strings.Join(miss, ", "))
			}
			p.fail(f.HostID, fmt.Sprintf("certificate %s is missing", strings.Join(miss, ", ")))
		}
	}
	// A host's previous file that needs what is gone is no fallback.
	for h, fs := range p.lkg {
		for _, f := range fs {
			if len(c.missing(f)) > 0 {
				p.dropped[h] = true
			}
		}
	}
	gen := c.newGeneration()
	for {
		files := p.files()
		if err := c.stage(gen, files); err != nil {
			_ = os.RemoveAll(c.path("gen", gen))
			return nil, p.results(), "", err
		}
		out, err := c.test(ctx, gen)
		if err == nil {
			return files, p.results(), gen, nil
		}
		host, line := c.attribute(gen, out, files)
		if host == "" || !p.exclude(host, line) {
			_ = os.RemoveAll(c.path("gen", gen))
			return nil, p.results(), "", fmt.Errorf("%s", testFailure(out, err))
		}
	}
}

func testFailure(out string, err error) string {
	if m := Message(out); m != "" {
		return m
	}
	return "nginx -t: " + err.Error()
}

// test runs `nginx -t` on generation gen.
func (c *Controller) test(ctx context.Context, gen string) (string, error) {
	args := append(c.quietArgs(), "-t", "-c", c.root("gen", gen, MainFile))
	return c.cfg.Exec.Run(ctx, args...)
}

// attribute finds the host whose file nginx blames in out: the first
// failing line that names a file of generation gen.
func (c *Controller) attribute(gen, out string, files []events.NginxFile) (host, line string) {
	prefix := c.root("gen", gen) + "/"
	for _, p := range ParseProblems(out) {
		if p.File == "" {
			continue
		}
		rel, ok := strings.CutPrefix(p.File, prefix)
		if !ok {
			return "", ""
		}
		for _, f := range files {
			if f.Path == rel {
				return f.HostID, p.Line
			}
		}
		return "", ""
	}
	return "", ""
}

// Test runs `nginx -t` on d without applying it: the files are staged in
// a temporary generation that is removed afterwards.
func (c *Controller) Test(ctx context.Context, d events.NginxDesired) events.NginxTestResult {
	if err := validate(d); err != nil {
		return events.NginxTestResult{Output: "invalid desired state: " + err.Error()}
	}
	if d.Mode == events.ProxyModeExternal {
		return events.NginxTestResult{OK: true, Output: "external mode: nothing to test"}
	}
	dir, err := os.MkdirTemp(c.path("gen"), "test-")
	if err != nil {
		return events.NginxTestResult{Output: err.Error()}
	}
	name := dir[len(c.path("gen"))+1:]
	defer os.RemoveAll(dir)
	if err := c.stage(name, d.Files); err != nil {
		return events.NginxTestResult{Output: err.Error()}
	}
	out, err := c.test(ctx, name)
	if err != nil && strings.TrimSpace(out) == "" {
		out = err.Error()
	}
	return events.NginxTestResult{OK: err == nil, Output: strings.TrimSpace(out)}
}
