package nginxconf

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
)

// freePort returns a TCP port nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// checkFor polls fn until it succeeds or the timeout passes.
func checkFor(t *testing.T, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		<-time.After(20 * time.Millisecond)
	}
}

// TestRenderedConfigServes runs a real nginx on a rendered generation and
// sends requests through it: proxying with the upstream path, rate limits,
// the ACME webroot before the HTTPS redirect, TLS with HSTS, the check
// server and the default server.
func TestRenderedConfigServes(t *testing.T) {
	t.Parallel()
	bin := nginxBin(t)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s %s", r.Host, r.URL.Path, r.Header.Get("X-Forwarded-Proto"))
	}))
	defer upstream.Close()
	up := strings.TrimPrefix(upstream.URL, "http://")

	r := newTestRoot(t)
	// nginx workers run as nobody: they must reach the ACME webroot.
	for d := r.dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	l := r.layout()
	l.HTTPPort, l.HTTPSPort, l.CheckPort = freePort(t), freePort(t), freePort(t)
	hosts := []Host{
		{ID: "plain", Spec: Normalize(events.ProxyHostSpec{
			Domains: []string{"plain.test"}, Enabled: true, Upstream: events.Upstream{URL: "http://" + up + "/base/"},
			RateLimits:      []events.RateLimit{{Rate: 1, Per: "minute", Path: "/api"}},
			SecurityHeaders: events.SecurityHeaders{CSP: "default-src 'self'; img-src *", NoSniff: true},
		})},
		{ID: "secure", CertReady: true, Spec: Normalize(events.ProxyHostSpec{
			Domains: []string{"secure.test"}, Enabled: true, Upstream: events.Upstream{URL: "http://" + up},
			SSL: events.SSLSpec{Enabled: true, Force: true, HTTP2: true, HSTS: true},
		})},
	}
	r.writeCert(t, "secure", []string{"secure.test"})
	d, err := Desired(l, 5, events.ProxyModeManaged, hosts)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := r.nginxT(t, d.Files); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-p", r.dir, "-e", filepath.Join(r.dir, "logs", "error.log"),
		"-c", filepath.Join(r.gen, "nginx.conf"), "-g", "daemon off;")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGQUIT); _ = cmd.Wait() })

	client := &http.Client{
		Timeout:       2 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{DisableKeepAlives: true,
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "secure.test"}},
	}
	get := func(url, host string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Host = host
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s (Host %s): %v", url, host, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	httpURL := "http://127.0.0.1:" + strconv.Itoa(l.HTTPPort)
	checkFor(t, 5*time.Second, func() error {
		resp, err := client.Get("http://127.0.0.1:" + strconv.Itoa(l.CheckPort) + RevisionPath)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if string(b) != "5\n" {
			return fmt.Errorf("check server answered %q", b)
		}
		return nil
	})

	if resp, body := get(httpURL+"/x/y", "plain.test"); resp.StatusCode != 200 || body != "plain.test /base/x/y http" ||
		resp.Header.Get("Content-Security-Policy") != "default-src 'self'; img-src *" ||
		resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("plain: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if resp, body := get(httpURL+"/api/v", "plain.test"); resp.StatusCode != 200 || body != "plain.test /base/api/v http" {
		t.Errorf("plain /api: %d %q", resp.StatusCode, body)
	}
	if resp, _ := get(httpURL+"/api/v", "plain.test"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("second /api request within the rate limit window: %d, want 503", resp.StatusCode)
	}

	token := filepath.Join(r.dir, "acme", ".well-known", "acme-challenge")
	if err := os.MkdirAll(token, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(token, "tok"), []byte("tok.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"secure.test", "plain.test", "unknown.test"} {
		if resp, body := get(httpURL+"/.well-known/acme-challenge/tok", host); resp.StatusCode != 200 || body != "tok.key" {
			t.Errorf("ACME challenge via %s: %d %q", host, resp.StatusCode, body)
		}
	}
	if resp, _ := get(httpURL+"/z?q=1", "secure.test"); resp.StatusCode != http.StatusMovedPermanently ||
		resp.Header.Get("Location") != "https://secure.test:"+strconv.Itoa(l.HTTPSPort)+"/z?q=1" {
		t.Errorf("force SSL: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := get("https://127.0.0.1:"+strconv.Itoa(l.HTTPSPort)+"/z", "secure.test")
	if resp.StatusCode != 200 || body != "secure.test /z https" ||
		resp.Header.Get("Strict-Transport-Security") != "max-age=31536000" {
		t.Errorf("https: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if resp, _ := get(httpURL+"/", "unknown.test"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("default server: %d, want 404", resp.StatusCode)
	}
}
