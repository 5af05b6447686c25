package scenario

import (
	"os"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/loadtest/internal/harness"
)

func TestWindowRate(t *testing.T) {
	origin := time.Unix(1000, 0)
	s := harness.Stats{PerSecond: []int64{5, 10, 10, 20, 0}}
	tests := []struct {
		from, to time.Duration
		want     float64
	}{
		{1 * time.Second, 3 * time.Second, 10},       // seconds 1 and 2
		{1 * time.Second, 4 * time.Second, 40.0 / 3}, // 1..3
		{0, 10 * time.Second, 9},                     // clipped to the series
		{3 * time.Second, 3 * time.Second, 0},        // empty window
	}
	for _, tt := range tests {
		if got := windowRate(s, origin, origin.Add(tt.from), origin.Add(tt.to)); got != tt.want {
			t.Errorf("windowRate(%s..%s) = %v, want %v", tt.from, tt.to, got, tt.want)
		}
	}
}

func TestCountStatus(t *testing.T) {
	st := map[string]string{"a": events.AgentOnline, "b": events.AgentOffline, "c": events.AgentOnline}
	set := map[string]bool{"a": true, "b": true, "d": true}
	if n := countStatus(st, set, events.AgentOnline); n != 1 {
		t.Fatalf("online: %d", n)
	}
	if n := countStatus(st, set, events.AgentOffline); n != 1 {
		t.Fatalf("offline: %d (an agent missing from the listing is neither)", n)
	}
}

func TestProcReadsThisProcess(t *testing.T) {
	ticks, rss, ok := procTicks(os.Getpid())
	if !ok || rss <= 0 {
		t.Fatalf("procTicks(self) = %d, %d, %v", ticks, rss, ok)
	}
	if _, _, ok := procTicks(0); ok {
		t.Fatal("pid 0 read")
	}
	busy, total := machineTicks()
	if total == 0 || busy > total {
		t.Fatalf("machine ticks busy %d total %d", busy, total)
	}
	if numCPU() < 1 {
		t.Fatal("no CPUs")
	}
}

func TestProcSamplerSummarises(t *testing.T) {
	p := &procSampler{pid: os.Getpid()}
	t0 := time.Now()
	p.sample(t0)
	// Burn a little CPU so the interval has some.
	for x := 0; time.Since(t0) < 50*time.Millisecond; x++ {
		_ = x * x
	}
	p.sample(time.Now())
	s := p.Summary(t0, time.Now())
	if s.Samples != 1 || s.HubRSSMax <= 0 || s.HubRSSLast != s.HubRSSMax || s.HubCPU < 0 {
		t.Fatalf("summary %+v", s)
	}
	if stack := p.stackPIDs(); len(stack) == 0 || stack[0] != os.Getpid() {
		t.Fatalf("stack %v", stack)
	}
}
