// Package scenario holds the load scenarios of infrapilot-loadtest, one file
// each. A scenario registers itself from init() with Register; the command
// turns every registered scenario into a subcommand with its own flags and
// --help, and `all` runs them in order against one target, baseline first.
package scenario

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/infrapilot/infrapilot/loadtest/internal/harness"
	"github.com/infrapilot/infrapilot/loadtest/internal/target"
)

// Scenario is one subcommand of the tool.
type Scenario struct {
	// Name is the subcommand ("logs", "audit", …).
	Name string
	// Summary is one line for the command's usage list.
	Summary string
	// Description is the --help text: what the scenario measures, how,
	// and the target it is compared with.
	Description string
	// Order places the scenario in `all` (lower first; baseline is 0).
	Order int
	// Flags declares the scenario's own flags on fs and returns the Runner
	// that reads them once fs is parsed.
	Flags func(fs *flag.FlagSet) Runner
}

// Runner runs a scenario against t. It returns the result even when some
// operations failed (errors are figures); an error means the harness
// itself could not run (setup failed, target unreachable).
type Runner func(ctx context.Context, t *target.Target, env Env) (*harness.Result, error)

// Env is what the command gives every scenario besides its own flags.
type Env struct {
	// Out receives live progress lines.
	Out io.Writer
	// OutDir is where results are written (the command writes the JSON and
	// the plots of the returned result; a scenario may add files).
	OutDir string
	// Duration is how long the measured phase lasts (--duration).
	Duration time.Duration
	// ProgressInterval is the period of progress lines.
	ProgressInterval time.Duration
	// Short asks for a quick run (task bench): small fleets, a few
	// seconds. A scenario applies its short sizes only to flags the user
	// did not set (IsSet).
	Short bool
	// Baseline holds the raw capacities measured by the baseline scenario
	// when it ran earlier in the same process (`all`); nil otherwise, and
	// the scenario measures what it needs with NeedBaseline.
	Baseline *Baseline
	// Profile asks scenarios for a CPU profile of the hub during their
	// measured phase (HubProfile; self-hosted only).
	Profile bool

	set map[string]bool
}

// IsSet reports whether the flag name was given on the command line (so
// --short leaves it alone).
func (e Env) IsSet(name string) bool { return e.set[name] }

// WithSet returns e recording which flags were set explicitly.
func (e Env) WithSet(set map[string]bool) Env { e.set = set; return e }

// Baseline is the raw capacity of the machine measured in the same run. A
// zero figure was not measured (no ClickHouse, no Postgres URL, …).
type Baseline struct {
	// JetStream publishes of 256 B from one client into a file stream, per
	// second: one at a time (sync) and pipelined (async).
	JSSyncPublish  float64 `json:"js_sync_publish_per_s"`
	JSSyncP99      float64 `json:"js_sync_publish_p99_ms"`
	JSAsyncPublish float64 `json:"js_async_publish_per_s"`
	// NATSEcho is core NATS request-reply round trips per second to an
	// echo responder in the same process, and its p99 in milliseconds.
	NATSEcho    float64 `json:"nats_echo_per_s"`
	NATSEchoP99 float64 `json:"nats_echo_p99_ms"`
	// ClickHouseInsert is rows per second of 100k-row batch inserts.
	ClickHouseInsert float64 `json:"clickhouse_insert_rows_per_s"`
	// PGCopyFrom is rows per second of Postgres COPY FROM.
	PGCopyFrom float64 `json:"pg_copy_rows_per_s"`
	// PGSelect is `SELECT $1` round trips per second on one connection
	// and its p99 in milliseconds.
	PGSelect    float64 `json:"pg_select_per_s"`
	PGSelectP99 float64 `json:"pg_select_p99_ms"`
	// PGInsert is single-row INSERT commits per second on one connection
	// and its p99 in milliseconds: the floor of a write.
	PGInsert    float64 `json:"pg_insert_per_s"`
	PGInsertP99 float64 `json:"pg_insert_p99_ms"`
}

// Parts of the baseline a scenario may ask NeedBaseline for.
const (
	PartJSSync     = "js_sync"
	PartJSAsync    = "js_async"
	PartNATSEcho   = "nats_echo"
	PartClickHouse = "clickhouse"
	PartPGCopy     = "pg_copy"
	PartPGSelect   = "pg_select"
	PartPGInsert   = "pg_insert"
)

var registry = map[string]Scenario{}

// Register adds a scenario; it panics on a duplicate name (a programming
// error found at start-up).
func Register(s Scenario) {
	if s.Name == "" || s.Flags == nil {
		panic("scenario: Register needs a name and Flags")
	}
	if _, dup := registry[s.Name]; dup {
		panic(fmt.Sprintf("scenario: %q registered twice", s.Name))
	}
	registry[s.Name] = s
}

// Lookup returns the scenario called name.
func Lookup(name string) (Scenario, bool) {
	s, ok := registry[name]
	return s, ok
}

// All lists the registered scenarios in `all` order.
func All() []Scenario {
	out := make([]Scenario, 0, len(registry))
	for _, s := range registry {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Order != out[j].Order {
			return out[i].Order < out[j].Order
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// CPUGroupsOf names the processes whose CPU a scenario reports: the tool
// itself and, when the tool started the target, the hub process and its
// Postgres and ClickHouse (found by their data directories).
func CPUGroupsOf(t *target.Target) harness.CPUGroups {
	g := harness.CPUGroups{PIDs: map[string]int{"loadtest": os.Getpid()}}
	if t.SelfHosted && t.PID > 0 {
		g.PIDs["hub (infrapilot dev)"] = t.PID
		g.Cmdline = map[string]string{
			filepath.Join(t.DataDir, "postgres"):   "postgres",
			filepath.Join(t.DataDir, "clickhouse"): "clickhouse",
		}
	}
	return g
}
