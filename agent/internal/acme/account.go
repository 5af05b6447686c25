package acme

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/go-acme/lego/v4/lego"
	"github.com/go-acme/lego/v4/registration"

	"github.com/infrapilot/infrapilot/agent/internal/state"
)

// account is the agent's ACME account at one CA directory: its key
// (StateDir/acme/<slug>.key.pem) and its registration
// (StateDir/acme/<slug>.json), both 0600. Keeping the registration means a
// restarted agent reuses the account instead of creating one per restart,
// which real CAs rate-limit. It implements lego's registration.User.
type account struct {
	DirectoryURL string                 `json:"directory_url"`
	Email        string                 `json:"email,omitempty"`
	Registration *registration.Resource `json:"registration"`
	CreatedAt    time.Time              `json:"created_at"`

	slug string
	key  crypto.PrivateKey
}

// GetEmail implements registration.User.
func (a *account) GetEmail() string { return a.Email }

// GetRegistration implements registration.User.
func (a *account) GetRegistration() *registration.Resource { return a.Registration }

// GetPrivateKey implements registration.User.
func (a *account) GetPrivateKey() crypto.PrivateKey { return a.key }

// AccountFiles returns the paths of the key and registration files of the
// account at directoryURL, for inspection (tests, support).
func (i *Issuer) AccountFiles(directoryURL string) (key, registration string) {
	s := slug(directoryURL)
	return filepath.Join(i.accDir, s+".key.pem"), filepath.Join(i.accDir, s+".json")
}

// slug names an account's files after its directory URL, so accounts at
// different CAs (staging and production) never share a registration.
func slug(directoryURL string) string {
	sum := sha256.Sum256([]byte(directoryURL))
	return hex.EncodeToString(sum[:8])
}

// account loads the account for directoryURL, creating the key and
// registering (agreeing to the terms of service) when there is none, and
// returns a lego client bound to it. A changed contact email is updated at
// the CA; failing that is logged, not fatal.
func (i *Issuer) account(hc *http.Client, directoryURL, email string) (*account, *lego.Client, error) {
	i.acctMu.Lock()
	defer i.acctMu.Unlock()
	dir, err := state.Open(i.accDir)
	if err != nil {
		return nil, nil, err
	}
	acct := &account{DirectoryURL: directoryURL, Email: email, slug: slug(directoryURL)}
	if acct.key, err = loadOrCreateKey(dir, acct.slug+".key.pem"); err != nil {
		return nil, nil, err
	}
	var stored account
	err = dir.ReadJSON(acct.slug+".json", &stored)
	switch {
	case err == nil && stored.DirectoryURL == directoryURL && stored.Registration != nil && stored.Registration.URI != "":
		stored.slug, stored.key = acct.slug, acct.key
		client, err := newClient(hc, directoryURL, &stored)
		if err != nil {
			return nil, nil, err
		}
		if email != "" && email != stored.Email {
			i.updateContact(client, dir, &stored, email)
		}
		return &stored, client, nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		i.cfg.Log.Warn("acme: stored account unreadable; registering again", "err", err)
	}
	return i.register(hc, dir, acct)
}

// reregister registers acct's key again after the CA reported that the
// account does not exist.
func (i *Issuer) reregister(hc *http.Client, acct *account) (*account, *lego.Client, error) {
	i.acctMu.Lock()
	defer i.acctMu.Unlock()
	dir, err := state.Open(i.accDir)
	if err != nil {
		return nil, nil, err
	}
	fresh := &account{DirectoryURL: acct.DirectoryURL, Email: acct.Email, slug: acct.slug, key: acct.key}
	return i.register(hc, dir, fresh)
}

// register creates the account at the CA and stores its registration.
// Registering an existing key returns the existing account (RFC 8555
// §7.3.1), so a lost registration file costs nothing.
func (i *Issuer) register(hc *http.Client, dir state.Dir, acct *account) (*account, *lego.Client, error) {
	client, err := newClient(hc, acct.DirectoryURL, acct)
	if err != nil {
		return nil, nil, err
	}
	reg, err := client.Registration.Register(registration.RegisterOptions{TermsOfServiceAgreed: true})
	if err != nil {
		return nil, nil, err
	}
	acct.Registration = reg
	acct.CreatedAt = i.cfg.Now().UTC()
	if err := dir.WriteJSON(acct.slug+".json", acct); err != nil {
		return nil, nil, err
	}
	i.cfg.Log.Info("acme: account registered", "directory", acct.DirectoryURL, "account", reg.URI)
	return acct, client, nil
}

func (i *Issuer) updateContact(client *lego.Client, dir state.Dir, acct *account, email string) {
	old := acct.Email
	acct.Email = email
	reg, err := client.Registration.UpdateRegistration(registration.RegisterOptions{TermsOfServiceAgreed: true})
	if err != nil {
		acct.Email = old
		i.cfg.Log.Warn("acme: updating the account's contact failed", "email", email, "err", err)
		return
	}
	acct.Registration = reg
	if err := dir.WriteJSON(acct.slug+".json", acct); err != nil {
		i.cfg.Log.Warn("acme: storing the account failed", "err", err)
	}
}

// loadOrCreateKey reads the account key, generating an ECDSA P-256 key
// (what Let's Encrypt recommends: small JWS signatures) on first use.
func loadOrCreateKey(dir state.Dir, name string) (crypto.PrivateKey, error) {
	b, err := os.ReadFile(dir.File(name))
	if err == nil {
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("acme: %s is not PEM", dir.File(name))
		}
		key, err := x509.ParseECPrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("acme: %s: %w", dir.File(name), err)
		}
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("acme: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("acme: %w", err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("acme: %w", err)
	}
	if err := dir.WriteFile(name, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})); err != nil {
		return nil, err
	}
	return key, nil
}
