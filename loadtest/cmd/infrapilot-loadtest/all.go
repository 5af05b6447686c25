package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/infrapilot/infrapilot/loadtest/internal/harness"
	"github.com/infrapilot/infrapilot/loadtest/internal/scenario"
)

// runAll runs the baseline and then every other scenario against one
// target, sharing the baseline's figures, and writes summary.md. A
// scenario that fails is reported and the others still run.
func runAll(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var c common
	fs := flag.NewFlagSet("infrapilot-loadtest all", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.register(fs)
	skip := fs.String("skip", "", "comma-separated scenarios not to run")
	only := fs.String("only", "", "comma-separated scenarios to run (default: all; baseline always runs first when listed)")
	type entry struct {
		s      scenario.Scenario
		runner scenario.Runner
	}
	var entries []entry
	for _, s := range scenario.All() {
		// Each scenario's flags, prefixed with its name (--api.rate).
		sub := flag.NewFlagSet(s.Name, flag.ContinueOnError)
		runner := s.Flags(sub)
		sub.VisitAll(func(f *flag.Flag) { fs.Var(f.Value, s.Name+"."+f.Name, f.Usage) })
		entries = append(entries, entry{s, runner})
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: infrapilot-loadtest all [flags]

Runs the baseline (raw capacity of this machine) and then every scenario in
order against one target — by default an `+"`infrapilot dev`"+` the tool starts on
a temporary data dir — so that every figure has its baseline from the same
run. Prints each scenario's table, writes <scenario>.json and plots into
--out, and summary.md (every table in markdown, for docs/benchmarks.md).
A scenario's own flags are given with its name as prefix: --api.rate 500.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	want := func(name string) bool {
		if *only != "" && !inList(*only, name) {
			return false
		}
		return !inList(*skip, name)
	}
	t, err := c.target.Resolve(ctx, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "target: %v\n", err)
		return 1
	}
	defer closeTarget(t, stdout, stderr)

	started := time.Now()
	var results []*harness.Result
	var baseline *scenario.Baseline
	var failed []string
	for _, e := range entries {
		if !want(e.s.Name) {
			continue
		}
		if ctx.Err() != nil {
			failed = append(failed, e.s.Name+" (interrupted)")
			continue
		}
		env := c.env(stdout, setFlags(fs, e.s.Name+"."))
		env.Baseline = baseline
		res, err := runOne(ctx, e.s, e.runner, t, env, stdout)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", e.s.Name, err)
			failed = append(failed, e.s.Name)
		}
		if res == nil {
			continue
		}
		if err := writeResult(res, c.out, stdout); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", e.s.Name, err)
			failed = append(failed, e.s.Name)
		}
		if e.s.Name == "baseline" {
			baseline = scenario.BaselineOf(res)
		}
		results = append(results, res)
	}
	if err := writeSummary(c.out, results, time.Since(started), failed); err != nil {
		fmt.Fprintf(stderr, "summary: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "\nall: %d scenarios in %s, summary in %s\n", len(results), time.Since(started).Round(time.Second), filepath.Join(c.out, "summary.md"))
	if len(failed) > 0 {
		fmt.Fprintf(stderr, "all: the harness failed for: %s\n", strings.Join(failed, ", "))
		return 1
	}
	return 0
}

// writeSummary writes dir/summary.md: the machine and every result's
// table in markdown.
func writeSummary(dir string, results []*harness.Result, took time.Duration, failed []string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "summary.md"))
	if err != nil {
		return err
	}
	defer f.Close()
	harness.WriteSummaryMarkdown(f, results, took)
	if len(failed) > 0 {
		fmt.Fprintf(f, "\n**Harness failures:** %s\n", strings.Join(failed, ", "))
	}
	return f.Close()
}

func inList(list, name string) bool {
	for _, s := range strings.Split(list, ",") {
		if strings.TrimSpace(s) == name {
			return true
		}
	}
	return false
}
