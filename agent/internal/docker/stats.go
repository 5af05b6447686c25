package docker

import (
	"context"
	"encoding/json"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/infrapilot/infrapilot/events"
)

// Stats is one raw sample of a running container. The CPU counters are
// cumulative; a CPU percentage needs two samples (see CPUPercent).
type Stats struct {
	events.ContainerStats
	Read       time.Time
	CPUTotal   uint64
	SystemCPU  uint64
	OnlineCPUs uint32
}

// CPUPercent is the container's CPU use between two samples, relative to
// one CPU; zero when the counters did not advance (or went back, after a
// container restart).
func CPUPercent(prev, cur Stats) float64 {
	if cur.CPUTotal <= prev.CPUTotal || cur.SystemCPU <= prev.SystemCPU {
		return 0
	}
	cpus := float64(cur.OnlineCPUs)
	if cpus == 0 {
		cpus = 1
	}
	return float64(cur.CPUTotal-prev.CPUTotal) / float64(cur.SystemCPU-prev.SystemCPU) * cpus * 100
}

// Stats samples a running container once, without the engine's second
// of waiting for a CPU delta.
func (c *Client) Stats(ctx context.Context, ref string) (Stats, error) {
	if err := c.ready(ctx); err != nil {
		return Stats{}, err
	}
	id, err := checkRef("container", ref)
	if err != nil {
		return Stats{}, err
	}
	r, err := c.api.ContainerStatsOneShot(ctx, id)
	if err != nil {
		return Stats{}, mapError(err, "container "+id)
	}
	defer r.Body.Close()
	var s container.StatsResponse
	if err := json.NewDecoder(r.Body).Decode(&s); err != nil {
		return Stats{}, mapError(err, "stats of container "+id)
	}
	out := Stats{Read: s.Read, CPUTotal: s.CPUStats.CPUUsage.TotalUsage, SystemCPU: s.CPUStats.SystemUsage,
		OnlineCPUs: s.CPUStats.OnlineCPUs}
	if out.OnlineCPUs == 0 {
		out.OnlineCPUs = uint32(len(s.CPUStats.CPUUsage.PercpuUsage))
	}
	st := &out.ContainerStats
	st.ID = s.ID
	if st.ID == "" {
		st.ID = id
	}
	st.Name = trimSlash(s.Name)
	// Page cache is reclaimable: report what `docker stats` reports.
	usage := s.MemoryStats.Usage
	for _, k := range []string{"inactive_file", "total_inactive_file"} {
		if v, ok := s.MemoryStats.Stats[k]; ok && v < usage {
			usage -= v
			break
		}
	}
	st.MemUsage = usage
	st.MemLimit = s.MemoryStats.Limit
	if st.MemLimit > 0 {
		st.MemPercent = float64(st.MemUsage) / float64(st.MemLimit) * 100
	}
	for _, n := range s.Networks {
		st.NetRxBytes += n.RxBytes
		st.NetTxBytes += n.TxBytes
	}
	for _, b := range s.BlkioStats.IoServiceBytesRecursive {
		switch b.Op {
		case "Read", "read":
			st.BlockRead += b.Value
		case "Write", "write":
			st.BlockWrite += b.Value
		}
	}
	st.PIDs = s.PidsStats.Current
	return out, nil
}

func trimSlash(s string) string {
	if len(s) > 0 && s[0] == '/' {
		return s[1:]
	}
	return s
}
