// Package natsauth is InfraPilot's NATS security model: decentralised JWT
// authentication (an operator, four accounts, users signed by account
// signing keys), the credentials every kind of client gets, the hub
// options that run a server in operator mode with a full account resolver,
// and revocation pushed to a live server.
//
// Accounts are the isolation boundary; user permissions narrow what a user
// can do inside its account:
//
//   - SYS: the system account; its user pushes account JWT updates.
//   - APP: trusted services and the gateway; owns every JetStream stream.
//   - AGENTS: agents' leaf node connections; no JetStream. It reaches APP
//     only through service imports of the agent's own telemetry subjects
//     and receives commands through APP's import of its command subjects.
//   - SIEM: read-only audit subscribers; no JetStream of its own. It pulls
//     from a consumer the control plane created on stream AUDIT.
//
// docs/security.md explains why untrusted credentials never live in APP.
package natsauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/nats-io/nkeys"
)

// Account names one of the accounts InfraPilot defines.
type Account string

// The accounts of InfraPilot's operator.
const (
	AccountSys    Account = "SYS"
	AccountApp    Account = "APP"
	AccountAgents Account = "AGENTS"
	AccountSIEM   Account = "SIEM"
)

// accounts lists every account InfraPilot's operator defines.
var accounts = []Account{AccountSys, AccountApp, AccountAgents, AccountSIEM}

// fileVersion is the version of the keys file format.
const fileVersion = 1

// Keys is the key material of InfraPilot's NATS operator: the operator's
// identity and signing keys, and for each account its public key and the
// seed of the signing key that issues its users. Account identity seeds are
// not kept: every account JWT is signed by the operator signing key and
// every user JWT by an account signing key, so an account's own seed is
// never needed after its public key exists.
//
// Keys is safe for concurrent use. It never prints its seeds: String,
// GoString and LogValue are redacted.
type Keys struct {
	operatorPub string
	operator    nkeys.KeyPair
	operatorSK  nkeys.KeyPair
	accounts    map[Account]accountKeys
}

type accountKeys struct {
	pub    string
	signer nkeys.KeyPair
}

// fileFormat is the JSON stored by Save. Seeds are secrets: the file is
// written 0600 and Load refuses a file others can read.
type fileFormat struct {
	Version           int                     `json:"version"`
	OperatorSeed      string                  `json:"operator_seed"`
	OperatorSigningSK string                  `json:"operator_signing_seed"`
	Accounts          map[Account]fileAccount `json:"accounts"`
}

type fileAccount struct {
	Public      string `json:"public"`
	SigningSeed string `json:"signing_seed"`
}

// NewKeys creates fresh key material: an operator with a signing key, and
// SYS, APP, AGENTS and SIEM accounts, each with a signing key.
func NewKeys() (*Keys, error) {
	op, err := nkeys.CreateOperator()
	if err != nil {
		return nil, fmt.Errorf("natsauth: operator key: %w", err)
	}
	opSK, err := nkeys.CreateOperator()
	if err != nil {
		return nil, fmt.Errorf("natsauth: operator signing key: %w", err)
	}
	opPub, err := op.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("natsauth: operator key: %w", err)
	}
	k := &Keys{operatorPub: opPub, operator: op, operatorSK: opSK, accounts: map[Account]accountKeys{}}
	for _, name := range accounts {
		id, err := nkeys.CreateAccount()
		if err != nil {
			return nil, fmt.Errorf("natsauth: account %s key: %w", name, err)
		}
		pub, err := id.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("natsauth: account %s key: %w", name, err)
		}
		id.Wipe() // the identity seed is never needed: see Keys
		signer, err := nkeys.CreateAccount()
		if err != nil {
			return nil, fmt.Errorf("natsauth: account %s signing key: %w", name, err)
		}
		k.accounts[name] = accountKeys{pub: pub, signer: signer}
	}
	return k, nil
}

