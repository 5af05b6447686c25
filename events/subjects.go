package events

import "strings"

// Services lists every InfraPilot service by its subject name. A service's
// domain events live under "<service>.evt.>" and its request-reply endpoints
// under "svc.<service>.>".
var Services = []string{"auth", "tenancy", "proxy", "alerts", "audit", "policy", "billing", "logingest"}

// ValidToken reports whether s can be used as one token of a NATS subject:
// non-empty, at most 128 bytes, and made only of ASCII letters, digits, '-'
// and '_'. Ids (UUIDs, slugs) always satisfy it; anything that could widen a
// subscription ('.', '*', '>', whitespace) never does.
func ValidToken(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

func join(tokens ...string) string { return strings.Join(tokens, ".") }

// DomainEvent is the subject of one aggregate's events:
// "<service>.evt.<org>.<aggregate type>.<aggregate id>".
func DomainEvent(service, org, aggType, aggID string) string {
	return join(service, "evt", org, aggType, aggID)
}

// DomainEvents is the wildcard subject of every domain event of a service.
func DomainEvents(service string) string { return join(service, "evt", ">") }

// OrgDomainEvents is the wildcard subject of one org's events in a service.
func OrgDomainEvents(service, org string) string { return join(service, "evt", org, ">") }

// ServiceEndpoint is the request-reply subject of one operation of a
// service: "svc.<service>.<operation>".
func ServiceEndpoint(service, operation string) string { return join("svc", service, operation) }

// ServiceEndpoints is the subject prefix a service's micro group serves.
func ServiceEndpoints(service string) string { return join("svc", service) }

// AgentMetrics is the subject an agent publishes its metrics on.
func AgentMetrics(org, agent string) string { return join("agent", org, agent, "metrics") }

// AgentLogs is the subject an agent publishes container and nginx logs on.
func AgentLogs(org, agent string) string { return join("agent", org, agent, "logs") }

// AgentEvents is the subject an agent publishes Docker and nginx events on.
func AgentEvents(org, agent string) string { return join("agent", org, agent, "events") }

// AgentCommand is the request-reply subject of one command to one agent.
// Only that agent's credentials may subscribe to it.
func AgentCommand(org, agent, op string) string { return join("agent", org, agent, "cmd", op) }

// AgentCommands is the wildcard an agent subscribes to for its commands.
func AgentCommands(org, agent string) string { return join("agent", org, agent, "cmd", ">") }

// AgentAll is every subject one agent may publish on.
func AgentAll(org, agent string) string { return join("agent", org, agent, ">") }

// AgentInbox is the private inbox prefix of one agent: replies to its
// requests arrive here and nowhere another agent can subscribe.
func AgentInbox(org, agent string) string { return join("_INBOX", "agent", org, agent) }

// AgentDesiredKey is the key of one agent's desired nginx state in KV bucket
// BucketAgentDesired.
func AgentDesiredKey(org, agent string) string { return join(org, agent, "nginx") }

// AuditChain is the subject of one org's audit hash chain.
func AuditChain(org string) string { return join("audit", "chain", org) }

// AuditCheckpoint is the subject of one org's signed audit checkpoints.
func AuditCheckpoint(org string) string { return join("audit", "checkpoint", org) }

// DeadLetter is the subject a consumer's poison messages end on:
// "dlq.<service>.<consumer>".
func DeadLetter(service, consumer string) string { return join("dlq", service, consumer) }
