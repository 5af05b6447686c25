package natsauth

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// MaxCredentialTTL bounds the lifetime of agent and SIEM credentials.
// Because every such credential expires within it, a revocation older than
// MaxCredentialTTL can be dropped from the account JWT: every credential it
// covered has expired. Agents renew their credentials well before expiry.
const MaxCredentialTTL = 400 * 24 * time.Hour

// ServiceCreds returns a .creds file for a trusted InfraPilot process (a
// service or the gateway) in account APP, with no subject restrictions: it
// may use the JetStream API, serve and call svc.>, request agent commands,
// and consume every stream. It connects as a normal client only (no leaf,
// no websocket), and does not expire; revoke it with Revoker.Revoke.
func (k *Keys) ServiceCreds(name string) ([]byte, error) {
	if name == "" {
		return nil, errors.New("natsauth: service creds: empty name")
	}
	return k.userCreds(AccountApp, "service "+name, 0, nil, func(uc *jwt.UserClaims) {
		uc.AllowedConnectionTypes.Add(jwt.ConnectionTypeStandard, jwt.ConnectionTypeInProcess)
	})
}

// SystemCreds returns a .creds file for the system account, used by the
// control plane to look up and push account JWTs (Revoker). Holding
// it without the operator signing key does not allow changing an account:
// the server applies only account JWTs signed by that key.
func (k *Keys) SystemCreds() ([]byte, error) {
	return k.userCreds(AccountSys, "control plane", 0, nil, func(uc *jwt.UserClaims) {
		uc.AllowedConnectionTypes.Add(jwt.ConnectionTypeStandard, jwt.ConnectionTypeInProcess)
	})
}

// AgentCreds returns a .creds file for one agent's leaf node connection,
// valid for ttl (at most MaxCredentialTTL), and the user's public key to
// keep for Revoker.Revoke. The user is issued by the AGENTS account's scoped
// signing key, so its permissions are the account's agent template filled
// with its org and agent tags (see agentTemplate): it can publish only
// agent.<org>.<agent>.>, receive only its commands and its private inbox
// events.AgentInbox(org, agent) (clients on the agent's leaf must use
// nats.CustomInboxPrefix with it), and connect only as a leaf node.
//
// Tags are lower-cased by the JWT library, so org and agent must be valid
// subject tokens in lower case (InfraPilot's ids are lower-case UUIDs).
func (k *Keys) AgentCreds(org, agentID string, ttl time.Duration) (creds []byte, userPub string, err error) {
	if err := checkID("org", org); err != nil {
		return nil, "", err
	}
	if err := checkID("agent", agentID); err != nil {
		return nil, "", err
	}
	if err := checkTTL(ttl); err != nil {
		return nil, "", err
	}
	var pub string
	creds, err = k.userCreds(AccountAgents, "agent "+org+"/"+agentID, ttl, &pub, func(uc *jwt.UserClaims) {
		uc.Tags.Add("org:"+org, "agent:"+agentID)
		uc.SetScoped(true)
	})
	return creds, pub, err
}

// SIEMAccess is a read-only credential to one org's audit chain.
type SIEMAccess struct {
	// Org whose chain the credential reads.
	Org string
	// ID identifies the credential; it names the consumer and the inbox.
	ID string
	// Creds is the .creds file handed to the SIEM.
	Creds []byte
	// UserPub is the user's public key, for Revoker.Revoke.
	UserPub string
	// Consumer is the durable pull consumer on stream AUDIT the SIEM reads
	// from; the control plane creates it with ConsumerConfig.
	Consumer string
	// InboxPrefix is the only inbox the SIEM can receive on; its client
	// must use nats.CustomInboxPrefix(InboxPrefix).
	InboxPrefix string
}

// SIEMCreds returns a read-only credential to org's audit chain, valid for
// ttl (at most MaxCredentialTTL). The user, in account SIEM, can pull and
// acknowledge messages of one consumer on stream AUDIT and read its info,
// nothing else: it cannot create or change consumers (a consumer's deliver
// subject, or a pull's reply subject, would otherwise let it make the
// server publish audit entries onto any subject of APP), read another
// stream, or publish. The consumer must exist before the SIEM connects:
// create it with js.CreateOrUpdateConsumer(ctx, events.StreamAudit,
// access.ConsumerConfig()) on a services connection, and delete it when
// the credential is revoked.
func (k *Keys) SIEMCreds(org string, ttl time.Duration) (SIEMAccess, error) {
	if err := checkID("org", org); err != nil {
		return SIEMAccess{}, err
	}
	if err := checkTTL(ttl); err != nil {
		return SIEMAccess{}, err
	}
	id, err := randomID()
	if err != nil {
		return SIEMAccess{}, err
	}
	a := SIEMAccess{Org: org, ID: id, Consumer: SIEMConsumerName(id), InboxPrefix: SIEMInbox(id)}
	a.Creds, err = k.userCreds(AccountSIEM, "siem "+org+"/"+id, ttl, &a.UserPub, func(uc *jwt.UserClaims) {
		uc.Tags.Add("org:"+org, "siem:"+id)
		uc.SetScoped(true)
	})
	if err != nil {
		return SIEMAccess{}, err
	}
	return a, nil
}

