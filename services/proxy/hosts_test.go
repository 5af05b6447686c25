package proxy_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/proxy"
)

var errorf = fmt.Errorf

func hostWrite(agent string, domains ...string) events.ProxyHostWrite {
	return events.ProxyHostWrite{AgentID: agent, Domains: domains, Upstream: events.Upstream{URL: "http://10.0.0.5:3000"}}
}

// waitStatus waits for the host to show status (and a message containing
// msg).
func (h *harness) waitStatus(w who, agent, id, status, msg string) events.ProxyHost {
	h.t.Helper()
	var got events.ProxyHost
	checkFor(h.t, func() error {
		got = h.host(w, agent, id)
		if got.Status != status || !strings.Contains(got.StatusMessage, msg) {
			return errorf("status %s %q, want %s containing %q", got.Status, got.StatusMessage, status, msg)
		}
		return nil
	})
	return got
}

func TestCreateRendersStoresAndPushes(t *testing.T) {
	t.Parallel()
	h := start(t, proxy.Config{})
	w, ag := h.org()

	var host events.ProxyHost
	h.must(w, events.OpProxyHostCreate, hostWrite(ag.id, "App.Example.com"), &host)
	if host.ID == "" || host.AgentID != ag.id || host.OrgID != w.org || !host.Enabled || host.Domains[0] != "app.example.com" {
		t.Fatalf("created: %+v", host)
	}
	if host.Status != events.ProxyStatusPending && host.Status != events.ProxyStatusApplied {
		t.Fatalf("status %s", host.Status)
	}

	// The complete desired state is in KV when the create answers.
	d := h.desired(w.org, ag.id)
	if d == nil || d.Revision < 1 || d.Mode != events.ProxyModeManaged || !hasPath(d, "nginx.conf") {
		t.Fatalf("desired: %+v", d)
	}
	f, ok := fileOf(d, host.ID)
	if !ok || f.Path != "hosts/"+host.ID+".conf" || !strings.Contains(f.Content, "app.example.com") || !strings.Contains(f.Content, "10.0.0.5:3000") {
		t.Fatalf("host file: %+v", f)
	}
	// It is pushed to the agent, which applies it; the reply credits it.
	checkFor(t, func() error {
		for _, got := range ag.applies() {
			if got.Revision == d.Revision && hasPath(&got, f.Path) {
				return nil
			}
		}
		return errorf("agent got %d applies, none of revision %d", len(ag.applies()), d.Revision)
	})
	got := h.waitStatus(w, ag.id, host.ID, events.ProxyStatusApplied, "")
	if got.Revision != d.Revision || got.StatusMessage != "" {
		t.Fatalf("applied host: %+v", got)
	}
	var settings events.ProxySettings
	h.must(w, events.OpProxySettingsGet, events.ProxyAgentRequest{AgentID: ag.id}, &settings)
	if settings.AppliedRevision != d.Revision || settings.DesiredRevision != d.Revision || settings.Mode != events.ProxyModeManaged ||
		settings.Nginx == nil || settings.Nginx.Version != "1.22.1" || settings.LastError != "" {
		t.Fatalf("settings: %+v", settings)
	}

	// config is exactly the text the agent was asked to apply.
	var cfg events.ProxyHostConfig
	h.must(w, events.OpProxyHostConfig, events.ProxyHostRef{AgentID: ag.id, HostID: host.ID}, &cfg)
	if cfg.File != f.Path || cfg.Config != f.Content {
		t.Fatalf("config %+v, want %s", cfg, f.Content)
	}
	var list events.List[events.ProxyHost]
	h.must(w, events.OpProxyHostsList, events.ProxyAgentRequest{AgentID: ag.id}, &list)
	if len(list.Items) != 1 || list.Items[0].ID != host.ID || list.Items[0].Networks == nil {
		t.Fatalf("list: %+v", list)
	}
	var test events.NginxTestResult
	h.must(w, events.OpProxyHostTest, events.ProxyHostRef{AgentID: ag.id, HostID: host.ID}, &test)
	if !test.OK || len(ag.got(events.OpAgentNginxTest)) != 1 {
		t.Fatalf("test: %+v", test)
	}
}

