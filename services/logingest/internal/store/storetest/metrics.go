package storetest

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/services/logingest/internal/store"
)

// samples makes one host and two container samples every 10 s for n
// steps from base; the counters grow by 1000 and 500 bytes per second.
func samples(org, agent string, n int) []store.Sample {
	var out []store.Sample
	for i := range n {
		at := base.Add(time.Duration(i) * 10 * time.Second)
		sec := uint64(i * 10)
		out = append(out,
			store.Sample{OrgID: org, AgentID: agent, Scope: "host", Time: at, CPU: float64(i), Mem: uint64(1000 + i),
				MemLimit: 8000, RxBytes: 1000 * sec, TxBytes: 500 * sec},
			store.Sample{OrgID: org, AgentID: agent, Scope: "container", ID: "c1", Name: fmt.Sprintf("web-%d", i/6), Time: at,
				CPU: 10, Mem: 100, MemLimit: 200, RxBytes: 10 * sec, TxBytes: 0},
			store.Sample{OrgID: org, AgentID: agent, Scope: "container", ID: "c2", Name: "db", Time: at, CPU: 50, Mem: 300, RxBytes: 0, TxBytes: 0},
		)
	}
	return out
}

func rollup(t *testing.T, s store.Store, q store.RollupQuery) []store.Series {
	t.Helper()
	if q.From.IsZero() {
		q.From, q.To = base.Add(-time.Hour), base.Add(time.Hour)
	}
	if q.Step == 0 {
		q.Step = time.Minute
	}
	got, err := s.Rollup(ctxT(t), q)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

func testRollups(t *testing.T, s store.Store) {
	if err := s.InsertSamples(ctxT(t), samples("o1", "a1", 18)); err != nil { // 3 minutes
		t.Fatal(err)
	}
	got := rollup(t, s, store.RollupQuery{OrgID: "o1", AgentID: "a1"})
	if len(got) != 3 || got[0].Scope != "host" || got[1].ID != "c1" || got[2].ID != "c2" {
		t.Fatalf("series: %+v", got)
	}
	host := got[0]
	if len(host.Points) != 3 {
		t.Fatalf("host points: %+v", host.Points)
	}
	p := host.Points[1] // samples 6..11
	if !p.Time.Equal(base.Add(time.Minute)) || p.Samples != 6 || !near(p.CPUAvg, 8.5) || p.CPUMax != 11 ||
		p.MemAvg != 1009 || p.MemMax != 1011 || p.MemLimit != 8000 || !near(p.RxRate, 1000) || !near(p.TxRate, 500) {
		t.Fatalf("host minute 1: %+v", p)
	}
	if got[1].Name != "web-2" {
		t.Fatalf("container name is the newest: %q", got[1].Name)
	}
	if c2 := got[2].Points[0]; c2.CPUAvg != 50 || c2.MemAvg != 300 || c2.RxRate != 0 {
		t.Fatalf("c2: %+v", c2)
	}
	// Wider buckets.
	got = rollup(t, s, store.RollupQuery{OrgID: "o1", AgentID: "a1", Step: 3 * time.Minute})
	if p := got[0].Points; len(p) != 1 || p[0].Samples != 18 || !near(p[0].CPUAvg, 8.5) || p[0].CPUMax != 17 || !near(p[0].RxRate, 1000) {
		t.Fatalf("3-minute bucket: %+v", p)
	}
	// Time bounds and the container filter (the host always comes along).
	got = rollup(t, s, store.RollupQuery{OrgID: "o1", AgentID: "a1", Container: "db", From: base.Add(time.Minute), To: base.Add(2 * time.Minute)})
	if len(got) != 2 || got[0].Scope != "host" || got[1].ID != "c2" || len(got[0].Points) != 1 || got[0].Points[0].Samples != 6 {
		t.Fatalf("filtered: %+v", got)
	}
	n, err := s.Scopes(ctxT(t), store.RollupQuery{OrgID: "o1", AgentID: "a1", From: base, To: base.Add(time.Hour)})
	if err != nil || n != 3 {
		t.Fatalf("scopes: %d %v", n, err)
	}
	// Tenants and agents are separate.
	if got := rollup(t, s, store.RollupQuery{OrgID: "o2", AgentID: "a1"}); len(got) != 0 {
		t.Fatalf("org o2 sees o1's metrics: %+v", got)
	}
	if got := rollup(t, s, store.RollupQuery{OrgID: "o1", AgentID: "a2"}); len(got) != 0 {
		t.Fatalf("agent a2 sees a1's metrics: %+v", got)
	}
}

func testRollupDuplicates(t *testing.T, s store.Store) {
	all := samples("o1", "a1", 12)
	for _, batch := range [][]store.Sample{all[:10], all, all[5:20], all[30:], all} {
		if err := s.InsertSamples(ctxT(t), batch); err != nil {
			t.Fatal(err)
		}
	}
	got := rollup(t, s, store.RollupQuery{OrgID: "o1", AgentID: "a1"})
	for _, sr := range got {
		for _, p := range sr.Points {
			if p.Samples != 6 {
				t.Fatalf("%s %s: %d samples in a minute of 6 after redelivery: %+v", sr.Scope, sr.ID, p.Samples, p)
			}
		}
	}
	if p := got[0].Points[0]; !near(p.CPUAvg, 2.5) || p.MemAvg != 1003 {
		t.Fatalf("host averages after duplicates: %+v", p)
	}
}

func testMetricsRetention(t *testing.T, s store.Store) {
	old := samples("o1", "a1", 6)
	for i := range old {
		old[i].Time = old[i].Time.Add(-10 * 24 * time.Hour)
	}
	if err := s.InsertSamples(ctxT(t), append(old, samples("o1", "a1", 6)...)); err != nil {
		t.Fatal(err)
	}
	if err := s.InsertSamples(ctxT(t), samples("o2", "a1", 6)); err != nil {
		t.Fatal(err)
	}
	cut := base.Add(-5 * 24 * time.Hour)
	orgs, err := s.ExpiredOrgs(ctxT(t), cut)
	if err != nil || fmt.Sprint(orgs) != "[o1]" {
		t.Fatalf("expired orgs: %v %v", orgs, err)
	}
	d, err := s.DeleteBefore(ctxT(t), orgs, cut)
	if err != nil || len(d) != 1 || d["o1"].Samples != 18 {
		t.Fatalf("deleted: %+v %v (want 18 samples)", d, err)
	}
	got := rollup(t, s, store.RollupQuery{OrgID: "o1", AgentID: "a1", From: base.Add(-20 * 24 * time.Hour), To: base.Add(time.Hour), Step: time.Hour})
	if len(got) != 3 || got[0].Points[0].Samples != 6 || len(got[0].Points) != 1 {
		t.Fatalf("after retention: %+v", got)
	}
	if got := rollup(t, s, store.RollupQuery{OrgID: "o2", AgentID: "a1"}); len(got) != 3 {
		t.Fatalf("o2 lost its metrics: %+v", got)
	}
}
