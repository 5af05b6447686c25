package harness

import (
	"bytes"
	"encoding/json"
	"flag"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, rewriting it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// sampleResult is a fixed result: two recorders with latencies, errors
// of two kinds and a per-second series, metrics with and without
// baselines and targets.
func sampleResult() *Result {
	start := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	reads := NewRecorder("reads", start)
	for i := 1; i <= 2000; i++ {
		at := start.Add(time.Duration(i) * time.Millisecond)
		reads.Observe(at, time.Duration(i%100+1)*100*time.Microsecond, nil)
	}
	reads.Observe(start, 0, ErrBacklog)
	reads.Observe(start, 0, kindErr("http_503"))
	reads.Observe(start, 0, kindErr("http_503"))
	lines := NewRecorder("lines | stored", start)
	lines.Items(start.Add(500*time.Millisecond), 1000)
	lines.Items(start.Add(1500*time.Millisecond), 3000)
	lines.LatencyOnly(40 * time.Millisecond)
	met := Metric{Name: "read p99", Unit: "ms", Value: 9.9}.WithBaseline("ms raw floor", 0.5).WithTarget("< 10 ms", true)
	missed := Metric{Name: "lines stored", Unit: "lines/s", Value: 2000}.WithBaseline("rows/s clickhouse", 400000).WithTarget("≥ 0.25× raw", false)
	return &Result{
		Scenario: "sample", Started: start, Duration: 2500 * time.Millisecond,
		Machine:   Machine{Hostname: "bench", OS: "linux", Arch: "amd64", CPUs: 2, CPUModel: "Test CPU", MemoryGiB: 24, GoVersion: "go1.26", Load1: 0.5},
		Params:    map[string]string{"rate": "1000", "agents": "10"},
		Metrics:   []Metric{met, missed, {Name: "errors", Value: 3}},
		Recorders: []Stats{reads.Snapshot(), lines.Snapshot()},
		Notes:     []string{"baseline clickhouse measured inline"},
	}
}

func TestResultTable(t *testing.T) {
	var b bytes.Buffer
	sampleResult().WriteTable(&b)
	golden(t, "table.golden", b.Bytes())
}

func TestResultMarkdown(t *testing.T) {
	var b bytes.Buffer
	WriteSummaryMarkdown(&b, []*Result{sampleResult()}, 3*time.Second)
	golden(t, "summary.md.golden", b.Bytes())
}

// TestResultJSON: the JSON file holds every figure and reads back equal.
func TestResultJSON(t *testing.T) {
	r := sampleResult()
	dir := t.TempDir()
	path, err := r.WriteJSON(dir)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) != "sample.json" {
		t.Errorf("path %s", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back Result
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	again, _ := json.Marshal(back)
	orig, _ := json.Marshal(r)
	if !bytes.Equal(again, orig) {
		t.Errorf("JSON round trip differs:\n%s\n%s", again, orig)
	}
	for _, key := range []string{`"p99_ms"`, `"errors_by_kind"`, `"http_503": 2`, `"per_second"`, `"ratio"`, `"met": false`, `"load_avg_1m"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("JSON lacks %s", key)
		}
	}
	if r.Errors() != 3 {
		t.Errorf("Errors() = %d, want 3", r.Errors())
	}
}

// TestWritePlots: both PNGs are written, decode, and have the plot size;
// a result without data writes none.
func TestWritePlots(t *testing.T) {
	dir := t.TempDir()
	paths, err := WritePlots(sampleResult(), dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "sample-throughput.png"), filepath.Join(dir, "sample-latency.png")}
	if strings.Join(paths, ",") != strings.Join(want, ",") {
		t.Fatalf("paths %v, want %v", paths, want)
	}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if b := img.Bounds(); b.Dx() < 500 || b.Dy() < 300 {
			t.Errorf("%s is %v", p, b)
		}
		if fi, _ := os.Stat(p); fi.Size() < 5000 {
			t.Errorf("%s has only %d bytes", p, fi.Size())
		}
	}
	empty := &Result{Scenario: "empty", Recorders: []Stats{NewRecorder("nothing", time.Now()).Snapshot()}}
	if paths, err := WritePlots(empty, dir); err != nil || len(paths) != 0 {
		t.Errorf("empty result: %v, %v", paths, err)
	}
}

func TestPercentileAxis(t *testing.T) {
	for q, want := range map[float64]float64{0: 1, 50: 2, 90: 10, 99: 100, 99.9: 1000, 100: maxPercentileX} {
		if got := percentileX(q); got < want*0.999 || got > want*1.001 {
			t.Errorf("percentileX(%v) = %v, want %v", q, got, want)
		}
	}
}

// TestCPUWatch: the tool's own CPU shows up in its group.
func TestCPUWatch(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Fatalf("CPU accounting reads /proc: run on Linux")
	}
	w := StartCPU(CPUGroups{PIDs: map[string]int{"self": os.Getpid()}})
	end := time.Now().Add(300 * time.Millisecond)
	x := 0
	for time.Now().Before(end) {
		x++
	}
	uses := w.Stop()
	if len(uses) != 1 || uses[0].Group != "self" || uses[0].Cores < 0.2 || uses[0].RSSMiB <= 0 {
		t.Fatalf("uses %+v (spun %d times)", uses, x)
	}
	if !strings.Contains(CPUNote(uses), "self ") {
		t.Errorf("note %q", CPUNote(uses))
	}
}
