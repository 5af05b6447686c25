package nginxconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden/")

// golden compares got with testdata/golden/<name>, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run the test with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (rerun with -update if intended)\n got:\n%s\nwant:\n%s", name, got, want)
	}
}

// nginxBin is the real nginx the tests run `nginx -t` with.
func nginxBin(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("INFRAPILOT_TEST_NGINX")
	if bin == "" {
		t.Fatalf("INFRAPILOT_TEST_NGINX is not set: run `export $(deploy/test/acme.sh start | tr '\\n' ' ')` " +
			"or `export INFRAPILOT_TEST_NGINX=$(command -v nginx)` (apt-get install -y nginx)")
	}
	return bin
}

// testRoot is a temporary agent root: gen/x/hosts, logs, run, acme, certs.
type testRoot struct {
	dir, gen string
}

func newTestRoot(t testing.TB) testRoot {
	t.Helper()
	dir := t.TempDir()
	r := testRoot{dir: dir, gen: filepath.Join(dir, "gen", "x")}
	for _, d := range []string{filepath.Join(r.gen, "hosts"), "logs", "run", "acme", "certs"} {
		if !filepath.IsAbs(d) {
			d = filepath.Join(dir, d)
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// layout is the test root's layout (nginx -t binds no ports).
func (r testRoot) layout() Layout {
	return Layout{Root: r.dir, Kind: events.NginxKindLocal, HTTPPort: 80, HTTPSPort: 443, CheckPort: DefaultCheckPort}
}

// writeCert stores a self-signed certificate for domains as host id's
// fullchain.pem and privkey.pem.
func (r testRoot) writeCert(t testing.TB, id string, domains []string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "infrapilot test"},
		DNSNames:     domains,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	chain, priv := CertPaths(r.layout(), id)
	if err := os.MkdirAll(filepath.Dir(chain), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(priv, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// nginxT writes files into the generation directory (replacing its hosts)
// and runs the real `nginx -t` on it, returning nginx's output.
func (r testRoot) nginxT(t testing.TB, files []events.NginxFile) (string, error) {
	t.Helper()
	hosts := filepath.Join(r.gen, "hosts")
	if err := os.RemoveAll(hosts); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(hosts, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		for _, req := range f.Requires {
			if _, err := os.Stat(req); err != nil {
				t.Fatalf("%s requires %s: %v", f.Path, req, err)
			}
		}
		if err := os.WriteFile(filepath.Join(r.gen, filepath.FromSlash(f.Path)), []byte(f.Content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(nginxBin(t), "-t", "-p", r.dir, "-e", filepath.Join(r.dir, "logs", "error.log"),
		"-c", filepath.Join(r.gen, "nginx.conf"))
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// fieldsOf returns the field names of Validate's error ("" for nil).
func fieldsOf(t testing.TB, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	e, ok := err.(*events.Error)
	if !ok || e.Code != events.CodeInvalid {
		t.Fatalf("Validate returned %T %v, want *events.Error invalid", err, err)
	}
	out := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		out[i] = f.Field
	}
	return out
}
