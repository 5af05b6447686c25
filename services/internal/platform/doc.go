// Package platform holds the infrastructure every InfraPilot service shares:
// configuration, logging, NATS and Postgres wiring, the event store, the
// consumer router, request-reply endpoints, health and metrics. Nothing
// domain-specific lives here: domain types belong to their service, wire
// types to the events module.
package platform