func TestFailedApplyKeepsHostWithNginxMessage(t *testing.T) {
	t.Parallel()
	h := start(t, proxy.Config{})
	w, ag := h.org()
	var host events.ProxyHost
	h.must(w, events.OpProxyHostCreate, hostWrite(ag.id, "app.example.com"), &host)
	h.waitStatus(w, ag.id, host.ID, events.ProxyStatusApplied, "")

	// nginx -t refuses the new upstream: the host shows nginx's message
	// and stays, its file still in the desired state.
	msg := `nginx: [emerg] host not found in upstream "nope.invalid:80" in /var/lib/infrapilot-nginx/gen/7/hosts/` + host.ID + `.conf:12`
	ag.set(func(a *fakeAgent) { a.failHosts[host.ID] = msg })
	up := hostWrite(ag.id, "app.example.com")
	up.HostID, up.Upstream = host.ID, events.Upstream{URL: "http://nope.invalid"}
	h.must(w, events.OpProxyHostUpdate, up, nil)
	got := h.waitStatus(w, ag.id, host.ID, events.ProxyStatusFailed, msg)
	if got.Upstream.URL != "http://nope.invalid" {
		t.Fatalf("host: %+v", got)
	}
	d := h.desired(w.org, ag.id)
	if _, ok := fileOf(d, host.ID); !ok {
		t.Fatalf("the failed host left the desired state: %+v", d)
	}

	// The same outcome through the agent's event stream (its outbox).
	other := `nginx: [emerg] invalid port in upstream "x:0"`
	h.publishEvent(w.org, ag.id, events.AgentNginxEvent{V: 1, Kind: events.AgentEventKindNginxApplied,
		Result: &events.NginxApplyResult{V: 1, Revision: d.Revision, Applied: true,
			Hosts: []events.NginxHostResult{{HostID: host.ID, Status: events.NginxHostFailed, Error: other}}}})
	h.waitStatus(w, ag.id, host.ID, events.ProxyStatusFailed, other)

	// A result for an older revision is not credited to the current
	// specification: after it (the stream is consumed in order) a drift
	// report finds the host still failed.
	h.publishEvent(w.org, ag.id, events.AgentNginxEvent{V: 1, Kind: events.AgentEventKindNginxApplied,
		Result: &events.NginxApplyResult{V: 1, Revision: d.Revision - 1, Applied: true,
			Hosts: []events.NginxHostResult{{HostID: host.ID, Status: events.NginxHostApplied}}}})
	h.publishEvent(w.org, ag.id, events.AgentNginxEvent{V: 1, Kind: events.AgentEventKindNginxDrift,
		Drift: &events.NginxDrift{Revision: d.Revision, Files: []string{"hosts/" + host.ID + ".conf"}, HostIDs: []string{host.ID}, Restored: true}})
	h.waitStatus(w, ag.id, host.ID, events.ProxyStatusFailed, "outside InfraPilot")

	// A failure of the whole set is the agent's last error and fails the
	// hosts that revision brought in.
	ag.set(func(a *fakeAgent) {
		delete(a.failHosts, host.ID)
		a.applyError = "nginx: [emerg] bind() to 0.0.0.0:80 failed (98: Address already in use)"
	})
	var second events.ProxyHost
	h.must(w, events.OpProxyHostCreate, hostWrite(ag.id, "two.example.com"), &second)
	h.waitStatus(w, ag.id, second.ID, events.ProxyStatusFailed, "Address already in use")
	if got := h.host(w, ag.id, host.ID); got.Status != events.ProxyStatusFailed {
		t.Fatalf("the set failure touched a host it did not bring in: %+v", got)
	}
	var settings events.ProxySettings
	h.must(w, events.OpProxySettingsGet, events.ProxyAgentRequest{AgentID: ag.id}, &settings)
	if !strings.Contains(settings.LastError, "Address already in use") {
		t.Fatalf("settings: %+v", settings)
	}

	// Fixed: the next change applies everything and clears the error.
	ag.set(func(a *fakeAgent) { a.applyError = "" })
	up.Upstream = events.Upstream{Container: "web", Port: 8080}
	h.must(w, events.OpProxyHostUpdate, up, nil)
	h.waitStatus(w, ag.id, host.ID, events.ProxyStatusApplied, "")
	h.waitStatus(w, ag.id, second.ID, events.ProxyStatusApplied, "")
	checkFor(t, func() error {
		var settings events.ProxySettings
		h.must(w, events.OpProxySettingsGet, events.ProxyAgentRequest{AgentID: ag.id}, &settings)
		if settings.LastError != "" {
			return errorf("last error %q", settings.LastError)
		}
		return nil
	})
}

