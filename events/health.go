package events

// HealthOperation is the request-reply operation every service answers on
// ServiceEndpoint(service, HealthOperation). The gateway's /readyz asks each
// required service; the reply also carries the service's view of its own
// dependencies (Postgres), so readiness covers them without the gateway
// touching any database.
const HealthOperation = "health"

// Health statuses.
const (
	HealthOK       = "ok"
	HealthDegraded = "degraded"
)

// HealthReply is the body of a health reply.
type HealthReply struct {
	Service  string            `json:"service"`
	Instance string            `json:"instance"`
	Version  string            `json:"version"`
	Status   string            `json:"status"`
	Checks   map[string]string `json:"checks"`
}

// Micro error headers: a failed request-reply carries the events.Code in
// the "Nats-Service-Error-Code" header, the message in "Nats-Service-Error",
// and the JSON of *Error as the body.
const (
	HeaderServiceError     = "Nats-Service-Error"
	HeaderServiceErrorCode = "Nats-Service-Error-Code"
)
