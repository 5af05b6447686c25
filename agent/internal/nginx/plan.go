package nginx

import "github.com/infrapilot/infrapilot/events"

// plan is what goes into a generation while failing hosts are left out:
// the desired files, except those of failed hosts, which keep their
// last-known-good files unless those fail too (or need what is gone).
type plan struct {
	desired []events.NginxFile
	order   []string                      // desired hosts, in order
	lkg     map[string][]events.NginxFile // last-known-good files per host
	failed  map[string]string             // host → first reason
	dropped map[string]bool               // failed host without a usable fallback
}

func newPlan(d events.NginxDesired, lkg []events.NginxFile) *plan {
	p := &plan{desired: d.Files, lkg: map[string][]events.NginxFile{}, failed: map[string]string{}, dropped: map[string]bool{}}
	seen := map[string]bool{}
	for _, f := range d.Files {
		if f.HostID != "" && !seen[f.HostID] {
			seen[f.HostID] = true
			p.order = append(p.order, f.HostID)
		}
	}
	for _, f := range lkg {
		if f.HostID != "" && seen[f.HostID] {
			p.lkg[f.HostID] = append(p.lkg[f.HostID], f)
		}
	}
	return p
}

// fail leaves host out for reason (the first reason is kept).
func (p *plan) fail(host, reason string) {
	if _, ok := p.failed[host]; !ok {
		p.failed[host] = reason
	}
}

// exclude leaves out host's file that nginx blamed with line; it reports
// whether that changed anything (false: nothing more can be left out).
func (p *plan) exclude(host, line string) bool {
	if _, ok := p.failed[host]; !ok {
		p.failed[host] = line
		return true
	}
	if !p.dropped[host] && len(p.lkg[host]) > 0 {
		p.dropped[host] = true // its previous file fails as well
		return true
	}
	return false
}

// files is the generation's content under the plan.
func (p *plan) files() []events.NginxFile {
	var out []events.NginxFile
	seen := map[string]bool{}
	for _, f := range p.desired {
		if _, failed := p.failed[f.HostID]; f.HostID == "" || !failed {
			out = append(out, f)
			seen[f.Path] = true
		}
	}
	for _, h := range p.order {
		if _, failed := p.failed[h]; !failed || p.dropped[h] {
			continue
		}
		for _, f := range p.lkg[h] {
			if !seen[f.Path] {
				out = append(out, f)
				seen[f.Path] = true
			}
		}
	}
	return out
}

// results is every desired host's outcome.
func (p *plan) results() []events.NginxHostResult {
	out := make([]events.NginxHostResult, 0, len(p.order))
	for _, h := range p.order {
		if reason, failed := p.failed[h]; failed {
			out = append(out, events.NginxHostResult{HostID: h, Status: events.NginxHostFailed, Error: reason})
		} else {
			out = append(out, events.NginxHostResult{HostID: h, Status: events.NginxHostApplied})
		}
	}
	return out
}
