// Package acme obtains the certificates of the agent's proxy hosts from an
// ACME CA (Let's Encrypt, or pebble in tests) with lego. Validation is
// HTTP-01 only: the challenge file is written into the webroot that nginx
// serves under /.well-known/acme-challenge/ on every port-80 server, so the
// agent needs no listener of its own and keeps working while nginx serves
// traffic. The agent holds one ACME account (key and registration) per CA
// directory under its state directory, because an agent belongs to one
// org; certificates are stored per host where the rendered nginx config
// refers to them.
package acme

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-acme/lego/v4/certcrypto"
	"github.com/go-acme/lego/v4/certificate"
	"github.com/go-acme/lego/v4/challenge/http01"
	"github.com/go-acme/lego/v4/lego"
	"github.com/go-acme/lego/v4/providers/http/webroot"

	"github.com/infrapilot/infrapilot/events"
)

// Config configures an Issuer.
type Config struct {
	// StateDir is the agent's state directory; the ACME accounts live in
	// StateDir/acme (0700, files 0600): the account key is a secret.
	StateDir string
	// Webroot is the directory nginx serves /.well-known/acme-challenge/
	// from. Challenge files and their directories are made world-readable
	// because nginx workers run as an unprivileged user.
	Webroot string
	// CertsDir holds the certificates: CertsDir/<host>/fullchain.pem and
	// privkey.pem (0600, in a 0700 directory; nginx's master process reads
	// them as root) and cert.json, the metadata reported upstream.
	CertsDir string
	// CAFile is an optional PEM bundle trusted for the ACME server's HTTPS
	// (pebble's minica in tests). Empty means the system roots, or the
	// files named by lego's LEGO_CA_CERTIFICATES variable.
	CAFile string
	// Log receives progress and lego's own messages (at debug level).
	Log *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// UserAgent identifies the agent to the CA.
const UserAgent = "infrapilot-agent"

// Request timeouts towards the CA. lego has no context in its API, so
// these bound how long one stuck HTTP exchange can hold an issue; the
// whole issue is bounded by the caller's context (see Issue).
const (
	dialTimeout    = 15 * time.Second
	headerTimeout  = 30 * time.Second
	requestTimeout = time.Minute
	// orderTimeout is how long lego waits for the CA to finalize an order.
	orderTimeout = 60 * time.Second
)

// Issuer obtains and stores certificates. It is safe for concurrent use:
// issues for one host are serialised (they write the same files), issues
// for different hosts run in parallel and share the account.
type Issuer struct {
	cfg       Config
	accDir    string
	transport *http.Transport

	// acctMu serialises loading and registering accounts, so that two
	// parallel first issues do not register two accounts.
	acctMu sync.Mutex

	hostsMu sync.Mutex
	hosts   map[string]chan struct{} // per-host semaphore, capacity 1
}

// New checks the configuration, creates the directories and returns an
// Issuer. It does not contact the CA.
func New(cfg Config) (*Issuer, error) {
	if cfg.StateDir == "" || cfg.Webroot == "" || cfg.CertsDir == "" {
		return nil, errors.New("acme: StateDir, Webroot and CertsDir are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	for _, p := range []*string{&cfg.StateDir, &cfg.Webroot, &cfg.CertsDir} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return nil, fmt.Errorf("acme: %w", err)
		}
		*p = abs
	}
	accDir := filepath.Join(cfg.StateDir, "acme")
	if err := os.MkdirAll(accDir, 0o700); err != nil {
		return nil, fmt.Errorf("acme: %w", err)
	}
	if err := os.Chmod(accDir, 0o700); err != nil {
		return nil, fmt.Errorf("acme: %w", err)
	}
	if err := os.MkdirAll(cfg.CertsDir, 0o700); err != nil {
		return nil, fmt.Errorf("acme: %w", err)
	}
	if err := publicDir(cfg.Webroot); err != nil {
		return nil, err
	}
	roots, err := rootCAs(cfg.CAFile)
	if err != nil {
		return nil, err
	}
	setLegoLogger(cfg.Log)
	return &Issuer{
		cfg:    cfg,
		accDir: accDir,
		transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   dialTimeout,
			ResponseHeaderTimeout: headerTimeout,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   4,
			TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		},
		hosts: map[string]chan struct{}{},
	}, nil
}

