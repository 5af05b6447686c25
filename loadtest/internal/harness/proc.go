package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// CPU accounting from /proc (Linux; elsewhere it reports nothing): where
// the machine's cores went during a phase — the hub process, its Postgres
// and ClickHouse, and the load tool itself. On a 2-core machine the tool
// competes with what it measures, so every result says how much it took.

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// procTimes is the CPU seconds, resident memory and parent of one process.
type procTimes struct {
	ppid int
	cpu  float64
	rss  int64
}

func readProc(pid int) (procTimes, bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procTimes{}, false
	}
	s := string(b)
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return procTimes{}, false
	}
	f := strings.Fields(s[end+1:])
	// Fields after the command: state(0) ppid(1) … utime(11) stime(12) … rss(21).
	if len(f) < 22 {
		return procTimes{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	rss, _ := strconv.ParseInt(f[21], 10, 64)
	return procTimes{ppid: ppid, cpu: (ut + st) / clockTicks, rss: rss * int64(os.Getpagesize())}, true
}

// CPUGroups names the process trees a CPUWatch follows: a group for each
// root PID (the hub, the tool), and a group for each process whose command
// line contains a string (the data dir of a Postgres or ClickHouse the hub
// started, which are not its children). A process counts in the group of
// its nearest root ancestor.
type CPUGroups struct {
	PIDs    map[string]int
	Cmdline map[string]string // substring of /proc/<pid>/cmdline → group
}

// CPUWatch measures the CPU each group used between Start and Stop.
type CPUWatch struct {
	groups CPUGroups
	start  time.Time
	before map[string]float64
}

// StartCPU takes the first sample.
func StartCPU(g CPUGroups) *CPUWatch {
	return &CPUWatch{groups: g, start: time.Now(), before: sampleGroups(g)}
}

// CPUUse is one group's use over a phase.
type CPUUse struct {
	Group string  `json:"group"`
	Cores float64 `json:"cores"`
	// RSSMiB is the group's resident memory at the end.
	RSSMiB float64 `json:"rss_mib"`
}

// Stop takes the second sample and returns each group's average cores.
func (w *CPUWatch) Stop() []CPUUse {
	el := time.Since(w.start).Seconds()
	after := sampleGroups(w.groups)
	rss := rssGroups(w.groups)
	var out []CPUUse
	for g, a := range after {
		if el <= 0 {
			break
		}
		out = append(out, CPUUse{Group: g, Cores: (a - w.before[g]) / el, RSSMiB: float64(rss[g]) / (1 << 20)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Cores > out[j].Cores })
	return out
}

// Note formats uses for a result's notes.
func CPUNote(uses []CPUUse) string {
	if len(uses) == 0 {
		return ""
	}
	parts := make([]string, len(uses))
	for i, u := range uses {
		parts[i] = fmt.Sprintf("%s %.2f cores (%.0f MiB RSS)", u.Group, u.Cores, u.RSSMiB)
	}
	return "CPU during the measured phase: " + strings.Join(parts, ", ")
}

func eachProc(g CPUGroups, fn func(group string, p procTimes)) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	procs := map[int]procTimes{}
	roots := map[int]string{}
	for name, pid := range g.PIDs {
		if pid > 0 {
			roots[pid] = name
		}
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		p, ok := readProc(pid)
		if !ok {
			continue
		}
		procs[pid] = p
		if len(g.Cmdline) == 0 {
			continue
		}
		if _, isRoot := roots[pid]; isRoot {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		for sub, group := range g.Cmdline {
			if sub != "" && strings.Contains(string(cmd), sub) {
				roots[pid] = group
				break
			}
		}
	}
	for pid, p := range procs {
		for cur, depth := pid, 0; cur > 1 && depth < 64; depth++ {
			if group, ok := roots[cur]; ok {
				fn(group, p)
				break
			}
			parent, ok := procs[cur]
			if !ok {
				break
			}
			cur = parent.ppid
		}
	}
}
func sampleGroups(g CPUGroups) map[string]float64 {
	m := map[string]float64{}
	eachProc(g, func(group string, p procTimes) { m[group] += p.cpu })
	return m
}

func rssGroups(g CPUGroups) map[string]int64 {
	m := map[string]int64{}
	eachProc(g, func(group string, p procTimes) { m[group] += p.rss })
	return m
}
