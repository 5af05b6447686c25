package harness

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// WriteMarkdown writes the result's tables in markdown: the headline
// figures beside their baselines, then every recorder's counts, errors and
// latency percentiles, then the notes.
func (r *Result) WriteMarkdown(w io.Writer) {
	fmt.Fprintf(w, "### %s\n\n", r.Scenario)
	fmt.Fprintf(w, "Ran %s from %s.", r.Duration.Round(time.Second), r.Started.Format(time.RFC3339))
	if len(r.Params) > 0 {
		fmt.Fprintf(w, " Parameters: %s.", params(r.Params))
	}
	fmt.Fprint(w, "\n\n")
	if len(r.Metrics) > 0 {
		fmt.Fprintln(w, "| figure | value | baseline | ratio | target |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---|")
		for _, m := range r.Metrics {
			base, ratio := "—", "—"
			if m.Baseline != "" {
				base = fmt.Sprintf("%s %s", FormatValue(m.BaselineValue), mdEscape(m.Baseline))
				ratio = fmt.Sprintf("%.3f×", m.Ratio)
			}
			target := mdEscape(m.Target)
			if m.Met != nil {
				if *m.Met {
					target += " ✓ met"
				} else {
					target += " ✗ missed"
				}
			}
			fmt.Fprintf(w, "| %s | %s %s | %s | %s | %s |\n", mdEscape(m.Name), FormatValue(m.Value), m.Unit, base, ratio, target)
		}
		fmt.Fprintln(w)
	}
	if len(r.Recorders) > 0 {
		fmt.Fprintln(w, "| recorder | ok | items | errors | p50 ms | p95 ms | p99 ms | p99.9 ms | max ms |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
		for _, s := range r.Recorders {
			errs := fmt.Sprint(s.Errors)
			if len(s.ByKind) > 0 {
				var parts []string
				for _, k := range SortedKinds(s.ByKind) {
					parts = append(parts, fmt.Sprintf("%d %s", s.ByKind[k], k))
				}
				errs += " (" + strings.Join(parts, ", ") + ")"
			}
			fmt.Fprintf(w, "| %s | %d | %d | %s | %s |\n",
				mdEscape(s.Name), s.OK, s.Items, errs, latencyCells(s, " | ", s.P50, s.P95, s.P99, s.P999, s.Max))
		}
		fmt.Fprintln(w)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "- %s\n", mdEscape(n))
	}
	if len(r.Notes) > 0 {
		fmt.Fprintln(w)
	}
}

// WriteSummaryMarkdown writes the machine and every result in markdown:
// the summary.md of `infrapilot-loadtest all`.
func WriteSummaryMarkdown(w io.Writer, results []*Result, took time.Duration) {
	m := ThisMachine()
	if len(results) > 0 {
		m = results[0].Machine
	}
	fmt.Fprintf(w, "## Results\n\nMachine: %s/%s, %d CPUs (%s), %.1f GiB RAM, %s, load average %.2f at the start. Total run %s.\n\n",
		m.OS, m.Arch, m.CPUs, orUnknown(m.CPUModel), m.MemoryGiB, m.GoVersion, m.Load1, took.Round(time.Second))
	for _, r := range results {
		r.WriteMarkdown(w)
	}
}

func params(p map[string]string) string {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%s", k, p[k])
	}
	return mdEscape(strings.Join(parts, ", "))
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func orUnknown(s string) string {
	if s == "" {
		return "unknown CPU"
	}
	return s
}
