// Package enrolltest plays the control plane's POST /api/v1/agents/enroll
// for the agent's tests: an httptest server that answers like the
// gateway (JSON enrollments, RFC 9457 problem+json refusals) with the
// rules of tenancy's agent_enroll (the same fingerprint in the same org
// keeps its agent id; expired tokens are a conflict, unknown ones
// unauthorized). The real control plane — gateway, tenancy, natsauth's
// credentials — is tested end to end with this CLI in
// services/cmd/infrapilot (TestAgentEndToEnd).
package enrolltest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/infrapilot/infrapilot/events"
)

// Tokens the control plane knows.
const (
	// TokenA and TokenB enroll in OrgA and OrgB.
	TokenA = "ipe_0123456789abcdef0123456789abcdef"
	TokenB = "ipe_fedcba9876543210fedcba9876543210"
	// TokenExpired has expired (409).
	TokenExpired = "ipe_expired0000000000000000000000000"
	// TokenEcho is refused with a detail that quotes it (400), as a
	// careless server might.
	TokenEcho = "ipe_echo000000000000000000000000000000"
)

// Orgs of TokenA and TokenB.
const (
	OrgA = "org_a"
	OrgB = "org_b"
)

// HubURL is the leafnode URL enrollments carry.
const HubURL = "nats-leaf://hub.example.test:7422"

// ControlPlane is the stand-in control plane.
type ControlPlane struct {
	*httptest.Server

	mu       sync.Mutex
	requests []events.EnrollAgentRequest
	agents   map[string]string // org + "/" + fingerprint → agent id
}

// Start starts a control plane closed with the test.
func Start(t testing.TB) *ControlPlane {
	cp := &ControlPlane{agents: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/agents/enroll", cp.enroll)
	cp.Server = httptest.NewServer(mux)
	t.Cleanup(cp.Close)
	return cp
}

// Requests returns the enrollment requests received so far.
func (cp *ControlPlane) Requests() []events.EnrollAgentRequest {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return append([]events.EnrollAgentRequest(nil), cp.requests...)
}

// Creds is the credentials file issued to an agent: shaped like a NATS
// .creds file, not a usable one (no hub checks it here).
func Creds(agentID string) string {
	return "-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ." + agentID + "\n------END NATS USER JWT------\n\n" +
		"-----BEGIN USER NKEY SEED-----\nSUAEXAMPLEEXAMPLEEXAMPLEEXAMPLEEXAMPLEEXAMPLEEXAMPLEEXAMPLE\n------END USER NKEY SEED------\n"
}

func (cp *ControlPlane) enroll(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		problem(w, http.StatusBadRequest, events.CodeInvalid, "content type must be application/json, not "+ct)
		return
	}
	var req events.EnrollAgentRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		problem(w, http.StatusBadRequest, events.CodeInvalid, "invalid JSON body")
		return
	}
	cp.mu.Lock()
	cp.requests = append(cp.requests, req)
	cp.mu.Unlock()
	if fields := check(req); len(fields) > 0 {
		problem(w, http.StatusBadRequest, events.CodeInvalid, "invalid request", fields...)
		return
	}
	var org string
	switch req.Token {
	case TokenA:
		org = OrgA
	case TokenB:
		org = OrgB
	case TokenExpired:
		problem(w, http.StatusConflict, events.CodeConflict, "the enrollment token has expired")
		return
	case TokenEcho:
		problem(w, http.StatusBadRequest, events.CodeInvalid, "token "+req.Token+" is malformed")
		return
	default:
		problem(w, http.StatusUnauthorized, events.CodeUnauthorized, "invalid enrollment token")
		return
	}
	cp.mu.Lock()
	key := org + "/" + req.Fingerprint
	id, again := cp.agents[key]
	if !again {
		id = fmt.Sprintf("agt_%d", len(cp.agents)+1)
		cp.agents[key] = id
	}
	cp.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(events.AgentEnrollment{AgentID: id, OrgID: org, NATSURL: HubURL,
		Credentials: Creds(id), Reenrolled: again})
}

// check applies tenancy's rules to the machine's facts: a fingerprint of
// 1–256 printable ASCII characters (domain.CheckFingerprint), and every
// fact present.
func check(req events.EnrollAgentRequest) []events.FieldError {
	var fields []events.FieldError
	fp := req.Fingerprint
	if fp == "" || len(fp) > 256 || strings.IndexFunc(fp, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
		fields = append(fields, events.FieldError{Field: "fingerprint", Message: "must be 1 to 256 printable ASCII characters"})
	}
	for name, v := range map[string]string{"hostname": req.Hostname, "os": req.OS, "arch": req.Arch, "version": req.Version} {
		if v == "" {
			fields = append(fields, events.FieldError{Field: name, Message: "is required"})
		}
	}
	return fields
}

// problem answers the way the gateway's httpapi.WriteProblem does.
func problem(w http.ResponseWriter, status int, code events.Code, detail string, fields ...events.FieldError) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"type": "urn:infrapilot:problem:" + string(code), "title": http.StatusText(status), "status": status,
		"detail": detail, "code": code, "errors": fields, "instance": "/api/v1/agents/enroll",
	})
}