// Load reads keys written by Save. It refuses a file whose permissions
// let anyone but its owner read it, as ssh does with private keys.
func Load(path string) (*Keys, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("natsauth: load keys: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("natsauth: load keys: %s has mode %04o; it holds private keys and must be 0600", path, st.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("natsauth: load keys: %w", err)
	}
	var f fileFormat
	if err := json.Unmarshal(data, &f); err != nil {
		// The decoder's message never quotes the file's content.
		return nil, fmt.Errorf("natsauth: load keys: %s is not a keys file: %w", path, err)
	}
	if f.Version != fileVersion {
		return nil, fmt.Errorf("natsauth: load keys: unsupported version %d in %s", f.Version, path)
	}
	k := &Keys{accounts: map[Account]accountKeys{}}
	if k.operator, err = fromSeed(f.OperatorSeed, nkeys.PrefixByteOperator); err != nil {
		return nil, fmt.Errorf("natsauth: load keys: operator: %w", err)
	}
	k.operatorPub, _ = k.operator.PublicKey() // fromSeed checked it
	if k.operatorSK, err = fromSeed(f.OperatorSigningSK, nkeys.PrefixByteOperator); err != nil {
		return nil, fmt.Errorf("natsauth: load keys: operator signing key: %w", err)
	}
	for _, name := range accounts {
		a, ok := f.Accounts[name]
		if !ok {
			return nil, fmt.Errorf("natsauth: load keys: account %s missing", name)
		}
		if !nkeys.IsValidPublicAccountKey(a.Public) {
			return nil, fmt.Errorf("natsauth: load keys: account %s: invalid public key", name)
		}
		signer, err := fromSeed(a.SigningSeed, nkeys.PrefixByteAccount)
		if err != nil {
			return nil, fmt.Errorf("natsauth: load keys: account %s signing key: %w", name, err)
		}
		k.accounts[name] = accountKeys{pub: a.Public, signer: signer}
	}
	return k, nil
}

// fromSeed decodes a seed and checks its type without ever echoing it.
func fromSeed(seed string, want nkeys.PrefixByte) (nkeys.KeyPair, error) {
	kp, err := nkeys.FromSeed([]byte(seed))
	if err != nil {
		return nil, errors.New("invalid seed")
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, errors.New("invalid seed")
	}
	if p := nkeys.Prefix(pub); p != want {
		return nil, fmt.Errorf("seed is a %s key, want %s", p, want)
	}
	return kp, nil
}

// Save writes the keys to path with mode 0600, atomically (a temporary
// file in the same directory, synced, then renamed).
func (k *Keys) Save(path string) error {
	f := fileFormat{Version: fileVersion, Accounts: map[Account]fileAccount{}}
	var err error
	if f.OperatorSeed, err = seedOf(k.operator); err != nil {
		return err
	}
	if f.OperatorSigningSK, err = seedOf(k.operatorSK); err != nil {
		return err
	}
	for _, name := range accounts {
		a := k.accounts[name]
		s, err := seedOf(a.signer)
		if err != nil {
			return err
		}
		f.Accounts[name] = fileAccount{Public: a.pub, SigningSeed: s}
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("natsauth: save keys: %w", err)
	}
	return writeFileAtomic(path, append(data, '\n'), 0o600)
}

func seedOf(kp nkeys.KeyPair) (string, error) {
	s, err := kp.Seed()
	if err != nil {
		return "", fmt.Errorf("natsauth: save keys: %w", err)
	}
	return string(s), nil
}

// writeFileAtomic writes data to a new file beside path and renames it over
// path, so a crash leaves either the old or the new content.
func writeFileAtomic(path string, data []byte, mode fs.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("natsauth: write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("natsauth: write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("natsauth: write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("natsauth: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("natsauth: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("natsauth: write %s: %w", path, err)
	}
	return nil
}

// LoadOrCreate loads the keys at path, or creates and saves new ones when
// the file does not exist. `infrapilot dev` keeps them in its data dir so
// that credentials and revocations survive a restart.
func LoadOrCreate(path string) (*Keys, error) {
	k, err := Load(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if k, err = NewKeys(); err != nil {
		return nil, err
	}
	if err := k.Save(path); err != nil {
		return nil, err
	}
	return k, nil
}

// OperatorPublicKey is the operator's identity, the trust root servers pin.
func (k *Keys) OperatorPublicKey() string { return k.operatorPub }

// AccountPublicKey is the public key (the NATS name) of an account.
func (k *Keys) AccountPublicKey(a Account) string { return k.accounts[a].pub }

// String never shows a seed.
func (k *Keys) String() string {
	return fmt.Sprintf("natsauth.Keys{operator: %s, seeds: redacted}", k.OperatorPublicKey())
}

// GoString never shows a seed, even with %#v.
func (k *Keys) GoString() string { return k.String() }

// LogValue never shows a seed in structured logs.
func (k *Keys) LogValue() slog.Value {
	return slog.GroupValue(slog.String("operator", k.OperatorPublicKey()), slog.String("seeds", "redacted"))
}
