package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/services/logingest/internal/store"
)

func testRetention(t *testing.T, s store.Store) {
	day := 24 * time.Hour
	insert(t, s,
		line("o1", "a1", "c1", -5*day, "stdout", 1, "info", "o1 5 days"),
		line("o1", "a1", "c1", -2*day, "stdout", 1, "info", "o1 2 days"),
		line("o1", "a1", "c1", 0, "stdout", 1, "info", "o1 now"),
		line("o2", "a1", "c1", -5*day, "stdout", 1, "info", "o2 5 days"),
		line("o3", "a1", "c1", 0, "stdout", 1, "info", "o3 now"),
	)
	cut := base.Add(-3 * day)
	orgs, err := s.ExpiredOrgs(ctxT(t), cut)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(orgs)
	if !slices.Equal(orgs, []string{"o1", "o2"}) {
		t.Fatalf("expired orgs: %v", orgs)
	}
	d, err := s.DeleteBefore(ctxT(t), []string{"o1"}, cut)
	if err != nil {
		t.Fatal(err)
	}
	if len(d) != 1 || d["o1"].Lines != 1 {
		t.Fatalf("deleted %+v, want 1 line of o1", d)
	}
	wide := store.Filter{From: base.Add(-30 * day), To: base.Add(day)}
	f := wide
	f.OrgID = "o1"
	wantRaws(t, "o1 after retention", all(t, s, f), "o1 now", "o1 2 days")
	f.OrgID = "o2"
	wantRaws(t, "o2 untouched by o1's retention", all(t, s, f), "o2 5 days")
	// Nothing left to delete: no work, nothing counted.
	if d, err := s.DeleteBefore(ctxT(t), []string{"o1"}, cut); err != nil || len(d) != 0 {
		t.Fatalf("second delete: %+v %v", d, err)
	}
	if d, err := s.DeleteBefore(ctxT(t), nil, cut); err != nil || len(d) != 0 {
		t.Fatalf("delete of no org: %+v %v", d, err)
	}
	orgs, err = s.ExpiredOrgs(ctxT(t), cut)
	if err != nil || !slices.Equal(orgs, []string{"o2"}) {
		t.Fatalf("expired orgs after delete: %v %v", orgs, err)
	}
}

func testDropBefore(t *testing.T, s store.Store) {
	day := 24 * time.Hour
	insert(t, s,
		line("o1", "a1", "c1", -10*day, "stdout", 1, "info", "o1 10 days"),
		line("o2", "a1", "c1", -9*day, "stdout", 1, "info", "o2 9 days"),
		line("o1", "a1", "c1", -day, "stdout", 1, "info", "o1 1 day"),
	)
	// Whole days: every adapter deletes all of them exactly.
	cut := base.Add(-5 * day).Truncate(day)
	d, err := s.DropBefore(ctxT(t), cut)
	if err != nil {
		t.Fatal(err)
	}
	if d.Lines != 2 {
		t.Fatalf("dropped %d lines, want 2", d.Lines)
	}
	wide := store.Filter{OrgID: "o1", From: base.Add(-30 * day), To: base.Add(day)}
	wantRaws(t, "o1 after drop", all(t, s, wide), "o1 1 day")
	wide.OrgID = "o2"
	wantRaws(t, "o2 after drop", all(t, s, wide))
}
