package acme

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/infrapilot/infrapilot/agent/internal/state"
	"github.com/infrapilot/infrapilot/events"
)

// Files of a host's certificate directory, CertsDir/<host>/. The rendered
// nginx config refers to FullchainFile and KeyFile.
const (
	FullchainFile = "fullchain.pem"
	KeyFile       = "privkey.pem"
	MetaFile      = "cert.json"
)

// certMeta is cert.json: what was issued, and from where.
type certMeta struct {
	events.CertIssued
	DirectoryURL string    `json:"directory_url"`
	CertURL      string    `json:"cert_url,omitempty"`
	StoredAt     time.Time `json:"stored_at"`
}

// HostDir is the directory holding host's certificate.
func (i *Issuer) HostDir(host string) string { return filepath.Join(i.cfg.CertsDir, host) }

// store checks that the chain and key belong together and writes them.
// Each file is replaced atomically (temporary file, fsync, rename; 0600 in
// a 0700 directory: the key is a secret and only nginx's root master reads
// it). The key is written before the chain: nginx only reads the pair at a
// reload, which the nginx controller verifies with `nginx -t` first, so a
// reload racing the two renames fails the test and keeps the old config.
// cert.json is written last: it is the record that the pair is complete.
func (i *Issuer) store(req events.CertIssueRequest, chain, key []byte, certURL string) (events.CertIssued, error) {
	if _, err := tls.X509KeyPair(chain, key); err != nil {
		return events.CertIssued{}, fmt.Errorf("the CA's certificate does not match its key: %w", err)
	}
	leaf, err := parseLeaf(chain)
	if err != nil {
		return events.CertIssued{}, err
	}
	dir, err := state.Open(i.HostDir(req.HostID))
	if err != nil {
		return events.CertIssued{}, err
	}
	if err := dir.WriteFile(KeyFile, key); err != nil {
		return events.CertIssued{}, err
	}
	if err := dir.WriteFile(FullchainFile, chain); err != nil {
		return events.CertIssued{}, err
	}
	issued := describeLeaf(req.HostID, leaf, req.Domains)
	meta := certMeta{CertIssued: issued, DirectoryURL: req.DirectoryURL, CertURL: certURL, StoredAt: i.cfg.Now().UTC()}
	if err := dir.WriteJSON(MetaFile, meta); err != nil {
		return events.CertIssued{}, err
	}
	return issued, nil
}

// Stored describes the certificate stored for host, read from its
// fullchain.pem (the truth nginx serves) with the domain order of
// cert.json, so the agent can report certificates it holds after a
// restart. It returns false when there is none or it is unreadable.
func (i *Issuer) Stored(host string) (events.CertIssued, bool) {
	if validHostID(host) != nil {
		return events.CertIssued{}, false
	}
	chain, err := os.ReadFile(filepath.Join(i.HostDir(host), FullchainFile))
	if err != nil {
		return events.CertIssued{}, false
	}
	leaf, err := parseLeaf(chain)
	if err != nil {
		i.cfg.Log.Warn("acme: stored certificate unreadable", "host_id", host, "err", err)
		return events.CertIssued{}, false
	}
	domains := leaf.DNSNames
	var meta certMeta
	if b, err := os.ReadFile(filepath.Join(i.HostDir(host), MetaFile)); err == nil &&
		json.Unmarshal(b, &meta) == nil && meta.Serial == serial(leaf) && len(meta.Domains) > 0 {
		domains = meta.Domains
	}
	return describeLeaf(host, leaf, domains), true
}

// parseLeaf returns the first certificate of a PEM bundle: the leaf, as
// ACME servers send it first (RFC 8555 §7.4.2).
func parseLeaf(chain []byte) (*x509.Certificate, error) {
	for rest := chain; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			return nil, errors.New("no certificate in the chain")
		}
		if blk.Type == "CERTIFICATE" {
			return x509.ParseCertificate(blk.Bytes)
		}
	}
}

// describeLeaf is the reported view of a certificate. Issuer is the
// issuing CA's common name, or its organisation when it has none.
func describeLeaf(host string, leaf *x509.Certificate, domains []string) events.CertIssued {
	issuer := leaf.Issuer.CommonName
	if issuer == "" && len(leaf.Issuer.Organization) > 0 {
		issuer = leaf.Issuer.Organization[0]
	}
	return events.CertIssued{
		HostID:    host,
		Domains:   append([]string(nil), domains...),
		NotBefore: leaf.NotBefore.UTC(),
		NotAfter:  leaf.NotAfter.UTC(),
		Issuer:    issuer,
		Serial:    serial(leaf),
	}
}

// serial is the certificate's serial number in lower-case hexadecimal,
// the form CAs' revocation and CT tools accept.
func serial(leaf *x509.Certificate) string { return leaf.SerialNumber.Text(16) }
