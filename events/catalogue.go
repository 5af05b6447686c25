package events

import (
	"fmt"
	"strings"
	"time"
)

// Catalogue is the registry of every payload type InfraPilot emits. Services
// register their payloads here (in the payloads_*.go files of this package)
// so that every reader — services, the audit chain, SIEM subscribers — knows
// the same names. docs/events.md is generated from it.
var Catalogue = NewRegistry()

// Markdown renders the events catalogue: subjects, streams, buckets and every
// registered payload with its fields. docs/events.md is this text; a test
// fails when the two differ (regenerate with `go run ./events/cmd/eventsdoc`).
func Markdown(r *Registry) string {
	var b strings.Builder
	b.WriteString("# Events catalogue\n\n")
	b.WriteString("Generated from the `events` module by `go run ./events/cmd/eventsdoc > docs/events.md`; ")
	b.WriteString("a test fails when this file and the code differ. Do not edit by hand.\n\n")
	b.WriteString("Every event is a JSON envelope: `id` (UUIDv7, also the `Nats-Msg-Id`), `type`, `version`, `org_id`, ")
	b.WriteString("`aggregate {type, id}`, `actor {kind, id, ip, user_agent}`, `time` (UTC), `correlation_id`, `causation_id`, `data`.\n")
	b.WriteString("A reader that meets an unknown type or version keeps the envelope whole and logs it; it never fails on it.\n\n")

	b.WriteString("## Subjects\n\n| what | subject |\n|---|---|\n")
	rows := [][2]string{
		{"domain events of one aggregate", DomainEvent("<service>", "<org>", "<aggregate>", "<id>")},
		{"request-reply endpoints (nats micro)", ServiceEndpoint("<service>", "<operation>")},
		{"agent metrics", AgentMetrics("<org>", "<agent>")},
		{"agent logs", AgentLogs("<org>", "<agent>")},
		{"agent Docker/nginx events", AgentEvents("<org>", "<agent>")},
		{"commands to one agent", AgentCommand("<org>", "<agent>", "<op>")},
		{"an agent's private inbox prefix", AgentInbox("<org>", "<agent>")},
		{"an agent asks for its desired nginx state", AgentDesiredRequest("<org>", "<agent>")},
		{"desired nginx state of one agent (KV key)", BucketAgentDesired + ": " + AgentDesiredKey("<org>", "<agent>")},
		{"audit chain", AuditChain("<org>")},
		{"audit checkpoints", AuditCheckpoint("<org>")},
		{"dead letters of one consumer", DeadLetter("<service>", "<consumer>")},
	}
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | `%s` |\n", r[0], r[1])
	}

	b.WriteString("\n## Streams\n\nAs created by `events.Ensure` with the single-server topology (production sets replicas to 3).\n\n")
	b.WriteString("| stream | subjects | retention | notes |\n|---|---|---|---|\n")
	for _, s := range Streams(DefaultTopology()) {
		ret := "forever"
		if s.MaxAge > 0 {
			ret = s.MaxAge.String()
		}
		var notes []string
		if s.DenyDelete {
			notes = append(notes, "deny delete")
		}
		if s.DenyPurge {
			notes = append(notes, "deny purge")
		}
		notes = append(notes, "dedup window "+fmtDuration(s.Duplicates))
		fmt.Fprintf(&b, "| `%s` | `%s` | %s | %s |\n", s.Name, strings.Join(s.Subjects, "`, `"), ret, strings.Join(notes, ", "))
	}
	b.WriteString("\n| KV bucket | purpose |\n|---|---|\n")
	for _, k := range Buckets(DefaultTopology()) {
		fmt.Fprintf(&b, "| `%s` | %s |\n", k.Bucket, k.Description)
	}

	b.WriteString("\n## Event types\n\n")
	entries := r.Entries()
	if len(entries) == 0 {
		b.WriteString("No payload types are registered yet.\n")
	}
	for _, e := range entries {
		fmt.Fprintf(&b, "### `%s` v%d\n\nStream `%s`. %s\n\n", e.Type, e.Version, e.Stream, e.Description)
		fields := e.Fields()
		if len(fields) == 0 {
			b.WriteString("No data fields.\n\n")
			continue
		}
		b.WriteString("| field | type | optional |\n|---|---|---|\n")
		for _, f := range fields {
			opt := ""
			if f.Optional {
				opt = "yes"
			}
			fmt.Fprintf(&b, "| `%s` | `%s` | %s |\n", f.Name, f.Type, opt)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func fmtDuration(d time.Duration) string {
	if d == 0 {
		return "server default"
	}
	return d.String()
}
