package harness

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// Metric is one headline figure of a scenario, beside the baseline it is
// compared with. Ratio is Value / BaselineValue (0 without a baseline);
// Target states the goal (for example "≥ 0.25× raw" or "p99 < 10 ms")
// and Met whether this run reached it (nil: no target).
type Metric struct {
	Name          string  `json:"name"`
	Unit          string  `json:"unit"`
	Value         float64 `json:"value"`
	Baseline      string  `json:"baseline,omitempty"`
	BaselineValue float64 `json:"baseline_value,omitempty"`
	Ratio         float64 `json:"ratio,omitempty"`
	Target        string  `json:"target,omitempty"`
	Met           *bool   `json:"met,omitempty"`
}

// WithBaseline sets the metric's baseline and computes the ratio.
func (m Metric) WithBaseline(name string, value float64) Metric {
	m.Baseline, m.BaselineValue = name, value
	if value > 0 {
		m.Ratio = m.Value / value
	}
	return m
}

// WithTarget sets the target text and whether it was met.
func (m Metric) WithTarget(text string, met bool) Metric {
	m.Target, m.Met = text, &met
	return m
}

// Machine describes where a run happened.
type Machine struct {
	Hostname  string  `json:"hostname"`
	OS        string  `json:"os"`
	Arch      string  `json:"arch"`
	CPUs      int     `json:"cpus"`
	CPUModel  string  `json:"cpu_model,omitempty"`
	MemoryGiB float64 `json:"memory_gib,omitempty"`
	GoVersion string  `json:"go_version"`
	// Load1 is the 1-minute load average when the run started: a busy
	// machine (other jobs) lowers every figure.
	Load1 float64 `json:"load_avg_1m,omitempty"`
}

// ThisMachine describes the machine the harness runs on.
func ThisMachine() Machine {
	h, _ := os.Hostname()
	m := Machine{Hostname: h, OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		_, _ = fmt.Sscanf(string(b), "%f", &m.Load1)
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %f kB", &kb); err == nil {
			m.MemoryGiB = kb / (1 << 20)
		}
	}
	return m
}

// Result is what a scenario run produced.
type Result struct {
	Scenario  string            `json:"scenario"`
	Started   time.Time         `json:"started"`
	Duration  time.Duration     `json:"duration_ns"`
	Machine   Machine           `json:"machine"`
	Params    map[string]string `json:"params,omitempty"`
	Metrics   []Metric          `json:"metrics"`
	Recorders []Stats           `json:"recorders"`
	Notes     []string          `json:"notes,omitempty"`
}

// Errors is the total error count over the run's recorders.
func (r *Result) Errors() int64 {
	var n int64
	for _, s := range r.Recorders {
		n += s.Errors
	}
	return n
}

// WriteTable prints the headline figures beside their baselines, then the
// latency and error figures of every recorder.
func (r *Result) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "\n== %s (%s, %d CPUs, load average %.2f at start) ==\n", r.Scenario, r.Duration.Round(time.Millisecond), r.Machine.CPUs, r.Machine.Load1)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tvalue\tbaseline\tratio\ttarget")
	for _, m := range r.Metrics {
		base, ratio := "—", "—"
		if m.Baseline != "" {
			base = fmt.Sprintf("%s %s", FormatValue(m.BaselineValue), m.Baseline)
			ratio = fmt.Sprintf("%.3f×", m.Ratio)
		}
		target := m.Target
		if m.Met != nil {
			if *m.Met {
				target += " ✓"
			} else {
				target += " ✗"
			}
		}
		fmt.Fprintf(tw, "%s\t%s %s\t%s\t%s\t%s\n", m.Name, FormatValue(m.Value), m.Unit, base, ratio, target)
	}
	tw.Flush()
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nrecorder\tok\titems\terrors\tp50 ms\tp95 ms\tp99 ms\tmax ms")
	for _, s := range r.Recorders {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", s.Name, s.OK, s.Items, s.Errors, latencyCells(s, "\t", s.P50, s.P95, s.P99, s.Max))
	}
	tw.Flush()
	for _, s := range r.Recorders {
		for _, k := range SortedKinds(s.ByKind) {
			fmt.Fprintf(w, "  %s errors: %d × %s\n", s.Name, s.ByKind[k], k)
		}
		if s.LastError != "" {
			fmt.Fprintf(w, "  %s last error: %s\n", s.Name, s.LastError)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}

// latencyCells formats latencies in ms joined by sep, or dashes for a
// recorder without latency samples (a count of items only).
func latencyCells(s Stats, sep string, ms ...float64) string {
	cells := make([]string, len(ms))
	for i, v := range ms {
		if s.Samples == 0 {
			cells[i] = "—"
		} else {
			cells[i] = fmt.Sprintf("%.2f", v)
		}
	}
	return strings.Join(cells, sep)
}

// FormatValue prints a figure with a precision that suits its size.
func FormatValue(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

// WriteJSON writes the result to dir/<scenario>.json.
func (r *Result) WriteJSON(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, r.Scenario+".json")
	return path, os.WriteFile(path, append(b, '\n'), 0o644)
}
