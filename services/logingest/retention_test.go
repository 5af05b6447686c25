package logingest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/infrapilot/infrapilot/services/logingest/internal/retention"
	"github.com/infrapilot/infrapilot/services/logingest/internal/store"
	"github.com/nats-io/nats.go/jetstream"
)

// publishOrgEvent appends a tenancy org event as the tenancy service
// would, on the TENANCY stream.
func (e *env) publishOrgEvent(org string, p events.Payload) {
	e.t.Helper()
	env, err := events.New(p, events.Aggregate{Type: events.TenancyAggOrg, ID: org}, events.Meta{OrgID: org, Actor: events.SystemActor("test")})
	if err != nil {
		e.t.Fatal(err)
	}
	data, _ := json.Marshal(env)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.js.Publish(ctx, events.DomainEvent("tenancy", org, events.TenancyAggOrg, org), data, jetstream.WithMsgID(env.ID)); err != nil {
		e.t.Fatal(err)
	}
}

// TestRetentionPerPlan: a free org keeps 3 days, a pro org 30, an org the
// plan table does not know gets the default plan; the result is visible
// in the status operation and as logingest.retention.applied events.
func TestRetentionPerPlan(t *testing.T) {
	for _, kind := range stores {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, kind)
			e.publishOrgEvent("free1", events.OrgCreated{Name: "F", Slug: "f", Plan: "free", Owner: "u1"})
			e.publishOrgEvent("pro1", events.OrgCreated{Name: "P", Slug: "p", Plan: "free", Owner: "u1"})
			e.publishOrgEvent("pro1", events.OrgPlanChanged{Plan: "pro", Previous: "free"})
			cfg := e.config()
			cfg.Retention.Interval = time.Hour
			svc := e.start(cfg)

			now := time.Now().UTC()
			ages := []time.Duration{1, 5, 20, 40} // days
			for _, org := range []string{"free1", "pro1", "unknown1"} {
				for _, age := range ages {
					at := now.Add(-age * 24 * time.Hour).Truncate(time.Second)
					b := events.AgentLogBatch{V: 1, Container: "c1", Lines: []events.LogLine{{Time: at, Stream: "stdout", Text: fmt.Sprintf("%s %d days", org, age)}},
						To: events.LogPosition{Time: at, Stdout: 1}}
					e.publish(events.AgentLogs(org, "a1"), b, fmt.Sprintf("%s-%d", org, age))
				}
				e.publish(events.AgentMetrics(org, "a1"), events.AgentMetricsMessage{V: 1, Time: now.Add(-10 * 24 * time.Hour)}, org+"-m")
			}
			wide := events.LogsQueryRequest{From: now.Add(-30 * 24 * time.Hour).Format(time.RFC3339)}
			natstest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
				for _, org := range []string{"free1", "pro1", "unknown1"} {
					if n := len(e.allLogs(org, wide)); n != 3 {
						return fmt.Errorf("%s: %d lines in 30 days", org, n)
					}
				}
				return nil
			})
			// The plan projection catches up, then the job runs.
			var res retention.Result
			natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
				var err error
				if res, err = svc.Retention().RunOnce(context.Background()); err != nil {
					return err
				}
				if res.Skipped != "" {
					return fmt.Errorf("skipped: %s", res.Skipped)
				}
				return nil
			})
			// free1 and unknown1 (the default plan) keep 3 days, pro1 30.
			want := map[string]store.Deleted{"free1": {Lines: 3, Samples: 1}, "unknown1": {Lines: 3, Samples: 1}, "pro1": {Lines: 1}}
			if fmt.Sprint(res.Orgs) != fmt.Sprint(want) || res.Dropped != (store.Deleted{}) {
				t.Fatalf("retention result: %+v, want %+v", res, want)
			}
			year := events.LogsQueryRequest{From: now.Add(-30 * 24 * time.Hour).Format(time.RFC3339)}
			for org, want := range map[string]int{"free1": 1, "pro1": 3, "unknown1": 1} {
				if n := len(e.allLogs(org, year)); n != want {
					t.Errorf("%s keeps %d lines, want %d", org, n, want)
				}
			}
			st, err := call[events.Empty, events.LogsRetentionStatus](e, "free1", "viewer", events.OpLogsRetention, events.Empty{})
			if err != nil || st.Plan != "free" || st.RetentionDays != 3 || st.LinesDeleted != 3 || st.SamplesDeleted != 1 || st.LastRun == nil {
				t.Fatalf("free1 status: %+v %v", st, err)
			}
			st, err = call[events.Empty, events.LogsRetentionStatus](e, "pro1", "viewer", events.OpLogsRetention, events.Empty{})
			if err != nil || st.Plan != "pro" || st.RetentionDays != 30 || st.LastRun == nil {
				t.Fatalf("pro1 status: %+v %v", st, err)
			}
			// One event per org that lost data, on the org's subject.
			s, err := e.js.Stream(context.Background(), events.DomainStream(Name))
			if err != nil {
				t.Fatal(err)
			}
			for org, want := range map[string]uint64{"free1": 1, "unknown1": 1, "pro1": 1} {
				info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(events.OrgDomainEvents(Name, org)))
				if err != nil {
					t.Fatal(err)
				}
				var n uint64
				for _, c := range info.State.Subjects {
					n += c
				}
				if n != want {
					t.Errorf("%s: %d retention events, want %d", org, n, want)
				}
			}
		})
	}
}