// rootCAs is the pool trusted for the CA's HTTPS: CAFile, else lego's
// LEGO_CA_CERTIFICATES (read here, because lego itself panics on a bad
// file), else nil for the system roots.
func rootCAs(caFile string) (*x509.CertPool, error) {
	files := []string{caFile}
	if caFile == "" {
		env := os.Getenv("LEGO_CA_CERTIFICATES")
		if env == "" {
			return nil, nil
		}
		files = strings.Split(env, string(os.PathListSeparator))
	}
	pool, err := lego.CreateCertPool(files, false)
	if err != nil {
		return nil, fmt.Errorf("acme: CA bundle: %w", err)
	}
	return pool, nil
}

// result is what the issuing goroutine hands back.
type result struct {
	cert events.CertIssued
	err  error
}

// Issue obtains a certificate for req.Domains with HTTP-01 and stores it
// for req.HostID, replacing the previous one. It returns when the
// certificate is stored, when the CA refused (an *events.Error whose
// message carries the CA's problem detail: it becomes the host's failure
// reason), or when ctx ends.
//
// lego's API takes no context, so the work runs in a goroutine. Every
// HTTP request it makes carries ctx, so after ctx ends its next request
// fails and the goroutine finishes on its own after Issue has returned:
// at once when it is waiting on the CA, or after its current pause
// between authorization polls (lego backs off up to 50 s); until then it holds
// the host's lock, so a retry for the same host waits instead of racing
// it on the same files.
func (i *Issuer) Issue(ctx context.Context, req events.CertIssueRequest) (events.CertIssued, error) {
	req, err := validateRequest(req)
	if err != nil {
		return events.CertIssued{}, err
	}
	release, err := i.lockHost(ctx, req.HostID)
	if err != nil {
		return events.CertIssued{}, events.Errorf(events.CodeUnavailable,
			"certificate for %s: gave up waiting for a running issue of the same host: %w", req.HostID, err)
	}
	done := make(chan result, 1)
	go func() {
		defer release()
		c, err := i.issue(ctx, req)
		done <- result{c, err}
	}()
	select {
	case r := <-done:
		return r.cert, r.err
	case <-ctx.Done():
		return events.CertIssued{}, events.Errorf(events.CodeUnavailable,
			"certificate for %s: %s: %w", strings.Join(req.Domains, ", "), ctxReason(ctx), ctx.Err())
	}
}

func ctxReason(ctx context.Context) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return "timed out before the CA issued it"
	}
	return "cancelled"
}

// issue is the body of Issue: account, order, validation, storage.
func (i *Issuer) issue(ctx context.Context, req events.CertIssueRequest) (events.CertIssued, error) {
	start := i.cfg.Now()
	log := i.cfg.Log.With("host_id", req.HostID, "domains", req.Domains)
	log.Info("acme: obtaining certificate", "directory", req.DirectoryURL)

	hc := &http.Client{Transport: ctxTransport{ctx: ctx, base: i.transport}, Timeout: requestTimeout}
	acct, client, err := i.account(hc, req.DirectoryURL, req.Email)
	if err != nil {
		return events.CertIssued{}, i.failure(ctx, req, "ACME account", err)
	}
	res, err := obtain(client, req.Domains, i.cfg.Webroot)
	if err != nil && problemType(err) == problemAccountDoesNotExist {
		// The CA forgot the account (pebble restarted, or the account was
		// deactivated upstream): register the same key again, once.
		log.Warn("acme: the CA does not know the stored account; registering again", "err", err)
		if acct, client, err = i.reregister(hc, acct); err == nil {
			res, err = obtain(client, req.Domains, i.cfg.Webroot)
		}
	}
	if err != nil {
		e := i.failure(ctx, req, "obtain", err)
		log.Warn("acme: certificate failed", "reason", e.Message)
		return events.CertIssued{}, e
	}
	// The certificate is stored even if ctx ended meanwhile: it was issued
	// (and counted against the CA's rate limits), and the next issue for
	// the host simply replaces it.
	issued, err := i.store(req, res.Certificate, res.PrivateKey, res.CertURL)
	if err != nil {
		return events.CertIssued{}, events.Errorf(events.CodeInternal, "certificate for %s: store: %w", req.HostID, err)
	}
	log.Info("acme: certificate stored", "not_after", issued.NotAfter, "issuer", issued.Issuer,
		"serial", issued.Serial, "took", i.cfg.Now().Sub(start).Round(time.Millisecond))
	return issued, nil
}

