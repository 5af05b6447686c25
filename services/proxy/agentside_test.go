package proxy_test

import (
	"strings"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/proxy"
)

// TestDesiredRequestFromTheAgent checks the agent's side of the desired
// state: a (re)connecting agent asks on its own subject, gets the KV
// document (rendered on first ask: nginx.conf only for an agent without
// hosts), and its report is recorded; a new layout re-renders. A request
// on another org's subject gets nothing of that org.
func TestDesiredRequestFromTheAgent(t *testing.T) {
	t.Parallel()
	h := start(t, proxy.Config{})
	w, ag := h.org()
	info := events.NginxAgentInfo{Enabled: true, Kind: events.NginxKindContainer, Root: "/srv/infrapilot-nginx",
		Container: "nginx-proxy", Version: "1.27.0", HTTPPort: 8080, HTTPSPort: 8443}

	d, e := ag.ask(w.org, info)
	if e != nil {
		t.Fatalf("desired: %+v", e)
	}
	if d.Revision != 1 || d.Mode != events.ProxyModeManaged || len(d.Files) != 1 || d.Files[0].Path != "nginx.conf" {
		t.Fatalf("desired of an agent without hosts: %+v", d)
	}
	if c := d.Files[0].Content; !strings.Contains(c, "/srv/infrapilot-nginx") || !strings.Contains(c, "8080") {
		t.Fatalf("nginx.conf does not use the reported layout:\n%s", c)
	}
	if kv := h.desired(w.org, ag.id); kv == nil || kv.Revision != d.Revision || kv.Files[0].Content != d.Files[0].Content {
		t.Fatalf("reply %+v differs from KV %+v", d, kv)
	}
	var settings events.ProxySettings
	h.must(w, events.OpProxySettingsGet, events.ProxyAgentRequest{AgentID: ag.id}, &settings)
	if settings.Nginx == nil || *settings.Nginx != info || settings.DesiredRevision != 1 {
		t.Fatalf("settings: %+v", settings)
	}

	// Asking again changes nothing; a new root re-renders.
	if again, _ := ag.ask(w.org, info); again.Revision != 1 {
		t.Fatalf("same report, revision %d", again.Revision)
	}
	info.Root = "/opt/nginx"
	moved, _ := ag.ask(w.org, info)
	if moved.Revision != 2 || !strings.Contains(moved.Files[0].Content, "/opt/nginx") {
		t.Fatalf("after a new root: %+v", moved)
	}

	// A layout nginxconf cannot render is refused, not recorded.
	bad := info
	bad.Root = "/etc/nginx; include /etc/passwd"
	if _, e := ag.ask(w.org, bad); e == nil || e.Code != events.CodeInvalid {
		t.Fatalf("a bad root was accepted: %+v", e)
	}

	// The agent's id under another org: not that org's agent.
	w2, _ := h.org()
	if _, e := ag.ask(w2.org, info); e == nil || e.Code != events.CodeNotFound {
		t.Fatalf("request on another org's subject: %+v", e)
	}
	if kv := h.desired(w2.org, ag.id); kv != nil {
		t.Fatalf("another org got a desired state for the agent: %+v", kv)
	}
	h.fails(w2, events.OpProxySettingsGet, events.ProxyAgentRequest{AgentID: ag.id}, events.CodeNotFound, "")
	h.must(w, events.OpProxySettingsGet, events.ProxyAgentRequest{AgentID: ag.id}, &settings)
	if settings.Nginx.Root != "/opt/nginx" {
		t.Fatalf("settings after the other org's request: %+v", settings.Nginx)
	}
}

