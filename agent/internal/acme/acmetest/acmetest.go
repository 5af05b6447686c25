// Package acmetest runs the real programs certificate tests need: pebble
// (Let's Encrypt's test CA, validating HTTP-01 for real), its
// pebble-challtestsrv as a DNS server for names other than localhost, and
// a private nginx serving an ACME webroot. deploy/test/acme.sh installs
// them and prints the environment variables naming them; a test that
// needs them fails, never skips, when they are unset, because CI must
// provide them. Every process is private to the test (free ports, files
// under temporary directories) and stopped, by its own pid, at cleanup.
package acmetest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Environment variables naming the programs (see deploy/test/acme.sh).
const (
	EnvNginx         = "INFRAPILOT_TEST_NGINX"
	EnvPebble        = "INFRAPILOT_TEST_PEBBLE"
	EnvChallTestSrv  = "INFRAPILOT_TEST_PEBBLE_CHALLTESTSRV"
	EnvPebbleCerts   = "INFRAPILOT_TEST_PEBBLE_CERTS"
	setupInstruction = "export $(deploy/test/acme.sh start | tr '\\n' ' ')"
)

// startTimeout bounds how long a program may take to become ready.
const startTimeout = 15 * time.Second

// Env returns the value of an environment variable or fails the test.
func Env(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is unset: run `%s` in the repository root", name, setupInstruction)
	}
	return v
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// PublicDir returns a new empty directory that every user can traverse
// (0755, as are its parents up to the system's temporary directory), for
// files nginx's workers read as user nobody. t.TempDir's are 0700.
func PublicDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "infrapilot-acmetest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Process is a program started for a test.
type Process struct {
	Name string
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// start runs a program with its output in logFile; it is stopped at
// cleanup, and its log shown when the test failed.
func start(t testing.TB, name, logFile string, env []string, bin string, args ...string) *Process {
	t.Helper()
	out, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &Process{Name: name, cmd: cmd, done: make(chan struct{}), log: logFile}
	go func() { cmd.Wait(); out.Close(); close(p.done) }()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			t.Logf("%s output:\n%s", name, tail(string(b), 4000))
		}
	})
	return p
}

