package enroll_test

// The control plane here is enrolltest's stand-in for POST
// /api/v1/agents/enroll; the real one (gateway, tenancy, natsauth) is
// tested end to end with this CLI in services/cmd/infrapilot
// (TestAgentEndToEnd).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/agent/internal/enroll"
	"github.com/infrapilot/infrapilot/agent/internal/enroll/enrolltest"
	"github.com/infrapilot/infrapilot/agent/internal/state"
	"github.com/infrapilot/infrapilot/events"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// config enrolls the machine whose id is in idFile into dir.
func config(server, token, dir, idFile string) enroll.Config {
	return enroll.Config{Server: server, Token: token, StateDir: dir, Version: "1.2.3",
		MachineIDFiles: []string{idFile}, Backoff: time.Millisecond, Now: func() time.Time { return now }}
}

func TestServerURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in       string
		insecure bool
		want     string // "" = refused
	}{
		{"https://cp.example.com", false, "https://cp.example.com"},
		{" https://cp.example.com/ ", false, "https://cp.example.com"},
		{"https://cp.example.com/api/v1", false, "https://cp.example.com"},
		{"https://cp.example.com/api/v1/", false, "https://cp.example.com"},
		{"https://cp.example.com:8443/infrapilot/api/v1", false, "https://cp.example.com:8443/infrapilot"},
		{"http://127.0.0.1:8080", false, "http://127.0.0.1:8080"},
		{"http://localhost:8080/", false, "http://localhost:8080"},
		{"http://[::1]:8080/api/v1", false, "http://[::1]:8080"},
		{"http://cp.example.com", false, ""},
		{"http://10.0.0.5:8080", false, ""},
		{"http://cp.example.com", true, "http://cp.example.com"},
		{"cp.example.com", false, ""},
		{"ftp://cp.example.com", false, ""},
		{"https://admin:secret@cp.example.com", false, ""},
		{"https://cp.example.com/?x=1", false, ""},
		{"https://cp.example.com/#top", false, ""},
		{"", false, ""},
	} {
		got, err := enroll.ServerURL(tc.in, tc.insecure)
		if tc.want == "" {
			if err == nil {
				t.Errorf("%q insecure=%v: accepted as %q", tc.in, tc.insecure, got)
			}
			if strings.Contains(tc.in, "secret") && err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("%q: the error repeats the password: %v", tc.in, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q insecure=%v: %q %v, want %q", tc.in, tc.insecure, got, err, tc.want)
		}
	}
	if _, err := enroll.ServerURL("http://cp.example.com", false); err == nil || !strings.Contains(err.Error(), "--insecure-http") {
		t.Errorf("plain http refusal does not say how to allow it: %v", err)
	}
}

// Enrollment writes identity.json and agent.creds, both 0600 in a 0700
// directory, with what the control plane answered and what was sent.
func TestEnrollWritesState(t *testing.T) {
	t.Parallel()
	cp := enrolltest.Start(t)
	idFile := writeID(t, "4f3c2b1a0e9d8c7b6a5f4e3d2c1b0a99\n")
	dir := filepath.Join(t.TempDir(), "state")
	res, err := enroll.Enroll(context.Background(), config(cp.URL+"/api/v1/", " "+enrolltest.TokenA+"\n", dir, idFile))
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := fingerprint(t, openDir(t), idFile)
	want := state.Identity{OrgID: enrolltest.OrgA, AgentID: "agt_1", NATSURL: enrolltest.HubURL,
		Server: cp.URL, Fingerprint: fp, EnrolledAt: now}
	if res.Identity != want || res.Reenrolled || res.Replaced != nil || res.FingerprintSource != idFile {
		t.Fatalf("result %+v, want identity %+v", res, want)
	}
	d, err := state.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := d.Identity(); err != nil || got != want {
		t.Fatalf("identity.json: %+v %v", got, err)
	}
	if b, err := os.ReadFile(d.File(state.CredsFile)); err != nil || string(b) != enrolltest.Creds("agt_1") {
		t.Fatalf("agent.creds: %q %v", b, err)
	}
	if res.CredsFile != d.File(state.CredsFile) || d.CredsPath() != res.CredsFile || res.StateDir != d.Path() {
		t.Fatalf("paths: %+v", res)
	}
	checkPrivate(t, dir)

	reqs := cp.Requests()
	h, _ := os.Hostname()
	wantReq := events.EnrollAgentRequest{Token: enrolltest.TokenA, Fingerprint: fp, Hostname: h,
		OS: runtime.GOOS, Arch: runtime.GOARCH, Version: "1.2.3"}
	if len(reqs) != 1 || reqs[0] != wantReq {
		t.Fatalf("requests %+v, want %+v", reqs, wantReq)
	}
}

