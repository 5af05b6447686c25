// Package platform holds the infrastructure every InfraPilot service shares:
// configuration, logging, NATS and Postgres wiring, the event store, the
// consumer router, request-reply endpoints and calls to other services
// (svcclient), the read side of an event-sourced service (readmodel:
// projection consumer, read-your-writes waits, row-level-security reads),
// health and metrics, and the test harnesses (natstest, pgtest,
// servicetest). Nothing domain-specific lives here: domain types belong to
// their service, wire types to the events module.
package platform
