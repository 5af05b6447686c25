package scenario

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/loadtest/internal/target"
)

// presenceOf lists the org's agents through the API (GET /agents, newest
// first, every page until each of ours was seen) and returns the status
// of each of ours.
func presenceOf(ctx context.Context, t *target.Target, ours map[string]bool) (map[string]string, error) {
	out := make(map[string]string, len(ours))
	cursor := ""
	for {
		q := url.Values{}
		q.Set("limit", strconv.Itoa(events.MaxListLimit))
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var page events.List[events.Agent]
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := t.Do(lctx, http.MethodGet, "/agents?"+q.Encode(), nil, &page)
		cancel()
		if err != nil {
			return nil, err
		}
		for _, a := range page.Items {
			if ours[a.ID] {
				out[a.ID] = a.Status
			}
		}
		if page.NextCursor == "" || len(out) == len(ours) {
			return out, nil
		}
		cursor = page.NextCursor
	}
}

// countStatus counts ids of set whose status is want (an id missing from
// statuses counts as not want).
func countStatus(statuses map[string]string, set map[string]bool, want string) int {
	n := 0
	for id := range set {
		if statuses[id] == want {
			n++
		}
	}
	return n
}

// presenceCheck is what the stop-a-subset check observed.
type presenceCheck struct {
	Stopped, Running int
	// Detected is how many stopped agents were reported offline by the
	// deadline, and when the last of them was (after the stop).
	Detected int
	AllAfter time.Duration
	// FirstAfter is when the first stopped agent was reported offline.
	FirstAfter time.Duration
	// FalseOffline counts running agents reported offline at any poll.
	FalseOffline int
	Polls        int
	Errors       int
	LastErr      string
}

// watchOffline polls the listing every interval after stopping the
// agents of stopped, until every one of them is offline or the deadline,
// and watches the running ones never go offline meanwhile.
func watchOffline(ctx context.Context, t *target.Target, stopped, running map[string]bool, stopAt time.Time,
	every time.Duration, deadline time.Time) presenceCheck {
	pc := presenceCheck{Stopped: len(stopped), Running: len(running)}
	all := make(map[string]bool, len(stopped)+len(running))
	for id := range stopped {
		all[id] = true
	}
	for id := range running {
		all[id] = true
	}
	falseOff := map[string]bool{}
	for ctx.Err() == nil {
		st, err := presenceOf(ctx, t, all)
		now := time.Now()
		pc.Polls++
		if err != nil {
			pc.Errors++
			pc.LastErr = err.Error()
		} else {
			off := countStatus(st, stopped, events.AgentOffline)
			if off > 0 && pc.FirstAfter == 0 {
				pc.FirstAfter = now.Sub(stopAt)
			}
			if off > pc.Detected {
				pc.Detected = off
				if off == len(stopped) {
					pc.AllAfter = now.Sub(stopAt)
				}
			}
			for id := range running {
				if st[id] == events.AgentOffline {
					falseOff[id] = true
				}
			}
			if off == len(stopped) {
				break
			}
		}
		if now.After(deadline) {
			break
		}
		fleetSleep(ctx, every)
	}
	pc.FalseOffline = len(falseOff)
	return pc
}
