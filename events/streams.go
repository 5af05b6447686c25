package events

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream names. Domain-event streams are named after their service in upper
// case; telemetry and infrastructure streams have names of their own.
const (
	StreamAudit       = "AUDIT"
	StreamMetrics     = "METRICS"
	StreamLogs        = "LOGS"
	StreamAgentEvents = "AGENT_EVENTS"
	StreamDeadLetter  = "DEADLETTER"

	// BucketAgentDesired holds each agent's desired configuration, keyed
	// by AgentDesiredKey. Agents watch their own key and reconcile.
	BucketAgentDesired = "agent_desired"
)

// DomainStream is the name of the stream holding a service's domain events.
func DomainStream(service string) string { return strings.ToUpper(service) }

// Topology sets the deployment-dependent parts of the stream definitions.
type Topology struct {
	// Replicas of every stream and bucket: 1 for a single server, 3 in a
	// production cluster.
	Replicas int
	// TelemetryMaxAge bounds how long METRICS and LOGS keep messages; the
	// long-term store of telemetry is ClickHouse or Postgres.
	TelemetryMaxAge time.Duration
	// LogsMaxBytes bounds the LOGS stream's size (-1 for no bound).
	LogsMaxBytes int64
	// DuplicateWindow is how long a Nats-Msg-Id is remembered for dedup.
	DuplicateWindow time.Duration
}

// DefaultTopology is the single-server topology `infrapilot dev` uses.
func DefaultTopology() Topology {
	return Topology{Replicas: 1, TelemetryMaxAge: 7 * 24 * time.Hour, LogsMaxBytes: -1, DuplicateWindow: 2 * time.Hour}
}

// Streams declares every JetStream stream of InfraPilot. Domain and audit
// streams keep events forever; the audit stream additionally denies delete
// and purge so the chain can only grow.
func Streams(t Topology) []jetstream.StreamConfig {
	if t.Replicas < 1 {
		t.Replicas = 1
	}
	var out []jetstream.StreamConfig
	for _, svc := range Services {
		subjects := []string{DomainEvents(svc)}
		cfg := jetstream.StreamConfig{
			Name:        DomainStream(svc),
			Description: "domain events of the " + svc + " service",
			Subjects:    subjects,
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			Replicas:    t.Replicas,
			Duplicates:  t.DuplicateWindow,
			DenyDelete:  true,
		}
		if svc == "audit" {
			cfg.Description = "audit hash chains, checkpoints and audit configuration events"
			cfg.Subjects = append(subjects, "audit.chain.*", "audit.checkpoint.*")
			cfg.DenyPurge = true
		}
		out = append(out, cfg)
	}
	return append(out,
		jetstream.StreamConfig{
			Name: StreamMetrics, Description: "agent host and container metrics",
			Subjects: []string{"agent.*.*.metrics"}, Storage: jetstream.FileStorage,
			Replicas: t.Replicas, MaxAge: t.TelemetryMaxAge, Duplicates: t.DuplicateWindow,
		},
		jetstream.StreamConfig{
			Name: StreamLogs, Description: "agent container and nginx log batches",
			Subjects: []string{"agent.*.*.logs"}, Storage: jetstream.FileStorage,
			Replicas: t.Replicas, MaxAge: t.TelemetryMaxAge, MaxBytes: t.LogsMaxBytes, Duplicates: t.DuplicateWindow,
		},
		jetstream.StreamConfig{
			Name: StreamAgentEvents, Description: "agent Docker and nginx events",
			Subjects: []string{"agent.*.*.events"}, Storage: jetstream.FileStorage,
			Replicas: t.Replicas, Duplicates: t.DuplicateWindow,
		},
		jetstream.StreamConfig{
			Name: StreamDeadLetter, Description: "messages a consumer gave up on after bounded retries",
			Subjects: []string{"dlq.>"}, Storage: jetstream.FileStorage,
			Replicas: t.Replicas, Duplicates: t.DuplicateWindow,
		},
	)
}

// Buckets declares every JetStream KV bucket.
func Buckets(t Topology) []jetstream.KeyValueConfig {
	if t.Replicas < 1 {
		t.Replicas = 1
	}
	return []jetstream.KeyValueConfig{{
		Bucket:      BucketAgentDesired,
		Description: "desired configuration of each agent, watched by the agent",
		History:     5,
		Storage:     jetstream.FileStorage,
		Replicas:    t.Replicas,
	}}
}

// StreamForEventType returns the stream holding events of a given wire type:
// the first dot-separated token of the type names the owning service.
func StreamForEventType(typ string) (string, bool) {
	svc, _, _ := strings.Cut(typ, ".")
	for _, s := range Services {
		if s == svc {
			return DomainStream(s), true
		}
	}
	return "", false
}

// Durable returns the configuration of a durable pull consumer. The durable
// name is the handler name: renaming a handler creates a new consumer that
// re-reads the stream, so treat a rename as a migration.
func Durable(name string, filterSubjects ...string) jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{
		Durable:       name,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckWait:       30 * time.Second,
		MaxAckPending: 1024,
		MaxDeliver:    -1,
	}
	if len(filterSubjects) == 1 {
		cfg.FilterSubject = filterSubjects[0]
	} else {
		cfg.FilterSubjects = filterSubjects
	}
	return cfg
}

// Ensure creates or updates every stream and bucket so that the server
// matches the definitions above. It is idempotent and safe to run from every
// process at start; concurrent runs converge on the same configuration.
func Ensure(ctx context.Context, js jetstream.JetStream, t Topology) error {
	for _, cfg := range Streams(t) {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("events: ensure stream %s: %w", cfg.Name, err)
		}
	}
	for _, cfg := range Buckets(t) {
		if _, err := js.CreateOrUpdateKeyValue(ctx, cfg); err != nil {
			return fmt.Errorf("events: ensure bucket %s: %w", cfg.Bucket, err)
		}
	}
	return nil
}
