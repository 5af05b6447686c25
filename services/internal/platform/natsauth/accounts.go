package natsauth

import (
	"fmt"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/nats-io/jwt/v2"
)

// Subjects that cross an account boundary. Every one of them is a service
// export: the importer publishes, the exporter's subscribers (or JetStream)
// receive, and any reply travels back through a reply subject the server
// maps into the importer's account. An importer can therefore never make
// the exporter publish on a subject of the importer's choosing.
const (
	// AgentTelemetry is what agents send to the hub: one-token kinds such
	// as metrics, logs, events, heartbeat, or a request to a service
	// (agent.<org>.<agent>.<kind>). APP exports it, AGENTS imports it.
	// Its token count (4) keeps it disjoint from AgentCommandsAll (5 and
	// more): with overlapping imports in both directions (agent.*.*.>)
	// commands were no longer delivered to agents (observed).
	AgentTelemetry = "agent.*.*.*"
	// AgentOutput is what agents stream to the hub per session
	// (agent.<org>.<agent>.out.<session>…), e.g. the output of an exec.
	AgentOutput = "agent.*.*.out.>"
	// AgentCommandsAll is every agent's commands; AGENTS exports it and
	// APP imports it, so services request agent.<org>.<agent>.cmd.<op>.
	AgentCommandsAll = "agent.*.*.cmd.>"
)

// JetStream API subjects the SIEM account imports from APP. The consumer
// token is a wildcard here; each SIEM user's permissions narrow it to its
// own consumer (see siemTemplate).
var (
	siemNext = "$JS.API.CONSUMER.MSG.NEXT." + events.StreamAudit + ".*"
	siemInfo = "$JS.API.CONSUMER.INFO." + events.StreamAudit + ".*"
	siemAck  = "$JS.ACK." + events.StreamAudit + ".*.>"
	// jsAccountInfo is imported only to stop the server from giving the
	// SIEM account its automatic "$JS.API.>" import (which answers
	// "JetStream not enabled" and would shadow the imports above): the
	// server skips it when an import covers $JS.API.INFO. No SIEM user
	// may publish on it.
	jsAccountInfo = "$JS.API.INFO"
)

// siemPullThreshold is how long a pull request's reply mapping lives:
// longer than any pull's expiry (nats.go uses 30 s) so that a batch that
// trickles in is still routed back to the SIEM account.
const siemPullThreshold = 5 * time.Minute

// Template placeholders the server fills from a scoped user's tags.
const (
	tplOrg   = "{{tag(org)}}"
	tplAgent = "{{tag(agent)}}"
	tplSIEM  = "{{tag(siem)}}"
)

// OperatorJWT is the operator's self-signed JWT: the trust root every
// server of the deployment pins. Account JWTs must be signed by its
// signing key (strict signing key usage), never by its identity key.
func (k *Keys) OperatorJWT() (string, error) {
	oc := jwt.NewOperatorClaims(k.operatorPub)
	oc.Name = "infrapilot"
	oc.SigningKeys.Add(pubOf(k.operatorSK))
	oc.SystemAccount = k.accounts[AccountSys].pub
	oc.StrictSigningKeyUsage = true
	tok, err := oc.Encode(k.operator)
	if err != nil {
		return "", fmt.Errorf("natsauth: operator jwt: %w", err)
	}
	return tok, nil
}

// operatorClaims decodes the operator JWT for server options.
func (k *Keys) operatorClaims() (*jwt.OperatorClaims, error) {
	tok, err := k.OperatorJWT()
	if err != nil {
		return nil, err
	}
	return jwt.DecodeOperatorClaims(tok)
}

// accountClaims is the definition of an account, without revocations.
func (k *Keys) accountClaims(a Account) *jwt.AccountClaims {
	keys := k.accounts[a]
	ac := jwt.NewAccountClaims(keys.pub)
	ac.Name = string(a)
	signer := pubOf(keys.signer)
	switch a {
	case AccountSys:
		ac.SigningKeys.Add(signer)
	case AccountApp:
		ac.SigningKeys.Add(signer)
		ac.Limits.JetStreamLimits = jwt.JetStreamLimits{
			MemoryStorage: jwt.NoLimit, DiskStorage: jwt.NoLimit, Streams: jwt.NoLimit,
			Consumer: jwt.NoLimit, MaxAckPending: jwt.NoLimit,
			MemoryMaxStreamBytes: jwt.NoLimit, DiskMaxStreamBytes: jwt.NoLimit,
		}
		ac.Exports.Add(
			service("agent telemetry and requests", AgentTelemetry, jwt.ResponseTypeSingleton, 0),
			service("agent session output", AgentOutput, jwt.ResponseTypeSingleton, 0),
			service("siem pull", siemNext, jwt.ResponseTypeStream, siemPullThreshold),
			service("siem consumer info", siemInfo, jwt.ResponseTypeSingleton, 0),
			service("siem ack", siemAck, jwt.ResponseTypeSingleton, 0),
			service("jetstream account info (shadow only)", jsAccountInfo, jwt.ResponseTypeSingleton, 0),
		)
		ac.Imports.Add(serviceImport("agent commands", AgentCommandsAll, k.accounts[AccountAgents].pub))
	case AccountAgents:
		ac.SigningKeys.AddScopedSigner(scope(signer, "agent", agentTemplate()))
		ac.DefaultPermissions = denyAll()
		ac.Exports.Add(service("agent commands", AgentCommandsAll, jwt.ResponseTypeSingleton, 0))
		app := k.accounts[AccountApp].pub
		ac.Imports.Add(
			serviceImport("agent telemetry and requests", AgentTelemetry, app),
			serviceImport("agent session output", AgentOutput, app),
		)
	case AccountSIEM:
		ac.SigningKeys.AddScopedSigner(scope(signer, "siem", siemTemplate()))
		ac.DefaultPermissions = denyAll()
		app := k.accounts[AccountApp].pub
		ac.Imports.Add(
			serviceImport("siem pull", siemNext, app),
			serviceImport("siem consumer info", siemInfo, app),
			serviceImport("siem ack", siemAck, app),
			serviceImport("jetstream account info (shadow only)", jsAccountInfo, app),
		)
	}
	return ac
}

