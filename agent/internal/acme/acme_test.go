package acme_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/agent/internal/acme"
	"github.com/infrapilot/infrapilot/agent/internal/acme/acmetest"
	"github.com/infrapilot/infrapilot/events"
)

// hostID is a host id as the proxy service sends them (a lower-case UUID).
const hostID = "0b9d3c5e-6f1a-4c2b-9d8e-7a6b5c4d3e2f"

// newIssuer returns an Issuer with private state and certificate
// directories; its log is shown when the test fails.
func newIssuer(t *testing.T, webroot, caFile string) (*acme.Issuer, acme.Config) {
	t.Helper()
	cfg := acme.Config{
		StateDir: t.TempDir(), Webroot: webroot, CertsDir: filepath.Join(t.TempDir(), "certs"),
		CAFile: caFile, Log: testLogger(t),
	}
	iss, err := acme.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return iss, cfg
}

// TestIssueHTTP01ThroughNginx obtains a two-name certificate from pebble,
// which validates both names by fetching the challenge files from a real
// nginx serving the webroot, then issues again with a restarted Issuer
// that must reuse the stored account. It runs with umask 077, as a
// hardened service might: the challenge files must still be readable by
// nginx's workers (user nobody).
func TestIssueHTTP01ThroughNginx(t *testing.T) {
	old := syscall.Umask(0o077)
	t.Cleanup(func() { syscall.Umask(old) })
	webroot := acmetest.PublicDir(t)
	nginx := acmetest.StartWebrootNginx(t, webroot)
	dns := acmetest.StartChallTestSrv(t)
	pebble := acmetest.StartPebbleDNS(t, nginx.Port, dns)
	iss, cfg := newIssuer(t, webroot, pebble.CAFile)

	req := events.CertIssueRequest{HostID: hostID, Domains: []string{"App.infrapilot.test", "www.infrapilot.test"},
		Email: "ops@infrapilot.test", DirectoryURL: pebble.DirectoryURL}
	ctx, cancel := context.WithTimeout(context.Background(), events.CertIssueTimeout)
	defer cancel()
	start := time.Now()
	got, err := iss.Issue(ctx, req)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	t.Logf("first issue (account registration + 2 validations) took %s", time.Since(start).Round(time.Millisecond))

	want := []string{"app.infrapilot.test", "www.infrapilot.test"}
	if got.HostID != hostID || strings.Join(got.Domains, ",") != strings.Join(want, ",") {
		t.Errorf("issued %+v, want host %s domains %v", got, hostID, want)
	}
	if !strings.HasPrefix(got.Issuer, "Pebble Intermediate CA") || got.Serial == "" {
		t.Errorf("issuer %q serial %q", got.Issuer, got.Serial)
	}
	if now := time.Now(); got.NotBefore.After(now) || got.NotAfter.Before(now.Add(24*time.Hour)) {
		t.Errorf("validity %s – %s", got.NotBefore, got.NotAfter)
	}
	leaf := readLeaf(t, filepath.Join(cfg.CertsDir, hostID, acme.FullchainFile))
	if leaf.serial != got.Serial || !leaf.notAfter.Equal(got.NotAfter) || leaf.issuer != got.Issuer ||
		strings.Join(leaf.names, ",") != strings.Join(want, ",") {
		t.Errorf("stored leaf %+v does not match %+v", leaf, got)
	}
	if stored, ok := iss.Stored(hostID); !ok || !sameCert(stored, got) {
		t.Errorf("Stored = %+v, %v; want %+v", stored, ok, got)
	}

	// Validation went through nginx: one challenge GET per name, answered 200.
	reqs := nginx.ChallengeRequests(t)
	if len(reqs) < 2 {
		t.Fatalf("nginx served %d challenge requests, want 2:\n%s", len(reqs), strings.Join(reqs, "\n"))
	}
	for _, l := range reqs {
		if !strings.Contains(l, "\" 200 ") {
			t.Errorf("challenge request not answered 200: %s", l)
		}
	}
	// The challenge files are gone again.
	if left, _ := os.ReadDir(filepath.Join(webroot, ".well-known", "acme-challenge")); len(left) != 0 {
		t.Errorf("%d challenge files left in the webroot", len(left))
	}

	keyFile, regFile := iss.AccountFiles(pebble.DirectoryURL)
	assertMode(t, filepath.Dir(keyFile), fs.ModeDir|0o700)
	assertMode(t, keyFile, 0o600)
	assertMode(t, regFile, 0o600)
	assertMode(t, filepath.Join(cfg.CertsDir, hostID), fs.ModeDir|0o700)
	for _, f := range []string{acme.FullchainFile, acme.KeyFile, acme.MetaFile} {
		assertMode(t, filepath.Join(cfg.CertsDir, hostID, f), 0o600)
	}
	keyBefore, regBefore := readFile(t, keyFile), readFile(t, regFile)
	if !bytes.Contains(regBefore, []byte("mailto:ops@infrapilot.test")) {
		t.Errorf("registration lacks the contact:\n%s", regBefore)
	}

	// A restarted agent (a new Issuer on the same directories) renews with
	// the same account: no new key, no new registration.
	iss2, err := acme.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	again, err := iss2.Issue(ctx, req)
	if err != nil {
		t.Fatalf("second Issue: %v", err)
	}
	t.Logf("second issue (stored account) took %s", time.Since(start).Round(time.Millisecond))
	if again.Serial == got.Serial {
		t.Errorf("second issue returned the same serial %s", got.Serial)
	}
	if !bytes.Equal(readFile(t, keyFile), keyBefore) || !bytes.Equal(readFile(t, regFile), regBefore) {
		t.Errorf("the account changed on the second issue")
	}
	if stored, ok := iss2.Stored(hostID); !ok || !sameCert(stored, again) {
		t.Errorf("Stored after renewal = %+v, %v; want %+v", stored, ok, again)
	}
}

