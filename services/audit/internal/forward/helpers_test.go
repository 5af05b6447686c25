package forward

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// testCfg reaches the loopback receivers of the tests quickly.
var testCfg = Config{Batch: 50, MaxWait: 50 * time.Millisecond, MinBackoff: 20 * time.Millisecond,
	MaxBackoff: 200 * time.Millisecond, Timeout: 5 * time.Second, AllowPrivateNetworks: true}

func chain(t testing.TB, org string, from, n int) []events.AuditEntry {
	t.Helper()
	out := make([]events.AuditEntry, n)
	for i := range out {
		idx := from + i
		out[i] = events.AuditEntry{
			OrgID: org, Index: uint64(idx), PrevHash: events.GenesisHash, Hash: fmt.Sprintf("%064x", idx),
			EventID: fmt.Sprintf("%s-%d", org, idx), Time: time.Date(2026, 11, 29, 10, 0, idx%60, 123456789, time.UTC).Format(time.RFC3339Nano),
			Actor:  events.Actor{Kind: events.ActorUser, ID: `usr "1"]`, IP: "203.0.113.5", UserAgent: "ua\nnext"},
			Action: "tenancy.member.added", Resource: events.AuditResource{Type: "org", ID: org},
			Outcome: events.OutcomeSuccess, Details: json.RawMessage(`{"user_id":"usr_2","role":"admin"}`),
		}
	}
	return out
}

func jetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	_, js := natstest.Run(t).JetStream()
	return js
}

func publish(t *testing.T, js jetstream.JetStream, entries []events.AuditEntry) {
	t.Helper()
	for _, e := range entries {
		raw, _ := json.Marshal(e)
		if _, err := js.Publish(context.Background(), events.AuditChain(e.OrgID), raw); err != nil {
			t.Fatal(err)
		}
	}
}

// received collects delivered entries by index, in arrival order.
type received struct {
	mu    sync.Mutex
	order []uint64
	seen  map[uint64]int
	orgs  map[string]bool
}

func newReceived() *received { return &received{seen: map[uint64]int{}, orgs: map[string]bool{}} }

func (r *received) add(e events.AuditEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen[e.Index] == 0 {
		r.order = append(r.order, e.Index)
	}
	r.seen[e.Index]++
	r.orgs[e.OrgID] = true
}

// waitAll waits until indexes from..to have all arrived, then checks they
// first arrived in chain order.
func (r *received) waitAll(t *testing.T, from, to int) {
	t.Helper()
	natstest.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		for i := from; i <= to; i++ {
			if r.seen[uint64(i)] == 0 {
				return fmt.Errorf("entry %d not received (%d distinct so far)", i, len(r.order))
			}
		}
		return nil
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	if !slices.IsSorted(r.order) {
		t.Fatalf("entries arrived out of order: %v", r.order)
	}
}

func (r *received) hasOrg(org string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.orgs[org]
}

func (r *received) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.order)
}

func certPEM(srv *httptest.Server) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
}

// selfSigned returns a TLS certificate for 127.0.0.1 and its PEM.
func selfSigned(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "syslog.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"syslog.test"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// syslogReceiver is a real RFC 5425 receiver: it accepts TCP (or TLS)
// connections and parses octet-counted frames.
type syslogReceiver struct {
	t     *testing.T
	ln    net.Listener
	got   *received
	mu    sync.Mutex
	conns []net.Conn
	bad   []string
}

func startSyslog(t *testing.T, tlsCert *tls.Certificate) *syslogReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if tlsCert != nil {
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{*tlsCert}, MinVersion: tls.VersionTLS12})
	}
	r := &syslogReceiver{t: t, ln: ln, got: newReceived()}
	go r.accept()
	t.Cleanup(func() { ln.Close(); r.dropConns() })
	return r
}

func (r *syslogReceiver) accept() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		r.conns = append(r.conns, c)
		r.mu.Unlock()
		go r.serve(c)
	}
}

func (r *syslogReceiver) serve(c net.Conn) {
	br := bufio.NewReader(c)
	for {
		lenStr, err := br.ReadString(' ')
		if err != nil {
			return
		}
		n, err := strconv.Atoi(strings.TrimSuffix(lenStr, " "))
		if err != nil || n <= 0 || n > 1<<20 {
			r.fail("bad frame length %q", lenStr)
			return
		}
		msg := make([]byte, n)
		if _, err := io.ReadFull(br, msg); err != nil {
			return
		}
		e, err := parseSyslogEntry(string(msg))
		if err != nil {
			r.fail("%v: %q", err, msg)
			return
		}
		r.got.add(e)
	}
}

// parseSyslogEntry checks the RFC 5424 frame and reads the entry from MSG.
func parseSyslogEntry(msg string) (events.AuditEntry, error) {
	var e events.AuditEntry
	if !strings.HasPrefix(msg, "<110>1 ") || !strings.Contains(msg, "[infrapilot@32473 ") {
		return e, fmt.Errorf("not an InfraPilot RFC 5424 message")
	}
	i := strings.LastIndex(msg, "] {")
	if i < 0 {
		return e, fmt.Errorf("no JSON MSG")
	}
	err := json.Unmarshal([]byte(msg[i+2:]), &e)
	return e, err
}

func (r *syslogReceiver) fail(format string, args ...any) {
	r.mu.Lock()
	r.bad = append(r.bad, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

// dropConns closes every open connection, as a receiver restart would.
func (r *syslogReceiver) dropConns() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.Close()
	}
	r.conns = nil
}

func (r *syslogReceiver) checkClean() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.bad) > 0 {
		r.t.Fatalf("receiver saw bad frames: %v", r.bad)
	}
}

// runForwarder runs f until the test ends (or stop is called).
func runForwarder(t *testing.T, f *Forwarder) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := f.Run(ctx); err != nil {
			t.Errorf("forwarder: %v", err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}
