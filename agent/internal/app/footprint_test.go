package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/agent/internal/cli"
	"github.com/infrapilot/infrapilot/agent/internal/dockertest"
	"github.com/infrapilot/infrapilot/agent/internal/hubtest"
	"github.com/infrapilot/infrapilot/agent/internal/state"
)

// envChild makes the test binary run as the agent (`run`) for the
// footprint benchmark, so that the agent's figures are its own process's,
// not the hub's that the benchmark runs beside it. Its value is the path
// the agent writes its own rusage and memstats to when it stops.
const envChild = "INFRAPILOT_AGENT_FOOTPRINT_CHILD"

func TestMain(m *testing.M) {
	if report := os.Getenv(envChild); report != "" {
		os.Exit(child(report))
	}
	os.Exit(m.Run())
}

// selfReport is what the agent process measures of itself.
type selfReport struct {
	UserSeconds, SystemSeconds float64
	MaxRSSKiB                  int64
	HeapInuse, Sys             uint64
	Goroutines                 int
}

func child(report string) int {
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer cancel()
	code := cli.Main(ctx, []string{"run", "--state-dir", os.Getenv("STATE_DIR"), "--docker-host", os.Getenv("DOCKER_HOST"),
		"--log-level", "error"}, cli.Env{Version: "bench"})
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b, _ := json.Marshal(selfReport{
		UserSeconds: time.Duration(ru.Utime.Nano()).Seconds(), SystemSeconds: time.Duration(ru.Stime.Nano()).Seconds(),
		MaxRSSKiB: ru.Maxrss, HeapInuse: ms.HeapInuse, Sys: ms.Sys, Goroutines: runtime.NumGoroutine(),
	})
	_ = os.WriteFile(report, b, 0o600)
	return code
}

// proc reads a process's resident set (KiB) and CPU time (user+system).
func proc(pid int) (rssKiB int64, cpu time.Duration) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
				rssKiB, _ = strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		ut, _ := strconv.ParseInt(fields[11], 10, 64)
		st, _ := strconv.ParseInt(fields[12], 10, 64)
		cpu = time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
	}
	return rssKiB, cpu
}

// BenchmarkAgentFootprint runs the agent as a process of its own against
// an embedded hub and measures its resident memory and CPU while idle,
// then its CPU per MiB of container logs while a container logs at about
// 1 MiB/s (100-byte lines) until every line is on the hub.
func BenchmarkAgentFootprint(b *testing.B) {
	if b.N > 1 {
		b.Skip("one run is the measurement")
	}
	h := hubtest.Start(b)
	dir, err := state.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	if err := dir.SaveIdentity(state.Identity{OrgID: org, AgentID: agentID, NATSURL: h.LeafURL()}); err != nil {
		b.Fatal(err)
	}
	report := filepath.Join(b.TempDir(), "report.json")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"="+report, "STATE_DIR="+dir.Path(), "DOCKER_HOST="+dockertest.Host(b))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer cmd.Process.Kill()
	pid := cmd.Process.Pid
	dockertest.CheckFor(b, 30*time.Second, 50*time.Millisecond, func() error {
		if h.LeafNodes() != 1 {
			return fmt.Errorf("agent not connected")
		}
		return nil
	})

	// Idle: connected, no container of ours logging.
	time.Sleep(3 * time.Second) // settle: start-up work is not idle
	_, cpu0 := proc(pid)
	idleWindow := 10 * time.Second
	time.Sleep(idleWindow)
	rssIdle, cpu1 := proc(pid)
	idleCPU := (cpu1 - cpu0).Seconds() / idleWindow.Seconds() * 100

	// Load: 150 bursts of 1000 lines of 100 bytes, one burst per 100 ms.
	const bursts, perBurst = 150, 1000
	line := strings.Repeat("x", 88)
	raw := dockertest.Client(b)
	_, cpuStart := proc(pid)
	start := time.Now()
	id := dockertest.Run(b, raw, dockertest.Spec{Name: dockertest.Name(b, "load"), Cmd: []string{"sh", "-c", fmt.Sprintf(
		`i=0; while [ $i -lt %d ]; do j=0; while [ $j -lt %d ]; do echo "%05d %04d %s"; j=$((j+1)); done; usleep 100000; i=$((i+1)); done; sleep 600`,
		bursts, perBurst, 0, 0, line)}})
	var peakRSS int64
	var textBytes int
	dockertest.CheckFor(b, 5*time.Minute, 500*time.Millisecond, func() error {
		if rss, _ := proc(pid); rss > peakRSS {
			peakRSS = rss
		}
		n, bytes := 0, 0
		for _, bt := range batches(b, h, id) {
			for _, l := range bt.Lines {
				n++
				bytes += len(l.Text) + 1
			}
		}
		textBytes = bytes
		if n < bursts*perBurst {
			return fmt.Errorf("hub has %d lines", n)
		}
		return nil
	})
	elapsed := time.Since(start)
	_, cpuEnd := proc(pid)
	mib := float64(textBytes) / (1 << 20)
	cpuPerMiB := (cpuEnd - cpuStart).Seconds() / mib
	rate := mib / elapsed.Seconds()

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		b.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		b.Fatalf("agent: %v", err)
	}
	var self selfReport
	if data, err := os.ReadFile(report); err == nil {
		_ = json.Unmarshal(data, &self)
	}
	b.ReportMetric(float64(rssIdle)/1024, "idle-RSS-MiB")
	b.ReportMetric(idleCPU, "idle-CPU-%")
	b.ReportMetric(float64(peakRSS)/1024, "load-RSS-MiB")
	b.ReportMetric(cpuPerMiB, "CPU-s/MiB")
	b.ReportMetric(rate, "logs-MiB/s")
	b.Logf("agent process: idle RSS %.1f MiB, idle CPU %.2f%% of one core; %.1f MiB of logs (%d lines) at %.2f MiB/s: "+
		"%.3f CPU-s per MiB (%.1f%% of a core per MiB/s), peak RSS %.1f MiB; own rusage %.2fs user + %.2fs sys, "+
		"max RSS %.1f MiB, Go heap in use %.1f MiB, Go sys %.1f MiB",
		float64(rssIdle)/1024, idleCPU, mib, bursts*perBurst, rate, cpuPerMiB, cpuPerMiB*100, float64(peakRSS)/1024,
		self.UserSeconds, self.SystemSeconds, float64(self.MaxRSSKiB)/1024, float64(self.HeapInuse)/(1<<20), float64(self.Sys)/(1<<20))
}
