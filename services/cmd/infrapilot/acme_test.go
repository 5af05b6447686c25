package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
)

// The variables deploy/test/acme.sh prints: the proxy tests run a real
// nginx (started by the agent) and a real ACME server (pebble) with a DNS
// server answering every name with 127.0.0.1 (pebble-challtestsrv), so
// that HTTP-01 validation really fetches the challenge from nginx.
const (
	envNginx        = "INFRAPILOT_TEST_NGINX"
	envPebble       = "INFRAPILOT_TEST_PEBBLE"
	envChallTestSrv = "INFRAPILOT_TEST_PEBBLE_CHALLTESTSRV"
	envPebbleCerts  = "INFRAPILOT_TEST_PEBBLE_CERTS"
)

func mustEnv(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is unset: run `export $(deploy/test/acme.sh start | tr '\\n' ' ')`", name)
	}
	return v
}

// acmeEnv is a running pebble and its DNS server.
type acmeEnv struct {
	DirectoryURL string
	CAFile       string // trusts pebble's HTTPS listener
	mgmt         string // pebble's management address (its issuing roots)
	dnsMgmt      string // challtestsrv's management address
}

// startProc starts a helper process in its own process group, killed at
// cleanup; its output goes to a file shown when the test fails.
func startProc(t *testing.T, name string, env []string, bin string, args ...string) {
	t.Helper()
	logFile := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		f.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			t.Logf("%s log:\n%s", name, tailString(string(b), 4000))
		}
	})
}

func tailString(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// startACME starts pebble-challtestsrv (every name resolves to 127.0.0.1
// over IPv4, nothing over IPv6) and pebble validating HTTP-01 on httpPort,
// without PEBBLE_VA_ALWAYS_VALID: validation is real.
func startACME(t *testing.T, httpPort int) *acmeEnv {
	t.Helper()
	certs := mustEnv(t, envPebbleCerts)
	dns := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	e := &acmeEnv{CAFile: filepath.Join(certs, "pebble.minica.pem"), dnsMgmt: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	startProc(t, "challtestsrv", nil, mustEnv(t, envChallTestSrv), "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
		"-dns01", dns, "-http01", "", "-https01", "", "-tlsalpn01", "", "-management", e.dnsMgmt)
	port := freePort(t)
	e.mgmt = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg, _ := json.Marshal(map[string]any{"pebble": map[string]any{
		"listenAddress": fmt.Sprintf("127.0.0.1:%d", port), "managementListenAddress": e.mgmt,
		"certificate": filepath.Join(certs, "localhost", "cert.pem"), "privateKey": filepath.Join(certs, "localhost", "key.pem"),
		"httpPort": httpPort, "tlsPort": freePort(t), "ocspResponderURL": "", "externalAccountBindingRequired": false,
	}})
	cfgFile := filepath.Join(t.TempDir(), "pebble.json")
	if err := os.WriteFile(cfgFile, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	startProc(t, "pebble", []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0"}, mustEnv(t, envPebble),
		"-config", cfgFile, "-dnsserver", dns)
	e.DirectoryURL = fmt.Sprintf("https://localhost:%d/dir", port)
	client := e.httpsClient(t, nil)
	natstest.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		resp, err := client.Get(e.DirectoryURL)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("pebble directory: %s", resp.Status)
		}
		return nil
	})
	return e
}

// httpsClient trusts pebble's listener CA plus extra roots.
func (e *acmeEnv) httpsClient(t *testing.T, extra []byte) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	b, err := os.ReadFile(e.CAFile)
	if err != nil || !pool.AppendCertsFromPEM(b) {
		t.Fatalf("pebble CA %s: %v", e.CAFile, err)
	}
	if extra != nil && !pool.AppendCertsFromPEM(extra) {
		t.Fatal("bad extra roots")
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// issuingRoot is the root pebble signs certificates under (it changes at
// every pebble start, so it is fetched from the management interface).
func (e *acmeEnv) issuingRoot(t *testing.T) []byte {
	t.Helper()
	resp, err := e.httpsClient(t, nil).Get("https://" + e.mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("pebble roots: %s %s", resp.Status, b)
	}
	return b
}

// resolveOnlyIPv6 makes name resolve to ::1 only, where nothing listens
// on the HTTP-01 port: pebble's validation of it fails with "connection
// refused", the way a customer's DNS pointing elsewhere fails.
func (e *acmeEnv) resolveOnlyIPv6(t *testing.T, name string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"host": name + ".", "addresses": []string{"::1"}})
	resp, err := http.Post("http://"+e.dnsMgmt+"/add-aaaa", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	body, _ = json.Marshal(map[string]any{"host": name + "."})
	if resp, err = http.Post("http://"+e.dnsMgmt+"/clear-a", "application/json", bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	body, _ = json.Marshal(map[string]any{"host": name + ".", "addresses": []string{}})
	if resp, err = http.Post("http://"+e.dnsMgmt+"/add-a", "application/json", bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// viaNginx sends a request to nginx on 127.0.0.1:port for host name.
func viaNginx(client *http.Client, scheme string, port int, host, path string) (int, string, http.Header, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s://%s:%d%s", scheme, host, port, path), nil)
	if err != nil {
		return 0, "", nil, err
	}
	c := *client
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if client.Transport != nil {
		tr = client.Transport.(*http.Transport).Clone()
	}
	// Every name is this machine: dial 127.0.0.1 whatever the host.
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		_, p, _ := net.SplitHostPort(addr)
		return (&net.Dialer{}).DialContext(ctx, network, "127.0.0.1:"+p)
	}
	c.Transport = tr
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), resp.Header, nil
}