func TestUpdateAndDeleteRender(t *testing.T) {
	t.Parallel()
	h := start(t, proxy.Config{})
	w, ag := h.org()
	var a, b events.ProxyHost
	h.must(w, events.OpProxyHostCreate, hostWrite(ag.id, "a.example.com"), &a)
	h.must(w, events.OpProxyHostCreate, hostWrite(ag.id, "b.example.com"), &b)
	h.waitStatus(w, ag.id, a.ID, events.ProxyStatusApplied, "")
	r1 := h.desired(w.org, ag.id).Revision

	up := hostWrite(ag.id, "a.example.com", "www.a.example.com")
	up.HostID, up.Websocket = a.ID, true
	var updated events.ProxyHost
	h.must(w, events.OpProxyHostUpdate, up, &updated)
	if updated.Status != events.ProxyStatusPending && updated.Status != events.ProxyStatusApplied || !updated.Websocket {
		t.Fatalf("updated: %+v", updated)
	}
	d := h.desired(w.org, ag.id)
	f, _ := fileOf(d, a.ID)
	if d.Revision <= r1 || !strings.Contains(f.Content, "www.a.example.com") {
		t.Fatalf("after update: revision %d (was %d), file %s", d.Revision, r1, f.Content)
	}
	h.waitStatus(w, ag.id, a.ID, events.ProxyStatusApplied, "")

	// The same specification again stores and renders nothing.
	h.must(w, events.OpProxyHostUpdate, up, nil)
	if again := h.desired(w.org, ag.id); again.Revision != d.Revision {
		t.Fatalf("an unchanged update rendered revision %d (was %d)", again.Revision, d.Revision)
	}

	// Disabling takes the file out; the host shows disabled.
	off := false
	up.Enabled = &off
	h.must(w, events.OpProxyHostUpdate, up, &updated)
	if updated.Status != events.ProxyStatusDisabled {
		t.Fatalf("disabled host shows %s", updated.Status)
	}
	if _, ok := fileOf(h.desired(w.org, ag.id), a.ID); ok {
		t.Fatal("a disabled host is still rendered")
	}

	h.must(w, events.OpProxyHostDelete, events.ProxyHostRef{AgentID: ag.id, HostID: b.ID}, nil)
	d2 := h.desired(w.org, ag.id)
	if _, ok := fileOf(d2, b.ID); ok || d2.Revision <= d.Revision {
		t.Fatalf("after delete: %+v", d2)
	}
	checkFor(t, func() error {
		ap := ag.applies()
		if last := ap[len(ap)-1]; last.Revision != d2.Revision || hasPath(&last, "hosts/"+b.ID+".conf") {
			return errorf("last push: revision %d", last.Revision)
		}
		return nil
	})
	h.fails(w, events.OpProxyHostGet, events.ProxyHostRef{AgentID: ag.id, HostID: b.ID}, events.CodeNotFound, "")
	h.fails(w, events.OpProxyHostDelete, events.ProxyHostRef{AgentID: ag.id, HostID: b.ID}, events.CodeNotFound, "")
	var list events.List[events.ProxyHost]
	h.must(w, events.OpProxyHostsList, events.ProxyAgentRequest{AgentID: ag.id}, &list)
	if len(list.Items) != 1 || list.Items[0].ID != a.ID {
		t.Fatalf("list: %+v", list.Items)
	}
}

func TestDuplicateDomainIsAConflict(t *testing.T) {
	t.Parallel()
	h := start(t, proxy.Config{})
	w, ag := h.org()
	var a, c events.ProxyHost
	h.must(w, events.OpProxyHostCreate, hostWrite(ag.id, "a.example.com", "b.example.com"), &a)
	h.fails(w, events.OpProxyHostCreate, hostWrite(ag.id, "B.Example.com"), events.CodeConflict, "b.example.com is already served")
	h.must(w, events.OpProxyHostCreate, hostWrite(ag.id, "c.example.com"), &c)
	up := hostWrite(ag.id, "c.example.com", "a.example.com")
	up.HostID = c.ID
	h.fails(w, events.OpProxyHostUpdate, up, events.CodeConflict, "a.example.com is already served by proxy host "+a.ID)
	// A host keeps its own domains; another agent may serve the same.
	up = hostWrite(ag.id, "a.example.com")
	up.HostID = a.ID
	h.must(w, events.OpProxyHostUpdate, up, nil)
	other := h.agent(w.org)
	h.must(w, events.OpProxyHostCreate, hostWrite(other.id, "b.example.com"), nil)
}