// The same machine enrolling again gets the same agent id and fresh
// credentials; no --force is needed.
func TestReenrollKeepsTheAgent(t *testing.T) {
	t.Parallel()
	cp := enrolltest.Start(t)
	idFile := writeID(t, "4f3c2b1a0e9d8c7b6a5f4e3d2c1b0a99\n")
	dir := filepath.Join(t.TempDir(), "state")
	first, err := enroll.Enroll(context.Background(), config(cp.URL, enrolltest.TokenA, dir, idFile))
	if err != nil {
		t.Fatal(err)
	}
	// Another machine in the same org is another agent.
	other, err := enroll.Enroll(context.Background(), config(cp.URL, enrolltest.TokenA, filepath.Join(t.TempDir(), "s"),
		writeID(t, "0123456789abcdef0123456789abcdef")))
	if err != nil || other.Identity.AgentID == first.Identity.AgentID {
		t.Fatalf("other machine: %+v %v", other, err)
	}
	again, err := enroll.Enroll(context.Background(), config(cp.URL, enrolltest.TokenA, dir, idFile))
	if err != nil {
		t.Fatal(err)
	}
	if again.Identity.AgentID != first.Identity.AgentID || !again.Reenrolled || again.Replaced != nil {
		t.Fatalf("re-enrollment: %+v after %+v", again, first)
	}
	checkPrivate(t, dir)
}

// The control plane's refusals are reported with their detail and status
// in one line, without the token, and leave the state directory as it
// was: no identity or credentials appear, and existing ones stay.
func TestRefusalsAreClearAndWriteNothing(t *testing.T) {
	t.Parallel()
	cp := enrolltest.Start(t)
	idFile := writeID(t, "4f3c2b1a0e9d8c7b6a5f4e3d2c1b0a99\n")
	enrolled := filepath.Join(t.TempDir(), "enrolled")
	if _, err := enroll.Enroll(context.Background(), config(cp.URL, enrolltest.TokenA, enrolled, idFile)); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, enrolled)
	for _, tc := range []struct {
		token  string
		status int
		code   events.Code
		want   string
	}{
		{enrolltest.TokenExpired, 409, events.CodeConflict, "enroll: the enrollment token has expired (409 Conflict)"},
		{"ipe_nosuchtoken0000000000000000000000", 401, events.CodeUnauthorized, "enroll: invalid enrollment token (401 Unauthorized)"},
		{enrolltest.TokenEcho, 400, events.CodeInvalid, "enroll: token [token] is malformed (400 Bad Request)"},
	} {
		for _, dir := range []string{filepath.Join(t.TempDir(), "fresh"), enrolled} {
			_, err := enroll.Enroll(context.Background(), config(cp.URL, tc.token, dir, idFile))
			var e *enroll.Error
			if !errors.As(err, &e) || e.Status != tc.status || e.Code != tc.code {
				t.Fatalf("%s: %v, want status %d", tc.token, err, tc.status)
			}
			if err.Error() != tc.want || strings.Contains(err.Error(), tc.token) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q, want %q", err, tc.want)
			}
		}
		if after := snapshot(t, enrolled); after != before {
			t.Fatalf("refusal changed the enrolled state:\n%s\nbefore:\n%s", after, before)
		}
	}
	fresh := filepath.Join(t.TempDir(), "fresh")
	if _, err := enroll.Enroll(context.Background(), config(cp.URL, enrolltest.TokenExpired, fresh, idFile)); err == nil {
		t.Fatal("expired token accepted")
	}
	for _, name := range []string{state.IdentityFile, state.CredsFile} {
		if _, err := os.Stat(filepath.Join(fresh, name)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s written after a refusal: %v", name, err)
		}
	}
}

