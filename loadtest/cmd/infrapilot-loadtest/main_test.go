package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/loadtest/internal/harness"
	"github.com/infrapilot/infrapilot/loadtest/internal/scenario"
)

// TestUsage: no arguments is a usage error listing every scenario; an
// unknown one too; --help is not an error.
func TestUsage(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		args []string
		code int
	}{{nil, 2}, {[]string{"nope"}, 2}, {[]string{"--help"}, 0}} {
		var out, errOut bytes.Buffer
		if code := run(ctx, tc.args, &out, &errOut); code != tc.code {
			t.Errorf("%v: exit %d, want %d", tc.args, code, tc.code)
		}
		for _, s := range append(scenario.All(), scenario.Scenario{Name: "all"}, scenario.Scenario{Name: "plot"}) {
			if !strings.Contains(errOut.String(), "  "+s.Name+" ") {
				t.Errorf("%v: usage lacks %s:\n%s", tc.args, s.Name, errOut.String())
			}
		}
	}
}

// TestScenarioHelp: every scenario answers --help with its description,
// its own flags and the common ones, without touching a target.
func TestScenarioHelp(t *testing.T) {
	if len(scenario.All()) < 3 {
		t.Fatalf("only %d scenarios registered", len(scenario.All()))
	}
	for _, s := range scenario.All() {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), []string{s.Name, "--help"}, &out, &errOut); code != 0 {
			t.Errorf("%s --help: exit %d", s.Name, code)
		}
		help := errOut.String()
		first := strings.SplitN(s.Description, "\n", 2)[0]
		for _, want := range []string{first, "-duration", "-out", "-short", "-url", "-nats-creds", "-self-host"} {
			if !strings.Contains(help, want) {
				t.Errorf("%s --help lacks %q", s.Name, want)
			}
		}
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"all", "--help"}, &out, &errOut); code != 0 {
		t.Errorf("all --help: exit %d", code)
	}
	for _, want := range []string{"-api.read-rate", "-audit.orgs", "-baseline.parts", "-skip", "-only"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("all --help lacks %s", want)
		}
	}
}

// TestPlotCommand: plot redraws a saved result's PNGs and prints its table.
func TestPlotCommand(t *testing.T) {
	dir := t.TempDir()
	start := time.Now()
	rec := harness.NewRecorder("reads", start)
	for i := 0; i < 100; i++ {
		rec.Observe(start.Add(time.Duration(i)*20*time.Millisecond), time.Duration(i+1)*time.Millisecond, nil)
	}
	res := &harness.Result{Scenario: "saved", Started: start, Duration: 2 * time.Second, Recorders: []harness.Stats{rec.Snapshot()},
		Metrics: []harness.Metric{{Name: "read p99", Unit: "ms", Value: rec.Snapshot().P99}}}
	path, err := res.WriteJSON(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"plot", "--markdown", path}, &out, &errOut); code != 0 {
		t.Fatalf("plot: exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "| read p99 |") {
		t.Errorf("markdown table missing:\n%s", out.String())
	}
	for _, name := range []string{"saved-throughput.png", "saved-latency.png"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", name, err)
		}
	}
	if code := run(context.Background(), []string{"plot", filepath.Join(dir, "missing.json")}, &out, &errOut); code != 1 {
		t.Errorf("plot of a missing file: exit %d, want 1", code)
	}
}
