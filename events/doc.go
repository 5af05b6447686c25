// Package events is the contract every InfraPilot module shares: the event
// envelope, subject builders, stream/consumer/KV definitions, the registry of
// versioned payload types, the wire error codes and the NATS header names.
//
// It holds no behaviour beyond encoding. It is deliberately small and
// dependency-light so that third parties (SIEM subscribers, the agent, load
// tests) can import it without pulling in the services.
package events