// TestDriftIsRecordedPerHost checks nginx.drift events from the agent's
// stream: each named host of that agent gets drift_detected; a host of
// another agent named in the report is ignored; Docker events on the same
// subject are skipped.
func TestDriftIsRecordedPerHost(t *testing.T) {
	t.Parallel()
	h := start(t, proxy.Config{})
	w, ag := h.org()
	other := h.agent(w.org)
	var mine, theirs events.ProxyHost
	h.must(w, events.OpProxyHostCreate, hostWrite(ag.id, "mine.example.com"), &mine)
	h.must(w, events.OpProxyHostCreate, hostWrite(other.id, "theirs.example.com"), &theirs)
	h.waitStatus(w, ag.id, mine.ID, events.ProxyStatusApplied, "")
	h.waitStatus(w, other.id, theirs.ID, events.ProxyStatusApplied, "")

	h.publishRaw(w.org, ag.id, events.AgentDockerEvent{V: 1, Kind: events.AgentEventKindDocker, Action: events.DockerDie,
		Time: time.Now(), Container: "c1"})
	h.publishEvent(w.org, ag.id, events.AgentNginxEvent{V: 1, Kind: events.AgentEventKindNginxDrift, Time: time.Now(),
		Drift: &events.NginxDrift{Revision: 1, Files: []string{"hosts/" + mine.ID + ".conf", "hosts/" + theirs.ID + ".conf"},
			HostIDs: []string{mine.ID, theirs.ID}, Restored: true}})
	got := h.waitStatus(w, ag.id, mine.ID, events.ProxyStatusApplied, "outside InfraPilot")
	if !strings.Contains(got.StatusMessage, "restored") || !strings.Contains(got.StatusMessage, mine.ID) ||
		strings.Contains(got.StatusMessage, theirs.ID) {
		t.Fatalf("drift message: %q", got.StatusMessage)
	}
	// Events are consumed in order: a later drift of the other agent's
	// own host lands after the forged one was handled.
	h.publishEvent(w.org, other.id, events.AgentNginxEvent{V: 1, Kind: events.AgentEventKindNginxDrift, Time: time.Now(),
		Drift: &events.NginxDrift{Revision: 1, Files: []string{"nginx.conf"}, HostIDs: []string{theirs.ID}, Error: "permission denied"}})
	got = h.waitStatus(w, other.id, theirs.ID, events.ProxyStatusApplied, "permission denied")
	if strings.Contains(got.StatusMessage, mine.ID) || strings.Contains(got.StatusMessage, "; restored") {
		t.Fatalf("the other agent's drift report reached this host: %q", got.StatusMessage)
	}
}

// TestExternalModeCarriesNoFiles checks that in external mode the
// desired state carries no files (the agent leaves nginx alone), and that
// going back to managed renders the hosts again.
func TestExternalModeCarriesNoFiles(t *testing.T) {
	t.Parallel()
	h := start(t, proxy.Config{})
	w, ag := h.org()
	var host events.ProxyHost
	h.must(w, events.OpProxyHostCreate, hostWrite(ag.id, "app.example.com"), &host)
	before := h.desired(w.org, ag.id).Revision

	external, email := events.ProxyModeExternal, "ops@example.com"
	var s events.ProxySettings
	h.must(w, events.OpProxySettingsSet, events.ProxySettingsWrite{AgentID: ag.id, Mode: &external, ACMEEmail: &email}, &s)
	if s.Mode != events.ProxyModeExternal || s.ACMEEmail != email {
		t.Fatalf("settings: %+v", s)
	}
	d := h.desired(w.org, ag.id)
	if d.Mode != events.ProxyModeExternal || len(d.Files) != 0 || d.Revision <= before {
		t.Fatalf("external desired state: %+v", d)
	}
	checkFor(t, func() error {
		ap := ag.applies()
		if last := ap[len(ap)-1]; last.Mode != events.ProxyModeExternal || len(last.Files) != 0 {
			return errorf("last push: %+v", last)
		}
		return nil
	})
	h.fails(w, events.OpProxyHostSSL, events.ProxyHostRef{AgentID: ag.id, HostID: host.ID}, events.CodeInvalid, "external")

	bad := "sometimes"
	e := h.fails(w, events.OpProxySettingsSet, events.ProxySettingsWrite{AgentID: ag.id, Mode: &bad}, events.CodeInvalid, "")
	hasField(t, e, "mode")
	badMail := "ops@example.com\r\nBcc: x@example.com"
	e = h.fails(w, events.OpProxySettingsSet, events.ProxySettingsWrite{AgentID: ag.id, ACMEEmail: &badMail}, events.CodeInvalid, "")
	hasField(t, e, "acme_email")

	managed := events.ProxyModeManaged
	h.must(w, events.OpProxySettingsSet, events.ProxySettingsWrite{AgentID: ag.id, Mode: &managed}, &s)
	if s.ACMEEmail != email {
		t.Fatalf("the contact was lost: %+v", s)
	}
	if d := h.desired(w.org, ag.id); d.Mode != events.ProxyModeManaged || !hasPath(d, "hosts/"+host.ID+".conf") {
		t.Fatalf("managed again: %+v", d)
	}
}
