package scenario

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/infrapilot/infrapilot/loadtest/internal/target"
)

// The hub's CPU and memory, read from /proc while a scenario runs. The
// hub is the `infrapilot dev` process (NATS, every service and the
// gateway run in it); "stack" adds its databases: its children (the
// private ClickHouse) and the private Postgres, found by its data dir
// (it runs as a daemon, not as a child). The machine figure is every
// process on it, the load generator included, so it is reported too.

// clockTicks is USER_HZ, the unit of /proc CPU times: 100 on every Linux
// architecture Go supports.
const clockTicks = 100

// procSample is one sampling interval's figures.
type procSample struct {
	At time.Time
	// CPU in cores (1.0 = one core busy for the whole interval).
	HubCPU, StackCPU, MachineCPU, SelfCPU float64
	// RSS in bytes.
	HubRSS, StackRSS int64
}

// procSampler samples every interval until stopped.
type procSampler struct {
	pid     int
	dataDir string

	mu      sync.Mutex
	samples []procSample
	prev    map[int]uint64 // cumulative ticks per pid of the stack
	hubPrev, selfPrev,
	machBusy, machTotal uint64
	last time.Time
	stop func()
	// originRSS is the hub's RSS when sampling started.
	originRSS int64
}

// hubProcess finds the hub process: the --hub-pid flag's, else the
// target's (self-hosted), else the pid in its data dir's dev.json; 0 when
// unknown (only the machine is sampled then). The data dir, which finds
// the private Postgres, is the target's or the process's --data-dir.
func hubProcess(flagPID int, t *target.Target) (pid int, dataDir string) {
	pid, dataDir = flagPID, t.DataDir
	if pid <= 0 {
		pid = t.PID
	}
	if pid <= 0 && dataDir != "" {
		if b, err := os.ReadFile(filepath.Join(dataDir, "dev.json")); err == nil {
			var info struct {
				PID int `json:"pid"`
			}
			if json.Unmarshal(b, &info) == nil {
				pid = info.PID
			}
		}
	}
	if pid > 0 && dataDir == "" {
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); err == nil {
			args := strings.Split(string(b), "\x00")
			for i, a := range args {
				if v, ok := strings.CutPrefix(a, "--data-dir="); ok {
					dataDir = v
				} else if (a == "--data-dir" || a == "-data-dir") && i+1 < len(args) {
					dataDir = args[i+1]
				}
			}
		}
	}
	return pid, dataDir
}

// startProcSampler samples once now (the origin) and then every
// interval until Stop.
func startProcSampler(ctx context.Context, pid int, dataDir string, interval time.Duration) *procSampler {
	p := &procSampler{pid: pid, dataDir: dataDir, prev: map[int]uint64{}}
	p.sample(time.Now())
	_, p.originRSS, _ = procTicks(pid)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				p.sample(now)
			}
		}
	}()
	p.stop = func() { cancel(); <-done }
	return p
}

// Stop ends sampling.
func (p *procSampler) Stop() { p.stop() }

// OriginRSS is the hub's RSS when sampling started (bytes).
func (p *procSampler) OriginRSS() int64 { return p.originRSS }

// HubKnown says whether the hub process is sampled (else only the machine).
func (p *procSampler) HubKnown() bool { return p.pid > 0 }