// TestIssueFailureCarriesCAReason makes validation fail for real: pebble
// connects to a port nothing listens on, or to an nginx that does not
// serve the webroot. The error must carry pebble's problem, and nothing
// may be stored.
func TestIssueFailureCarriesCAReason(t *testing.T) {
	cases := []struct {
		name      string
		httpPort  func(t *testing.T) int
		wantParts []string
	}{
		{"nothing listens on port 80", func(t *testing.T) int { return acmetest.FreePort(t) },
			[]string{"localhost: ", "urn:ietf:params:acme:error:connection", "connection refused"}},
		{"nginx does not serve the webroot", func(t *testing.T) int {
			return acmetest.StartWebrootNginx(t, acmetest.PublicDir(t)).Port
		}, []string{"localhost: ", "urn:ietf:params:acme:error:unauthorized", "returned 404"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			directory, caFile := acmetest.StartPebble(t, tc.httpPort(t))
			iss, cfg := newIssuer(t, acmetest.PublicDir(t), caFile)
			ctx, cancel := context.WithTimeout(context.Background(), events.CertIssueTimeout)
			defer cancel()
			start := time.Now()
			_, err := iss.Issue(ctx, events.CertIssueRequest{HostID: hostID, Domains: []string{"localhost"}, DirectoryURL: directory})
			t.Logf("failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
			var e *events.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T %v, want *events.Error", err, err)
			}
			if e.Code != events.CodeUnavailable || strings.Contains(e.Message, "\n") {
				t.Errorf("code %s, message %q", e.Code, e.Message)
			}
			for _, part := range tc.wantParts {
				if !strings.Contains(e.Message, part) {
					t.Errorf("message %q lacks %q", e.Message, part)
				}
			}
			if _, ok := iss.Stored(hostID); ok {
				t.Error("a failed issue stored a certificate")
			}
			if _, err := os.Stat(filepath.Join(cfg.CertsDir, hostID, acme.FullchainFile)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("fullchain after failure: %v", err)
			}
		})
	}
}

// TestIssueRespectsContext points the issuer at a server that accepts
// connections and never answers: Issue returns at the deadline, and the
// abandoned lego goroutine releases the host promptly (a retry times out
// on its own deadline instead of waiting for the host's lock forever).
func TestIssueRespectsContext(t *testing.T) {
	addr := acmetest.Blackhole(t)
	iss, _ := newIssuer(t, acmetest.PublicDir(t), "")
	req := events.CertIssueRequest{HostID: hostID, Domains: []string{"localhost"}, DirectoryURL: "https://" + addr + "/dir"}
	for attempt := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		start := time.Now()
		_, err := iss.Issue(ctx, req)
		took := time.Since(start)
		cancel()
		if events.ErrorCode(err) != events.CodeUnavailable || !strings.Contains(err.Error(), "timed out before the CA issued it") {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
		if took > 2*time.Second {
			t.Errorf("attempt %d returned after %s", attempt, took)
		}
	}
}

