// Command infrapilot-loadtest drives simulated fleets and API clients
// against InfraPilot and puts every figure beside the raw capacity of the
// same machine. Each scenario is a subcommand; `all` runs the baseline and
// then every scenario against one target. See docs/benchmarks.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/infrapilot/infrapilot/loadtest/internal/harness"
	"github.com/infrapilot/infrapilot/loadtest/internal/scenario"
	"github.com/infrapilot/infrapilot/loadtest/internal/target"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first Ctrl-C ends the run cleanly (results so far are
		// written, a self-hosted instance is stopped); a second one
		// kills the tool at once.
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// common are the flags every subcommand has.
type common struct {
	out      string
	duration time.Duration
	interval time.Duration
	short    bool
	profile  bool
	target   target.Flags
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.out, "out", "./loadtest-results", "directory for results: <scenario>.json, <scenario>-throughput.png, <scenario>-latency.png")
	fs.DurationVar(&c.duration, "duration", 30*time.Second, "length of each measured phase (--short: 5s unless given)")
	fs.DurationVar(&c.interval, "progress-interval", 2*time.Second, "period of the live progress lines")
	fs.BoolVar(&c.short, "short", false, "quick run (task bench): a few seconds per scenario, small fleets; flags given explicitly still win")
	fs.BoolVar(&c.profile, "pprof", true, "self-hosted: take a CPU profile of the hub during each measured phase (<out>/<scenario>-hub.pprof and -hub-top.txt)")
	c.target.Register(fs)
}

func (c *common) env(stdout io.Writer, set map[string]bool) scenario.Env {
	d := c.duration
	if c.short && !set["duration"] {
		d = 5 * time.Second
	}
	return scenario.Env{Out: stdout, OutDir: c.out, Duration: d, ProgressInterval: c.interval, Short: c.short, Profile: c.profile}.WithSet(set)
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: infrapilot-loadtest <scenario> [flags]\n\nScenarios:\n")
	for _, s := range scenario.All() {
		fmt.Fprintf(w, "  %-9s %s\n", s.Name, s.Summary)
	}
	fmt.Fprintf(w, "  %-9s %s\n", "all", "baseline, then every scenario against one target; writes summary.md")
	fmt.Fprintf(w, "  %-9s %s\n", "plot", "redraw the PNG plots (and print the table) of result JSON files: plot [--out DIR] FILE.json…")
	fmt.Fprintf(w, "\nRun `infrapilot-loadtest <scenario> --help` for a scenario's flags. Without --url the\n"+
		"tool starts `infrapilot dev` itself on a temporary data dir (--self-host).\n")
}

// run is the command; it returns the exit code: 0 when every scenario ran
// (whatever its figures and targets), 1 when the harness failed, 2 for a
// usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	name := args[0]
	switch name {
	case "all":
		return runAll(ctx, args[1:], stdout, stderr)
	case "plot":
		return replot(args[1:], stdout, stderr)
	}
	s, ok := scenario.Lookup(name)
	if !ok {
		fmt.Fprintf(stderr, "unknown scenario %q\n\n", name)
		usage(stderr)
		return 2
	}
	var c common
	fs := flag.NewFlagSet("infrapilot-loadtest "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.register(fs)
	runner := s.Flags(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: infrapilot-loadtest %s [flags]\n\n%s\n\nFlags:\n", name, s.Description)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	t, err := c.target.Resolve(ctx, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "target: %v\n", err)
		return 1
	}
	defer closeTarget(t, stdout, stderr)
	res, err := runOne(ctx, s, runner, t, c.env(stdout, setFlags(fs, "")), stdout)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	if err := writeResult(res, c.out, stdout); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	return 0
}

// runOne runs a scenario and prints its table.
func runOne(ctx context.Context, s scenario.Scenario, runner scenario.Runner, t *target.Target, env scenario.Env, stdout io.Writer) (*harness.Result, error) {
	fmt.Fprintf(stdout, "\n>>> %s: %s\n", s.Name, s.Summary)
	res, err := runner(ctx, t, env)
	if res != nil {
		res.WriteTable(stdout)
	}
	if err != nil {
		return res, err
	}
	if res == nil {
		return nil, errors.New("scenario returned no result")
	}
	return res, nil
}

// writeResult writes the JSON and the plots of res into dir.
func writeResult(res *harness.Result, dir string, stdout io.Writer) error {
	path, err := res.WriteJSON(dir)
	if err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	plots, err := harness.WritePlots(res, dir)
	if err != nil {
		return fmt.Errorf("write plots: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s\n", strings.Join(append([]string{path}, plots...), ", "))
	return nil
}

func closeTarget(t *target.Target, stdout, stderr io.Writer) {
	if t.SelfHosted {
		fmt.Fprintln(stdout, "self-host: stopping infrapilot dev…")
	}
	if err := t.Close(); err != nil {
		fmt.Fprintf(stderr, "target: %v\n", err)
	}
}

// setFlags lists the flags given on the command line, without prefix (and
// only those that have it, when prefix is not empty).
func setFlags(fs *flag.FlagSet, prefix string) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) {
		if prefix == "" {
			set[f.Name] = true
		} else if rest, ok := strings.CutPrefix(f.Name, prefix); ok {
			set[rest] = true
		} else if !strings.Contains(f.Name, ".") {
			set[f.Name] = true // common flags
		}
	})
	return set
}

// replot redraws the plots of saved results and prints their tables.
func replot(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("infrapilot-loadtest plot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "directory for the PNGs (default: beside each JSON file)")
	md := fs.Bool("markdown", false, "print the tables in markdown instead")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	code := 0
	for _, path := range fs.Args() {
		b, err := os.ReadFile(path)
		var res harness.Result
		if err == nil {
			err = json.Unmarshal(b, &res)
		}
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", path, err)
			code = 1
			continue
		}
		dir := *out
		if dir == "" {
			dir = filepath.Dir(path)
		}
		if *md {
			res.WriteMarkdown(stdout)
		} else {
			res.WriteTable(stdout)
		}
		paths, err := harness.WritePlots(&res, dir)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", path, err)
			code = 1
		}
		fmt.Fprintf(stderr, "wrote %s\n", strings.Join(paths, ", "))
	}
	return code
}