// Field errors are listed after the detail.
func TestFieldErrors(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"type":"urn:infrapilot:problem:invalid","title":"Bad Request","status":400,"detail":"invalid fingerprint, hostname","code":"invalid",`+
			`"errors":[{"field":"fingerprint","message":"must be 1 to 256 characters"},{"field":"hostname","message":"is required"}]}`)
	}))
	defer srv.Close()
	_, err := enroll.Enroll(context.Background(), config(srv.URL, enrolltest.TokenA, t.TempDir(), writeID(t, "x")))
	want := "enroll: invalid fingerprint, hostname: fingerprint must be 1 to 256 characters; hostname is required (400 Bad Request)"
	if err == nil || err.Error() != want {
		t.Fatalf("%v\nwant %s", err, want)
	}
}

// Answers that are not the control plane's — a wrong URL, a proxy's page,
// a redirect, a malformed enrollment — are errors that say so, and
// nothing is written.
func TestNotAControlPlane(t *testing.T) {
	t.Parallel()
	cp := enrolltest.Start(t)
	redirect := httptest.NewServer(http.RedirectHandler(cp.URL+"/api/v1/agents/enroll", http.StatusPermanentRedirect))
	defer redirect.Close()
	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, "<html>502 Bad Gateway</html>")
	}))
	defer html.Close()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(events.AgentEnrollment{AgentID: "a.b", OrgID: "o", NATSURL: enrolltest.HubURL})
	}))
	defer bad.Close()
	for _, tc := range []struct{ server, want string }{
		{cp.URL + "/elsewhere", "answered 404 Not Found (is --server an InfraPilot control plane?)"},
		{html.URL, "answered 502 Bad Gateway"},
		{redirect.URL, "redirects to " + cp.URL + "/api/v1/agents/enroll: pass the server's own URL as --server"},
		{bad.URL, `invalid agent id "a.b"`},
	} {
		dir := filepath.Join(t.TempDir(), "state")
		_, err := enroll.Enroll(context.Background(), config(tc.server, enrolltest.TokenA, dir, writeID(t, "x")))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.server, err, tc.want)
		}
		if _, err := os.Stat(filepath.Join(dir, state.IdentityFile)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: identity written: %v", tc.server, err)
		}
	}
	if n := len(cp.Requests()); n != 0 {
		t.Fatalf("the redirect was followed: %d requests", n)
	}
}

// An answer without credentials (a hub without authentication) removes a
// stale credentials file.
func TestEnrollmentWithoutCredentials(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(events.AgentEnrollment{AgentID: "agt_1", OrgID: "org_a", NATSURL: "nats-leaf://127.0.0.1:7422", Reenrolled: true})
	}))
	defer srv.Close()
	d := openDir(t)
	if err := d.WriteFile(state.CredsFile, []byte("stale")); err != nil {
		t.Fatal(err)
	}
	res, err := enroll.Enroll(context.Background(), config(srv.URL, enrolltest.TokenA, d.Path(), writeID(t, "x")))
	if err != nil || res.CredsFile != "" || d.CredsPath() != "" {
		t.Fatalf("%+v %v; creds %q", res, err, d.CredsPath())
	}
}

// Enrolling as another agent (another org's token) is refused without
// --force, after the control plane answered, leaving the old agent in
// place; with --force the old agent's run state goes with it.
func TestAnotherAgentNeedsForce(t *testing.T) {
	t.Parallel()
	cp := enrolltest.Start(t)
	idFile := writeID(t, "4f3c2b1a0e9d8c7b6a5f4e3d2c1b0a99\n")
	d := openDir(t)
	first, err := enroll.Enroll(context.Background(), config(cp.URL, enrolltest.TokenA, d.Path(), idFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(d.File("jetstream/jsm"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{state.LogsFile, state.EventsFile, state.StatusFile} {
		if err := d.WriteFile(name, []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	before := snapshot(t, d.Path())
	_, err = enroll.Enroll(context.Background(), config(cp.URL, enrolltest.TokenB, d.Path(), idFile))
	if err == nil || !strings.Contains(err.Error(), "--force") || !strings.Contains(err.Error(), "agent agt_1 of org org_a") {
		t.Fatalf("other org without --force: %v", err)
	}
	if after := snapshot(t, d.Path()); after != before {
		t.Fatalf("refused enrollment changed the state:\n%s\nbefore:\n%s", after, before)
	}
	cfg := config(cp.URL, enrolltest.TokenB, d.Path(), idFile)
	cfg.Force = true
	res, err := enroll.Enroll(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Identity.OrgID != enrolltest.OrgB || res.Replaced == nil || *res.Replaced != first.Identity {
		t.Fatalf("forced: %+v", res)
	}
	if id, err := d.Identity(); err != nil || id != res.Identity {
		t.Fatalf("identity.json: %+v %v", id, err)
	}
	for _, name := range []string{"jetstream", state.LogsFile, state.EventsFile, state.StatusFile} {
		if _, err := os.Stat(d.File(name)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the old agent's %s survived: %v", name, err)
		}
	}
	checkPrivate(t, d.Path())
}

// A directory enrolled with another server, or with an unreadable
// identity, is refused before the token is spent.
func TestRefusedBeforeSending(t *testing.T) {
	t.Parallel()
	cp := enrolltest.Start(t)
	idFile := writeID(t, "x")
	otherServer := openDir(t)
	if err := otherServer.SaveIdentity(state.Identity{OrgID: "o", AgentID: "a", NATSURL: enrolltest.HubURL, Server: "https://other.example.com"}); err != nil {
		t.Fatal(err)
	}
	corrupt := openDir(t)
	if err := corrupt.WriteFile(state.IdentityFile, []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	running := openDir(t)
	lock, err := running.Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	for _, tc := range []struct {
		dir  state.Dir
		want string
	}{
		{otherServer, "enrolled with https://other.example.com; rerun with --force"},
		{corrupt, "corrupt"},
		{running, "an agent is running on"},
	} {
		_, err := enroll.Enroll(context.Background(), config(cp.URL, enrolltest.TokenA, tc.dir.Path(), idFile))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v, want %q", err, tc.want)
		}
	}
	if n := len(cp.Requests()); n != 0 {
		t.Fatalf("%d requests sent", n)
	}
	for _, d := range []state.Dir{otherServer, corrupt} {
		cfg := config(cp.URL, enrolltest.TokenA, d.Path(), idFile)
		cfg.Force = true
		if res, err := enroll.Enroll(context.Background(), cfg); err != nil || res.Replaced == nil {
			t.Fatalf("--force: %+v %v", res, err)
		}
	}
}

// A refused connection is retried with backoff and progress lines; other
// failures are not (the request may have reached the server).
func TestRetriesRefusedConnections(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	var progress bytes.Buffer
	cfg := config("http://"+addr, enrolltest.TokenA, t.TempDir(), writeID(t, "x"))
	cfg.Attempts, cfg.Progress = 3, &progress
	_, err := enroll.Enroll(context.Background(), cfg)
	if !errors.Is(err, syscall.ECONNREFUSED) || !strings.Contains(err.Error(), "cannot reach http://"+addr+"/api/v1/agents/enroll") {
		t.Fatalf("%v", err)
	}
	if n := strings.Count(progress.String(), "refused the connection; retrying in"); n != 2 || !strings.Contains(progress.String(), "(attempt 3 of 3)") {
		t.Fatalf("progress:\n%s", progress.String())
	}
	if strings.Contains(progress.String()+err.Error(), enrolltest.TokenA) {
		t.Fatal("the token was printed")
	}
}

// A control plane that comes up while enroll retries is enrolled with.
func TestRetryReachesAServerThatComesUp(t *testing.T) {
	t.Parallel()
	cp := enrolltest.Start(t)
	addr := freeAddr(t)
	var once sync.Once
	var late *httptest.Server
	defer func() {
		once.Do(func() {}) // no start after the test
		if late != nil {
			late.Close()
		}
	}()
	var startErr error
	progress := writerFunc(func(p []byte) (int, error) {
		// The first retry line means a refusal happened: start serving
		// on the refused address now.
		once.Do(func() {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				startErr = err
				return
			}
			late = &httptest.Server{Listener: ln, Config: &http.Server{Handler: cp.Config.Handler}}
			late.Start()
		})
		return len(p), nil
	})
	cfg := config("http://"+addr, enrolltest.TokenA, t.TempDir(), writeID(t, "x"))
	cfg.Backoff, cfg.Progress = 20*time.Millisecond, progress
	res, err := enroll.Enroll(context.Background(), cfg)
	if startErr != nil {
		t.Fatalf("cannot listen on %s again: %v", addr, startErr)
	}
	if err != nil || res.Identity.AgentID == "" {
		t.Fatalf("%+v %v", res, err)
	}
}

// Run as root into a directory owned by the service's user (install.sh's
// case), the files enroll writes belong to that user.
func TestFilesTakeTheDirectorysOwner(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root: only root can give files away")
	}
	const uid, gid = 65534, 65534
	cp := enrolltest.Start(t)
	d := openDir(t)
	if err := os.Chown(d.Path(), uid, gid); err != nil {
		t.Fatal(err)
	}
	if _, err := enroll.Enroll(context.Background(), config(cp.URL, enrolltest.TokenA, d.Path(), filepath.Join(t.TempDir(), "none"))); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{state.IdentityFile, state.CredsFile, state.LockFile, enroll.MachineIDFile} {
		st, err := os.Stat(d.File(name))
		if err != nil {
			t.Fatal(err)
		}
		if s := st.Sys().(*syscall.Stat_t); s.Uid != uid || s.Gid != gid {
			t.Fatalf("%s is owned by %d:%d", name, s.Uid, s.Gid)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// snapshot describes every file under dir (name, mode, content).
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		b.WriteString(p + " " + info.Mode().String())
		if info.Mode().IsRegular() {
			c, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b.WriteString(" " + string(c))
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// checkPrivate checks the state directory is 0700 and every regular file
// directly in it 0600.
func checkPrivate(t *testing.T, dir string) {
	t.Helper()
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("state dir mode %v %v", st.Mode(), err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().IsRegular() && info.Mode().Perm() != 0o600 {
			t.Fatalf("%s has mode %v", e.Name(), info.Mode().Perm())
		}
	}
}

// ServerURL takes what a user typed: whatever it accepts is an absolute
// http(s) URL without credentials, https unless on loopback or allowed,
// and normalising it again changes nothing.
func FuzzServerURL(f *testing.F) {
	for _, s := range []string{"https://cp.example.com/api/v1/", "http://127.0.0.1:8080", "http://[::1]/x/api/v1",
		"https://u:p@h", "http://h", "https://h/%2F/api/v1", "https://h//api/v1//", "HTTPS://H:1/"} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, raw string, insecure bool) {
		got, err := enroll.ServerURL(raw, insecure)
		if err != nil {
			return
		}
		u, perr := url.Parse(got)
		if perr != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			t.Fatalf("%q → %q: %v", raw, got, perr)
		}
		if u.Scheme != "https" && !insecure && u.Scheme == "http" {
			h := u.Hostname()
			if ip := net.ParseIP(h); (ip == nil || !ip.IsLoopback()) && !strings.EqualFold(strings.TrimSuffix(h, "."), "localhost") {
				t.Fatalf("%q → %q: plain http to a remote host", raw, got)
			}
		}
		if again, err := enroll.ServerURL(got, insecure); err != nil || again != got {
			t.Fatalf("%q → %q → %q %v", raw, got, again, err)
		}
	})
}