// TestIssueRejectsInvalidInput checks the request before anything touches
// the CA or the disk.
func TestIssueRejectsInvalidInput(t *testing.T) {
	iss, cfg := newIssuer(t, acmetest.PublicDir(t), "")
	ok := events.CertIssueRequest{HostID: hostID, Domains: []string{"a.example.com"}, DirectoryURL: "https://127.0.0.1:1/dir"}
	cases := []struct {
		name  string
		edit  func(r *events.CertIssueRequest)
		field string
	}{
		{"no host", func(r *events.CertIssueRequest) { r.HostID = "" }, "host_id"},
		{"host with path", func(r *events.CertIssueRequest) { r.HostID = "../etc" }, "host_id"},
		{"host upper case", func(r *events.CertIssueRequest) { r.HostID = "ABC" }, "host_id"},
		{"host too long", func(r *events.CertIssueRequest) { r.HostID = strings.Repeat("a", 65) }, "host_id"},
		{"no domains", func(r *events.CertIssueRequest) { r.Domains = nil }, "domains"},
		{"too many domains", func(r *events.CertIssueRequest) { r.Domains = make([]string, 101) }, "domains"},
		{"empty domain", func(r *events.CertIssueRequest) { r.Domains = []string{"a.com", ""} }, "domains[1]"},
		{"wildcard", func(r *events.CertIssueRequest) { r.Domains = []string{"*.example.com"} }, "domains[0]"},
		{"single label", func(r *events.CertIssueRequest) { r.Domains = []string{"intranet"} }, "domains[0]"},
		{"injection", func(r *events.CertIssueRequest) { r.Domains = []string{"a.com;\nroot /"} }, "domains[0]"},
		{"path", func(r *events.CertIssueRequest) { r.Domains = []string{"../../x.com"} }, "domains[0]"},
		{"unicode", func(r *events.CertIssueRequest) { r.Domains = []string{"exämple.com"} }, "domains[0]"},
		{"label too long", func(r *events.CertIssueRequest) { r.Domains = []string{strings.Repeat("a", 64) + ".com"} }, "domains[0]"},
		{"hyphen edge", func(r *events.CertIssueRequest) { r.Domains = []string{"-a.com"} }, "domains[0]"},
		{"plain http directory", func(r *events.CertIssueRequest) { r.DirectoryURL = "http://ca.example/dir" }, "directory_url"},
		{"no directory", func(r *events.CertIssueRequest) { r.DirectoryURL = "" }, "directory_url"},
		{"directory without host", func(r *events.CertIssueRequest) { r.DirectoryURL = "https:///dir" }, "directory_url"},
		{"bad email", func(r *events.CertIssueRequest) { r.Email = "Ops <ops@example.com>" }, "email"},
		{"email with newline", func(r *events.CertIssueRequest) { r.Email = "ops@example.com\nx" }, "email"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := ok
			req.Domains = append([]string(nil), ok.Domains...)
			tc.edit(&req)
			_, err := iss.Issue(context.Background(), req)
			var e *events.Error
			if !errors.As(err, &e) || e.Code != events.CodeInvalid {
				t.Fatalf("error %v, want invalid", err)
			}
			found := false
			for _, f := range e.Fields {
				found = found || f.Field == tc.field
			}
			if !found {
				t.Errorf("fields %+v lack %s", e.Fields, tc.field)
			}
		})
	}
	if _, ok := iss.Stored("../" + hostID); ok {
		t.Error("Stored accepted a path as host id")
	}
	if entries, _ := os.ReadDir(cfg.CertsDir); len(entries) != 0 {
		t.Errorf("invalid requests created %d entries in the certs dir", len(entries))
	}
}

type leafInfo struct {
	serial, issuer string
	notAfter       time.Time
	names          []string
}

func readLeaf(t *testing.T, path string) leafInfo {
	t.Helper()
	c := acmetest.ParseLeaf(t, readFile(t, path))
	return leafInfo{serial: c.SerialNumber.Text(16), issuer: c.Issuer.CommonName, notAfter: c.NotAfter.UTC(), names: c.DNSNames}
}

func sameCert(a, b events.CertIssued) bool {
	return a.HostID == b.HostID && a.Serial == b.Serial && a.Issuer == b.Issuer &&
		a.NotAfter.Equal(b.NotAfter) && a.NotBefore.Equal(b.NotBefore) &&
		strings.Join(a.Domains, ",") == strings.Join(b.Domains, ",")
}

func assertMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode() & (fs.ModeDir | fs.ModePerm); got != want {
		t.Errorf("%s: mode %v, want %v", path, got, want)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testLogger collects the issuer's log and shows it when the test fails.
// It writes to a buffer, not t.Log: an abandoned lego goroutine may still
// log after the test returned.
func testLogger(t *testing.T) *slog.Logger {
	var mu sync.Mutex
	var buf bytes.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			mu.Lock()
			defer mu.Unlock()
			t.Logf("issuer log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type lockedWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}
