package proxy_test

import (
	"encoding/json"
	"testing"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/proxy"
)

// TestNetworkAttachAndDetach: attaching needs nginx in a container; host,
// none and overlay networks are refused, an unknown one is not_found; an
// attachment reaches the agent as networks.connect of its nginx container
// and shows on the settings and on every host.
func TestNetworkAttachAndDetach(t *testing.T) {
	t.Parallel()
	h := start(t, proxy.Config{})
	w, ag := h.org()
	ag.set(func(a *fakeAgent) {
		a.networks = []events.Network{
			{ID: "n1", Name: "bridge", Driver: "bridge"}, {ID: "n2", Name: "host", Driver: "host"},
			{ID: "n3", Name: "none", Driver: "null"}, {ID: "n4", Name: "swarm_net", Driver: "overlay"},
			{ID: "n5", Name: "app_net", Driver: "bridge"},
		}
	})
	req := func(n string) events.ProxyNetworkRequest {
		return events.ProxyNetworkRequest{AgentID: ag.id, Network: n}
	}

	// Not reported yet, then reported as a local process.
	h.fails(w, events.OpProxyNetworkAttach, req("app_net"), events.CodeInvalid, "nginx does not run in a container")
	if _, e := ag.ask(w.org, events.NginxAgentInfo{Enabled: true, Kind: events.NginxKindLocal}); e != nil {
		t.Fatal(e)
	}
	h.fails(w, events.OpProxyNetworkAttach, req("app_net"), events.CodeInvalid, "nginx does not run in a container")

	if _, e := ag.ask(w.org, events.NginxAgentInfo{Enabled: true, Kind: events.NginxKindContainer, Container: "infrapilot-nginx"}); e != nil {
		t.Fatal(e)
	}
	for _, n := range []string{"host", "none", "swarm_net", "n2"} {
		e := h.fails(w, events.OpProxyNetworkAttach, req(n), events.CodeInvalid, "")
		hasField(t, e, "network")
	}
	h.fails(w, events.OpProxyNetworkAttach, req("nope"), events.CodeNotFound, "nope")
	e := h.fails(w, events.OpProxyNetworkAttach, req(""), events.CodeInvalid, "")
	hasField(t, e, "network")
	if n := len(ag.got(events.OpAgentNetworkConnect)); n != 0 {
		t.Fatalf("refused attachments reached the agent (%d)", n)
	}

	var host events.ProxyHost
	h.must(w, events.OpProxyHostCreate, hostWrite(ag.id, "app.example.com"), &host)
	var s events.ProxySettings
	h.must(w, events.OpProxyNetworkAttach, req("n5"), &s)
	if len(s.Networks) != 1 || s.Networks[0] != "app_net" {
		t.Fatalf("settings: %+v", s)
	}
	calls := ag.got(events.OpAgentNetworkConnect)
	var got events.NetworkConnectRequest
	if len(calls) != 1 || json.Unmarshal(calls[0].Data, &got) != nil || got.Network != "app_net" || got.Container != "infrapilot-nginx" {
		t.Fatalf("networks.connect: %+v", calls)
	}
	if v := h.host(w, ag.id, host.ID); len(v.Networks) != 1 || v.Networks[0] != "app_net" {
		t.Fatalf("host view networks: %+v", v.Networks)
	}
	// Attaching again is harmless.
	h.must(w, events.OpProxyNetworkAttach, req("app_net"), &s)
	if len(s.Networks) != 1 {
		t.Fatalf("settings: %+v", s)
	}

	h.must(w, events.OpProxyNetworkDetach, req("app_net"), &s)
	if len(s.Networks) != 0 || len(ag.got(events.OpAgentNetworkDisconnect)) != 1 {
		t.Fatalf("after detach: %+v", s)
	}
	if v := h.host(w, ag.id, host.ID); len(v.Networks) != 0 {
		t.Fatalf("host view networks after detach: %+v", v.Networks)
	}
}