// agentTemplate is the permission set of every agent user, filled per user
// by the server from the user's org and agent tags:
//
//	publish:   agent.<org>.<agent>.>, _R_.>
//	subscribe: agent.<org>.<agent>.cmd.>, _INBOX.agent.<org>.<agent>.>
//	connect:   as a leaf node only
//
// A command reaches AGENTS through a service import, so its reply subject
// is a server-mapped _R_ subject. allow_responses does not help a leaf: the
// hub does not pass it on, and the agent's own leaf server refuses to
// forward a reply its publish permission does not cover. Granting _R_.>
// adds nothing at the hub, which accepts _R_ subjects from any leaf anyway;
// nobody can subscribe to them, and each carries a 64-bit random token
// valid only while its request is pending.
func agentTemplate() jwt.UserPermissionLimits {
	var t jwt.UserPermissionLimits
	t.Pub.Allow.Add(events.AgentAll(tplOrg, tplAgent), "_R_.>")
	t.Sub.Allow.Add(events.AgentCommands(tplOrg, tplAgent), events.AgentInbox(tplOrg, tplAgent)+".>")
	t.AllowedConnectionTypes.Add(jwt.ConnectionTypeLeafnode)
	t.NatsLimits = jwt.NatsLimits{Subs: jwt.NoLimit, Data: jwt.NoLimit, Payload: jwt.NoLimit}
	return t
}

// siemTemplate is the permission set of every SIEM user: pull from, read
// the info of, and acknowledge messages of exactly one consumer on stream
// AUDIT (created by the control plane with the org's filter), and receive
// on a private inbox. No consumer can be created, updated or deleted.
func siemTemplate() jwt.UserPermissionLimits {
	var t jwt.UserPermissionLimits
	consumer := SIEMConsumerName(tplSIEM)
	t.Pub.Allow.Add(
		"$JS.API.CONSUMER.MSG.NEXT."+events.StreamAudit+"."+consumer,
		"$JS.API.CONSUMER.INFO."+events.StreamAudit+"."+consumer,
		"$JS.ACK."+events.StreamAudit+"."+consumer+".>",
	)
	t.Sub.Allow.Add(SIEMInbox(tplSIEM) + ".>")
	t.AllowedConnectionTypes.Add(jwt.ConnectionTypeStandard)
	t.NatsLimits = jwt.NatsLimits{Subs: jwt.NoLimit, Data: jwt.NoLimit, Payload: jwt.NoLimit}
	return t
}

// denyAll is the default permission set of the untrusted accounts: a user
// signed without a scope (which cannot happen with these keys) would get
// nothing.
func denyAll() jwt.Permissions {
	var p jwt.Permissions
	p.Pub.Deny.Add(">")
	p.Sub.Deny.Add(">")
	return p
}

func scope(signer, role string, tpl jwt.UserPermissionLimits) *jwt.UserScope {
	s := jwt.NewUserScope()
	s.Key = signer
	s.Role = role
	s.Template = tpl
	return s
}

func service(name, subject string, rt jwt.ResponseType, threshold time.Duration) *jwt.Export {
	return &jwt.Export{Name: name, Subject: jwt.Subject(subject), Type: jwt.Service, ResponseType: rt, ResponseThreshold: threshold}
}

func serviceImport(name, subject, from string) *jwt.Import {
	return &jwt.Import{Name: name, Subject: jwt.Subject(subject), Account: from, Type: jwt.Service}
}

// accountJWT encodes an account's definition with the given revocations,
// signed by the operator signing key.
func (k *Keys) accountJWT(a Account, revocations jwt.RevocationList) (string, error) {
	ac := k.accountClaims(a)
	for pub, at := range revocations {
		if ac.Revocations == nil {
			ac.Revocations = jwt.RevocationList{}
		}
		ac.Revocations[pub] = at
	}
	var vr jwt.ValidationResults
	ac.Validate(&vr)
	if errs := vr.Errors(); len(errs) > 0 {
		return "", fmt.Errorf("natsauth: account %s: %v", a, errs)
	}
	tok, err := ac.Encode(k.operatorSK)
	if err != nil {
		return "", fmt.Errorf("natsauth: account %s jwt: %w", a, err)
	}
	return tok, nil
}

// pubOf returns the public key of a key pair this package created or
// loaded; both paths checked that it has one.
func pubOf(kp interface{ PublicKey() (string, error) }) string {
	pub, _ := kp.PublicKey()
	return pub
}