// obtain runs one order through lego: HTTP-01 via the webroot, an EC P-256
// certificate key, the bundle (leaf + intermediates) that nginx serves.
func obtain(client *lego.Client, domains []string, root string) (*certificate.Resource, error) {
	provider, err := newWebrootProvider(root)
	if err != nil {
		return nil, err
	}
	if err := client.Challenge.SetHTTP01Provider(provider); err != nil {
		return nil, err
	}
	return client.Certificate.Obtain(certificate.ObtainRequest{Domains: domains, Bundle: true})
}

// newClient builds a lego client for a user. It fetches the CA's
// directory, so it fails when the CA is unreachable.
func newClient(hc *http.Client, directoryURL string, user *account) (*lego.Client, error) {
	return lego.NewClient(&lego.Config{
		CADirURL:   directoryURL,
		User:       user,
		UserAgent:  UserAgent,
		HTTPClient: hc,
		Certificate: lego.CertificateConfig{
			KeyType: certcrypto.EC256,
			Timeout: orderTimeout,
		},
	})
}

// lockHost takes the host's semaphore, or gives up when ctx ends.
func (i *Issuer) lockHost(ctx context.Context, host string) (func(), error) {
	i.hostsMu.Lock()
	sem, ok := i.hosts[host]
	if !ok {
		sem = make(chan struct{}, 1)
		i.hosts[host] = sem
	}
	i.hostsMu.Unlock()
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// ctxTransport makes every request of one issue carry its context, since
// lego builds its requests with context.Background.
type ctxTransport struct {
	ctx  context.Context
	base http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t ctxTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return t.base.RoundTrip(r.WithContext(t.ctx))
}

// webrootProvider is lego's webroot provider, plus permissions: lego
// creates the challenge directories 0755 and files 0644 subject to the
// process umask, and an agent started with umask 077 would write files
// nginx's workers (user nobody) cannot read.
type webrootProvider struct {
	root  string
	inner *webroot.HTTPProvider
}

func newWebrootProvider(root string) (*webrootProvider, error) {
	inner, err := webroot.NewHTTPProvider(root)
	if err != nil {
		return nil, fmt.Errorf("acme: webroot %s: %w", root, err)
	}
	return &webrootProvider{root: root, inner: inner}, nil
}

// Present writes the key authorization where nginx serves it.
func (w *webrootProvider) Present(domain, token, keyAuth string) error {
	for _, d := range []string{".well-known", filepath.Join(".well-known", "acme-challenge")} {
		if err := publicDir(filepath.Join(w.root, d)); err != nil {
			return err
		}
	}
	if err := w.inner.Present(domain, token, keyAuth); err != nil {
		return err
	}
	return os.Chmod(filepath.Join(w.root, http01.ChallengePath(token)), 0o644)
}

// CleanUp removes the challenge file.
func (w *webrootProvider) CleanUp(domain, token, keyAuth string) error {
	return w.inner.CleanUp(domain, token, keyAuth)
}

// publicDir creates dir and every missing parent world-traversable, and
// makes dir itself (and the parents below an existing ancestor) 0755.
func publicDir(dir string) error {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		missing = append(missing, d)
		if d == filepath.Dir(d) {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("acme: webroot: %w", err)
	}
	for _, d := range append(missing, dir) {
		if err := os.Chmod(d, 0o755); err != nil {
			return fmt.Errorf("acme: webroot: %w", err)
		}
	}
	return nil
}