func (p *procSampler) sample(now time.Time) {
	hubTicks, hubRSS, _ := procTicks(p.pid)
	selfTicks, _, _ := procTicks(os.Getpid())
	busy, total := machineTicks()
	stack := p.stackPIDs()
	cur := map[int]uint64{}
	var stackDelta uint64
	var stackRSS int64
	for _, pid := range stack {
		ticks, rss, ok := procTicks(pid)
		if !ok {
			continue
		}
		cur[pid] = ticks
		stackRSS += rss
		if prev, seen := p.prev[pid]; seen {
			stackDelta += ticks - min(prev, ticks)
		} else if !p.last.IsZero() {
			stackDelta += ticks // born since the last sample
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.last.IsZero() {
		secs := now.Sub(p.last).Seconds()
		s := procSample{At: now, HubRSS: hubRSS, StackRSS: stackRSS}
		if secs > 0 {
			s.HubCPU = float64(hubTicks-min(p.hubPrev, hubTicks)) / clockTicks / secs
			s.SelfCPU = float64(selfTicks-min(p.selfPrev, selfTicks)) / clockTicks / secs
			s.StackCPU = float64(stackDelta) / clockTicks / secs
			if dt := total - p.machTotal; dt > 0 {
				// /proc/stat counts every CPU: busy share × CPUs = cores.
				s.MachineCPU = float64(busy-p.machBusy) / float64(dt) * float64(numCPU())
			}
		}
		p.samples = append(p.samples, s)
	}
	p.prev, p.hubPrev, p.selfPrev, p.machBusy, p.machTotal, p.last = cur, hubTicks, selfTicks, busy, total, now
}

// procSummary is the mean and peak over a window.
type procSummary struct {
	Samples int
	// Means in cores, and the hub's peak.
	HubCPU, StackCPU, MachineCPU, SelfCPU float64
	HubCPUMax                             float64
	// RSS in bytes: the hub's at the window's start, peak and end, and
	// the stack's peak.
	HubRSSFirst, HubRSSMax, HubRSSLast, StackRSSMax int64
}

// Summary averages the samples taken between from and to.
func (p *procSampler) Summary(from, to time.Time) procSummary {
	p.mu.Lock()
	defer p.mu.Unlock()
	var s procSummary
	for _, x := range p.samples {
		if x.At.Before(from) || x.At.After(to) {
			continue
		}
		if s.Samples == 0 {
			s.HubRSSFirst = x.HubRSS
		}
		s.Samples++
		s.HubCPU += x.HubCPU
		s.StackCPU += x.StackCPU
		s.MachineCPU += x.MachineCPU
		s.SelfCPU += x.SelfCPU
		s.HubCPUMax = max(s.HubCPUMax, x.HubCPU)
		s.HubRSSMax = max(s.HubRSSMax, x.HubRSS)
		s.StackRSSMax = max(s.StackRSSMax, x.StackRSS)
		s.HubRSSLast = x.HubRSS
	}
	if s.Samples > 0 {
		n := float64(s.Samples)
		s.HubCPU, s.StackCPU, s.MachineCPU, s.SelfCPU = s.HubCPU/n, s.StackCPU/n, s.MachineCPU/n, s.SelfCPU/n
	}
	return s
}

// procTicks reads a process's user+system CPU ticks and its RSS in bytes.
func procTicks(pid int) (ticks uint64, rss int64, ok bool) {
	if pid <= 0 {
		return 0, 0, false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// The command name may hold spaces and parentheses: fields start
	// after the last ')'. utime and stime are fields 14 and 15 (1-based),
	// rss (pages) field 24.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 22 {
		return 0, 0, false
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	pages, _ := strconv.ParseInt(f[21], 10, 64)
	return ut + st, pages * int64(os.Getpagesize()), true
}

// machineTicks reads the busy and total ticks of all CPUs (/proc/stat).
func machineTicks() (busy, total uint64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0
	}
	for i, v := range f[1:] {
		if i >= 8 { // guest times are already in user and nice
			break
		}
		n, _ := strconv.ParseUint(v, 10, 64)
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

func numCPU() int {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 1
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "cpu") && len(l) > 3 && l[3] >= '0' && l[3] <= '9' {
			n++
		}
	}
	return max(n, 1)
}

// stackPIDs lists the hub, its descendants, and the Postgres daemon of
// its data dir with its descendants.
func (p *procSampler) stackPIDs() []int {
	if p.pid <= 0 {
		return nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return []int{p.pid}
	}
	children := map[int][]int{}
	var roots = []int{p.pid}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], pid)
		if p.dataDir != "" && ppid == 1 && strings.Contains(string(b[:i]), "postgres") {
			if cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil &&
				bytes.Contains(cmd, []byte(p.dataDir)) {
				roots = append(roots, pid)
			}
		}
	}
	var out []int
	seen := map[int]bool{}
	for len(roots) > 0 {
		pid := roots[len(roots)-1]
		roots = roots[:len(roots)-1]
		if seen[pid] {
			continue
		}
		seen[pid] = true
		out = append(out, pid)
		roots = append(roots, children[pid]...)
	}
	return out
}

// hubPIDUsage documents every fleet scenario's --hub-pid flag.
const hubPIDUsage = "pid of the infrapilot process on this machine whose CPU and memory to sample (0: the self-hosted one, else the whole machine only)"
