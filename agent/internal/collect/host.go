package collect

import (
	"context"
	"strings"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/host"
	"github.com/shirou/gopsutil/v4/load"
	"github.com/shirou/gopsutil/v4/mem"
	"github.com/shirou/gopsutil/v4/net"
)

// hostSampler samples the host with gopsutil. CPU use and network rates
// are deltas from the previous sample, so it keeps that sample; it is
// used by one goroutine.
type hostSampler struct {
	prevCPU  *cpu.TimesStat
	prevNet  *net.IOCountersStat
	prevTime time.Time
}

// pseudoFS are filesystems that say nothing about disk space.
var pseudoFS = map[string]bool{
	"proc": true, "sysfs": true, "tmpfs": true, "devtmpfs": true, "devpts": true, "cgroup": true,
	"cgroup2": true, "overlay": true, "squashfs": true, "mqueue": true, "debugfs": true, "tracefs": true,
	"securityfs": true, "pstore": true, "bpf": true, "autofs": true, "hugetlbfs": true, "fusectl": true,
	"configfs": true, "binfmt_misc": true, "nsfs": true, "ramfs": true, "rpc_pipefs": true, "fuse.lxcfs": true,
	"shm": true, "efivarfs": true, "selinuxfs": true,
}

// sample reads the host. A source that fails leaves its fields zero: a
// partial sample beats none.
func (h *hostSampler) sample(ctx context.Context, now time.Time) events.HostMetrics {
	var m events.HostMetrics
	if n, err := cpu.CountsWithContext(ctx, true); err == nil {
		m.CPUs = n
	}
	if t, err := cpu.TimesWithContext(ctx, false); err == nil && len(t) == 1 {
		if h.prevCPU != nil {
			m.CPUPercent = cpuBusy(*h.prevCPU, t[0])
		}
		h.prevCPU = &t[0]
	}
	if l, err := load.AvgWithContext(ctx); err == nil {
		m.Load1, m.Load5, m.Load15 = l.Load1, l.Load5, l.Load15
	}
	if v, err := mem.VirtualMemoryWithContext(ctx); err == nil {
		m.MemTotal, m.MemUsed, m.MemPercent = v.Total, v.Used, v.UsedPercent
	}
	if s, err := mem.SwapMemoryWithContext(ctx); err == nil {
		m.SwapTotal, m.SwapUsed = s.Total, s.Used
	}
	m.Disks = disks(ctx)
	if ifs, err := net.IOCountersWithContext(ctx, true); err == nil {
		var sum net.IOCountersStat
		for _, i := range ifs {
			if i.Name == "lo" || strings.HasPrefix(i.Name, "veth") {
				continue
			}
			sum.BytesRecv += i.BytesRecv
			sum.BytesSent += i.BytesSent
		}
		m.NetRxBytes, m.NetTxBytes = sum.BytesRecv, sum.BytesSent
		if h.prevNet != nil && now.After(h.prevTime) {
			secs := now.Sub(h.prevTime).Seconds()
			if sum.BytesRecv >= h.prevNet.BytesRecv {
				m.NetRxRate = float64(sum.BytesRecv-h.prevNet.BytesRecv) / secs
			}
			if sum.BytesSent >= h.prevNet.BytesSent {
				m.NetTxRate = float64(sum.BytesSent-h.prevNet.BytesSent) / secs
			}
		}
		h.prevNet = &sum
	}
	if up, err := host.UptimeWithContext(ctx); err == nil {
		m.UptimeSeconds = up
	}
	h.prevTime = now
	return m
}

// cpuBusy is the share of non-idle CPU time between two samples, in
// percent of all CPUs.
func cpuBusy(a, b cpu.TimesStat) float64 {
	idle := func(t cpu.TimesStat) float64 { return t.Idle + t.Iowait }
	total := func(t cpu.TimesStat) float64 {
		return t.User + t.System + t.Idle + t.Nice + t.Iowait + t.Irq + t.Softirq + t.Steal
	}
	dt := total(b) - total(a)
	if dt <= 0 {
		return 0
	}
	busy := dt - (idle(b) - idle(a))
	return max(0, min(100, busy/dt*100))
}

// disks reports each real filesystem once (bind mounts share a device).
func disks(ctx context.Context) []events.DiskUsage {
	parts, err := disk.PartitionsWithContext(ctx, false)
	if err != nil {
		return nil
	}
	seen := map[string]bool{}
	out := []events.DiskUsage{}
	for _, p := range parts {
		if pseudoFS[p.Fstype] || seen[p.Device] {
			continue
		}
		seen[p.Device] = true
		u, err := disk.UsageWithContext(ctx, p.Mountpoint)
		if err != nil || u.Total == 0 {
			continue
		}
		out = append(out, events.DiskUsage{Path: p.Mountpoint, FSType: p.Fstype, Total: u.Total, Used: u.Used, Percent: u.UsedPercent})
	}
	return out
}
