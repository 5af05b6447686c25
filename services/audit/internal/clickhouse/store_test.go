package clickhouse

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
)

var nov = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func TestSchemaIsIdempotentAndChecksVersion(t *testing.T) {
	t.Parallel()
	s, _ := testStore(t)
	if err := s.Schema(context.Background()); err != nil {
		t.Fatalf("second Schema: %v", err)
	}
	if !atLeast(s.Version(), minVersion) {
		t.Fatalf("version %q", s.Version())
	}
	t.Logf("ClickHouse %s", s.Version())
	for v, want := range map[string]bool{"18.16.1": true, "24.3.2.23": true, "18.14.0": false, "1.1.54310": false, "x": false} {
		if atLeast(v, minVersion) != want {
			t.Errorf("atLeast(%s) != %v", v, want)
		}
	}
	if _, err := Open(context.Background(), Config{URL: "http://127.0.0.1:8123"}); err == nil {
		t.Fatal("HTTP URL accepted")
	}
	if _, err := Open(context.Background(), Config{URL: testURL(t), Table: "x; DROP TABLE y"}); err == nil {
		t.Fatal("bad table name accepted")
	}
}

func TestProjectRoundTripVerifies(t *testing.T) {
	t.Parallel()
	s, _ := testStore(t)
	ctx := context.Background()
	a := chain(t, "org_a", 50, nov)
	b := chain(t, "org_b", 5, nov)
	// Several orgs, shuffled order, one call.
	mixed := append(append([]events.AuditEntry{}, b...), a[25:]...)
	mixed = append(mixed, a[:25]...)
	if err := s.Project(ctx, mixed); err != nil {
		t.Fatal(err)
	}
	got := collect(t, s, "org_a", nov, nov.Add(time.Hour))
	if len(got) != 50 {
		t.Fatalf("%d entries", len(got))
	}
	prev := events.GenesisHash
	for i, e := range got {
		h, err := e.ComputeHash()
		if err != nil || h != e.Hash || e.PrevHash != prev || e.Index != uint64(i+1) {
			t.Fatalf("entry %d read back does not verify: %v", i+1, err)
		}
		if e.Actor != a[i].Actor || string(e.Details) != string(a[i].Details) {
			t.Fatalf("entry %d changed: %+v", i+1, e)
		}
		prev = e.Hash
	}
	// The range is exact to the nanosecond although DateTime has seconds:
	// entry 3 is at 00:02:00.123456789.
	at3, _ := time.Parse(time.RFC3339Nano, a[2].Time)
	if got := collect(t, s, "org_a", at3, at3.Add(time.Minute)); len(got) != 1 || got[0].Index != 3 {
		t.Fatalf("from entry 3: %v", got)
	}
	if got := collect(t, s, "org_a", at3.Add(time.Nanosecond), at3.Add(time.Minute)); len(got) != 0 {
		t.Fatalf("after entry 3: %v", got)
	}
	if got := collect(t, s, "org_b", nov, nov.Add(time.Hour)); len(got) != 5 || got[0].OrgID != "org_b" {
		t.Fatalf("org_b: %d", len(got))
	}
	if n, _ := s.MaxIndex(ctx, "org_a"); n != 50 {
		t.Fatalf("max index %d", n)
	}
	if n, _ := s.MaxIndex(ctx, "org_none"); n != 0 {
		t.Fatalf("max index of an unknown org %d", n)
	}
}