// Stop ends the program (SIGTERM, then SIGKILL after five seconds) and
// waits for it. It is idempotent.
func (p *Process) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// Exited reports whether the program has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitReady polls ready until it succeeds, the program exits or the
// start timeout passes.
func waitReady(t testing.TB, p *Process, ready func() error) {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		err := ready()
		if err == nil {
			return
		}
		if p.Exited() {
			b, _ := os.ReadFile(p.log)
			t.Fatalf("%s exited before it was ready (%v):\n%s", p.Name, err, tail(string(b), 4000))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %s: %v", p.Name, startTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Nginx is a private nginx serving an ACME webroot on 127.0.0.1:Port.
type Nginx struct {
	*Process
	Port      int
	Dir       string
	AccessLog string
	ErrorLog  string
}

// StartWebrootNginx runs `nginx -p DIR -c DIR/nginx.conf -g 'daemon off;'`
// with one server that answers /.well-known/acme-challenge/ from webroot
// (which must be readable by nobody, see PublicDir) and 404 otherwise,
// the way the agent's rendered port-80 servers do.
func StartWebrootNginx(t testing.TB, webroot string) *Nginx {
	t.Helper()
	bin := Env(t, EnvNginx)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	n := &Nginx{Port: FreePort(t), Dir: dir,
		AccessLog: filepath.Join(dir, "access.log"), ErrorLog: filepath.Join(dir, "error.log")}
	conf := fmt.Sprintf(`worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 64; }
http {
    access_log %[1]s/access.log;
    client_body_temp_path %[1]s/client_body_temp;
    proxy_temp_path %[1]s/proxy_temp;
    fastcgi_temp_path %[1]s/fastcgi_temp;
    uwsgi_temp_path %[1]s/uwsgi_temp;
    scgi_temp_path %[1]s/scgi_temp;
    default_type text/plain;
    server {
        listen 127.0.0.1:%[2]d;
        server_name _;
        location ^~ /.well-known/acme-challenge/ { root %[3]s; }
        location / { return 404; }
    }
}
`, dir, n.Port, webroot)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	n.Process = start(t, "nginx", filepath.Join(dir, "nginx.out"), nil, bin,
		"-p", dir, "-e", n.ErrorLog, "-c", filepath.Join(dir, "nginx.conf"), "-g", "daemon off;")
	addr := fmt.Sprintf("127.0.0.1:%d", n.Port)
	waitReady(t, n.Process, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
	return n
}

// Pebble is a running pebble.
type Pebble struct {
	*Process
	// DirectoryURL is the ACME directory (https://localhost:<port>/dir).
	DirectoryURL string
	// CAFile is pebble.minica.pem, the CA of pebble's HTTPS listener.
	CAFile string
}

// StartPebble runs pebble validating HTTP-01 on httpPort with real
// requests (PEBBLE_VA_NOSLEEP only removes its artificial delay; nonces
// are never rejected at random) and resolving names with the system
// resolver, so only localhost validates. It returns the directory URL and
// the CA file to trust for it.
func StartPebble(t testing.TB, httpPort int) (directoryURL, caFile string) {
	p := StartPebbleDNS(t, httpPort, "")
	return p.DirectoryURL, p.CAFile
}

// StartPebbleDNS is StartPebble resolving names with the DNS server at
// dnsServer ("host:port", see StartChallTestSrv) unless it is empty.
func StartPebbleDNS(t testing.TB, httpPort int, dnsServer string) *Pebble {
	t.Helper()
	bin := Env(t, EnvPebble)
	certs := Env(t, EnvPebbleCerts)
	dir := t.TempDir()
	port, mgmt, tlsPort := FreePort(t), FreePort(t), FreePort(t)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":                  fmt.Sprintf("127.0.0.1:%d", port),
		"managementListenAddress":        fmt.Sprintf("127.0.0.1:%d", mgmt),
		"certificate":                    filepath.Join(certs, "localhost", "cert.pem"),
		"privateKey":                     filepath.Join(certs, "localhost", "key.pem"),
		"httpPort":                       httpPort,
		"tlsPort":                        tlsPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
	}}
	b, _ := json.Marshal(cfg)
	cfgFile := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"-config", cfgFile}
	if dnsServer != "" {
		args = append(args, "-dnsserver", dnsServer)
	}
	p := &Pebble{
		DirectoryURL: fmt.Sprintf("https://localhost:%d/dir", port),
		CAFile:       filepath.Join(certs, "pebble.minica.pem"),
	}
	p.Process = start(t, "pebble", filepath.Join(dir, "pebble.log"),
		[]string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0"}, bin, args...)
	client := httpsClient(t, p.CAFile)
	waitReady(t, p.Process, func() error {
		resp, err := client.Get(p.DirectoryURL)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", p.DirectoryURL, resp.Status)
		}
		return nil
	})
	return p
}

// StartChallTestSrv runs pebble-challtestsrv as a DNS server answering
// every A query with 127.0.0.1 (and no AAAA), with its HTTP challenge
// servers disabled, and returns its address for StartPebbleDNS.
func StartChallTestSrv(t testing.TB) string {
	t.Helper()
	bin := Env(t, EnvChallTestSrv)
	addr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	p := start(t, "pebble-challtestsrv", filepath.Join(t.TempDir(), "challtestsrv.log"), nil, bin,
		"-defaultIPv4", "127.0.0.1", "-defaultIPv6", "", "-dns01", addr, "-http01", "", "-https01", "",
		"-tlsalpn01", "", "-management", fmt.Sprintf("127.0.0.1:%d", FreePort(t)))
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "udp", addr)
	}}
	waitReady(t, p, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := r.LookupHost(ctx, "ready.acmetest.test")
		return err
	})
	return addr
}

// httpsClient trusts only the CA in caFile.
func httpsClient(t testing.TB, caFile string) *http.Client {
	t.Helper()
	ca, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatalf("%s holds no certificate", caFile)
	}
	return &http.Client{Timeout: 2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// ChallengeRequests returns the lines of nginx's access log that fetched
// an ACME challenge, proof that validation went through nginx.
func (n *Nginx) ChallengeRequests(t testing.TB) []string {
	t.Helper()
	b, err := os.ReadFile(n.AccessLog)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "/.well-known/acme-challenge/") {
			out = append(out, l)
		}
	}
	return out
}

// Blackhole listens on 127.0.0.1, accepts connections and never answers,
// the way a CA behind a broken network path hangs a client; it returns
// the address. Connections are closed at cleanup.
func Blackhole(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				for _, c := range conns {
					c.Close()
				}
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return l.Addr().String()
}

// ParseLeaf returns the first certificate of a PEM bundle.
func ParseLeaf(t testing.TB, chain []byte) *x509.Certificate {
	t.Helper()
	for rest := chain; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			t.Fatal("no certificate in the PEM bundle")
		}
		if blk.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
	}
}
