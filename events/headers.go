package events

// NATS header names that carry request context between the gateway and the
// services. Services trust them because only the gateway and services hold
// credentials that may publish on "svc.>"; agents cannot.
const (
	HeaderRequestID     = "Ip-Request-Id"
	HeaderCorrelationID = "Ip-Correlation-Id"
	HeaderOrgID         = "Ip-Org-Id"
	HeaderActorKind     = "Ip-Actor-Kind"
	HeaderActorID       = "Ip-Actor-Id"
	HeaderActorIP       = "Ip-Actor-Ip"
	HeaderActorUA       = "Ip-Actor-Ua"
	HeaderRole          = "Ip-Role"
	// HeaderDeadline is the caller's deadline as RFC 3339 with nanoseconds;
	// a service stops work on a request whose caller has given up.
	HeaderDeadline = "Ip-Deadline"

	// Headers on dead-lettered messages.
	HeaderDLQSubject  = "Ip-Dlq-Subject"
	HeaderDLQStream   = "Ip-Dlq-Stream"
	HeaderDLQSequence = "Ip-Dlq-Sequence"
	HeaderDLQAttempts = "Ip-Dlq-Attempts"
	HeaderDLQError    = "Ip-Dlq-Error"
	HeaderDLQConsumer = "Ip-Dlq-Consumer"
)