func TestProjectIsIdempotent(t *testing.T) {
	t.Parallel()
	s, _ := testStore(t)
	ctx := context.Background()
	a := chain(t, "org_a", 20, nov)
	// A partial earlier insert (1–5 and 9), then the whole batch twice, and
	// a batch holding the same entry twice.
	for _, batch := range [][]events.AuditEntry{
		append(a[:5:5], a[8]), a, a, {a[19], a[19]},
	} {
		if err := s.Project(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	if n := rawCount(t, s); n != 20 {
		t.Fatalf("%d rows for 20 entries", n)
	}
}

func TestConcurrentProjectorsStayExact(t *testing.T) {
	t.Parallel()
	s, _ := testStore(t)
	ctx := context.Background()
	a := chain(t, "org_a", 200, nov, "auth.login.succeeded", "tenancy.member.added")
	// Two replicas projecting the same entries at once may both insert:
	// the queries stay exact, and a merge collapses the duplicates.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if err := s.Project(ctx, a); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := collect(t, s, "org_a", nov, nov.Add(24*time.Hour)); len(got) != 200 {
		t.Fatalf("Entries returned %d", len(got))
	}
	counts, err := s.CountsByActionDay(ctx, "org_a", nov, nov.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var total uint64
	for _, c := range counts {
		total += c.Count
	}
	if total != 200 {
		t.Fatalf("counts add up to %d: %+v", total, counts)
	}
	t.Logf("rows before merge: %d", rawCount(t, s))
	if err := s.conn.Exec(ctx, "OPTIMIZE TABLE "+s.table+" FINAL"); err != nil {
		t.Fatal(err)
	}
	if n := rawCount(t, s); n != 200 {
		t.Fatalf("%d rows after the merge", n)
	}
}

func TestAnalytics(t *testing.T) {
	t.Parallel()
	s, _ := testStore(t)
	ctx := context.Background()
	// 1500 minutes: Nov 1 (1440 entries) and Nov 2 (60).
	a := chain(t, "org_a", 1500, nov, "auth.login.succeeded", "auth.login.failed", "tenancy.member.added")
	if err := s.Project(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := s.Project(ctx, chain(t, "org_b", 10, nov)); err != nil {
		t.Fatal(err)
	}
	counts, err := s.CountsByActionDay(ctx, "org_a", nov, nov.Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := []ActionDayCount{
		{nov, "auth.login.failed", 480}, {nov, "auth.login.succeeded", 480}, {nov, "tenancy.member.added", 480},
		{nov.Add(24 * time.Hour), "auth.login.failed", 20}, {nov.Add(24 * time.Hour), "auth.login.succeeded", 20}, {nov.Add(24 * time.Hour), "tenancy.member.added", 20},
	}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Fatalf("counts\n got %v\nwant %v", counts, want)
	}
	top, err := s.TopActors(ctx, "org_a", nov, nov.Add(48*time.Hour), 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(top) != 2 || top[0].Count != 500 || top[0].ActorID != "usr_0" || top[0].Failures != 125 {
		t.Fatalf("top actors %+v", top)
	}
}

func TestPrune(t *testing.T) {
	t.Parallel()
	s, _ := testStore(t)
	ctx := context.Background()
	if err := s.Project(ctx, chain(t, "org_a", 100, nov)); err != nil {
		t.Fatal(err)
	}
	if err := s.Project(ctx, chain(t, "org_b", 100, nov)); err != nil {
		t.Fatal(err)
	}
	if err := s.Prune(ctx, "org_a", nov.Add(50*time.Minute)); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		if n := len(collect(t, s, "org_a", nov, nov.Add(24*time.Hour))); n != 50 {
			return fmt.Errorf("org_a has %d entries", n)
		}
		return nil
	})
	if n := len(collect(t, s, "org_b", nov, nov.Add(24*time.Hour))); n != 100 {
		t.Fatalf("pruning org_a touched org_b: %d", n)
	}
}

func TestConsumeProjectsTheStream(t *testing.T) {
	t.Parallel()
	s, _ := testStore(t)
	srv := natstest.Run(t)
	_, js := srv.JetStream()
	ctx := context.Background()
	publish := func(es []events.AuditEntry) {
		for _, e := range es {
			raw, _ := json.Marshal(e)
			if _, err := js.Publish(ctx, events.AuditChain(e.OrgID), raw); err != nil {
				t.Fatal(err)
			}
		}
	}
	a, b := chain(t, "org_a", 2500, nov), chain(t, "org_b", 30, nov)
	publish(a[:1200])
	publish(b)
	// A message that is not an entry is terminated and blocks nothing.
	if _, err := js.Publish(ctx, events.AuditChain("org_a"), []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	run := func() context.CancelFunc {
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := s.Consume(cctx, js, ConsumerConfig{Batch: 500, MaxWait: 100 * time.Millisecond}); err != nil {
				t.Error(err)
			}
		}()
		return func() { cancel(); <-done }
	}
	stop := run()
	natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		if n, _ := s.MaxIndex(ctx, "org_a"); n != 1200 {
			return fmt.Errorf("org_a at %d", n)
		}
		return nil
	})
	// A restart resumes where the durable consumer stopped: no gap, no
	// duplicate.
	stop()
	publish(a[1200:])
	stop = run()
	defer stop()
	natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		if n, _ := s.MaxIndex(ctx, "org_a"); n != 2500 {
			return fmt.Errorf("org_a at %d", n)
		}
		if n, _ := s.MaxIndex(ctx, "org_b"); n != 30 {
			return fmt.Errorf("org_b at %d", n)
		}
		return nil
	})
	if n := rawCount(t, s); n != 2530 {
		t.Fatalf("%d rows for 2530 entries", n)
	}
}