// ConsumerConfig is the durable pull consumer a SIEM credential reads:
// filtered to the org's chain, explicit acks so that the SIEM resumes
// where it stopped.
func (a SIEMAccess) ConsumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       a.Consumer,
		Description:   "SIEM read access to the audit chain of org " + a.Org,
		FilterSubject: events.AuditChain(a.Org),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       time.Minute,
		MaxAckPending: 1000,
	}
}

// SIEMConsumerName is the name of the consumer of SIEM credential id.
func SIEMConsumerName(id string) string { return "siem_" + id }

// SIEMInbox is the private inbox prefix of SIEM credential id.
func SIEMInbox(id string) string { return "_INBOX.siem." + id }

// userCreds issues a user JWT in account a signed by its signing key and
// formats it with the user's seed as a .creds file. The seed exists only in
// the returned bytes.
func (k *Keys) userCreds(a Account, name string, ttl time.Duration, pubOut *string, set func(*jwt.UserClaims)) ([]byte, error) {
	user, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("natsauth: user key: %w", err)
	}
	defer user.Wipe()
	pub, err := user.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("natsauth: user key: %w", err)
	}
	acc := k.accounts[a]
	uc := jwt.NewUserClaims(pub)
	uc.Name = name
	uc.IssuerAccount = acc.pub
	if ttl > 0 {
		uc.Expires = time.Now().Add(ttl).Unix()
	}
	set(uc)
	tok, err := uc.Encode(acc.signer)
	if err != nil {
		return nil, fmt.Errorf("natsauth: user jwt: %w", err)
	}
	seed, err := user.Seed()
	if err != nil {
		return nil, fmt.Errorf("natsauth: user seed: %w", err)
	}
	creds, err := jwt.FormatUserConfig(tok, seed)
	if err != nil {
		return nil, fmt.Errorf("natsauth: creds: %w", err)
	}
	if pubOut != nil {
		*pubOut = pub
	}
	return creds, nil
}

// ConnectOption authenticates a nats.go connection with in-memory creds
// (no file on disk), e.g. the services of `infrapilot dev`.
func ConnectOption(creds []byte) (nats.Option, error) {
	tok, err := jwt.ParseDecoratedJWT(creds)
	if err != nil {
		return nil, fmt.Errorf("natsauth: creds: %w", err)
	}
	kp, err := jwt.ParseDecoratedUserNKey(creds)
	if err != nil {
		return nil, fmt.Errorf("natsauth: creds: %w", err)
	}
	seed, err := kp.Seed()
	if err != nil {
		return nil, fmt.Errorf("natsauth: creds: %w", err)
	}
	return nats.UserJWTAndSeed(tok, string(seed)), nil
}

// UserPublicKey returns the public key of the user in a .creds file.
func UserPublicKey(creds []byte) (string, error) {
	tok, err := jwt.ParseDecoratedJWT(creds)
	if err != nil {
		return "", fmt.Errorf("natsauth: creds: %w", err)
	}
	uc, err := jwt.DecodeUserClaims(tok)
	if err != nil {
		return "", fmt.Errorf("natsauth: creds: %w", err)
	}
	return uc.Subject, nil
}

// checkID accepts a subject token in lower case: the server lower-cases
// template tags, so an id with upper-case letters would be granted a
// different subject than the one it publishes on.
func checkID(what, id string) error {
	if !events.ValidToken(id) || strings.ToLower(id) != id {
		return fmt.Errorf("natsauth: invalid %s id %q: want a lower-case subject token", what, id)
	}
	return nil
}

func checkTTL(ttl time.Duration) error {
	if ttl <= 0 || ttl > MaxCredentialTTL {
		return fmt.Errorf("natsauth: credential lifetime %s out of range (0, %s]", ttl, MaxCredentialTTL)
	}
	return nil
}

// randomID is 20 lower-case base32 characters (100 bits).
func randomID() (string, error) {
	var b [13]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("natsauth: random id: %w", err)
	}
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))[:20], nil
}
