package scenario

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/infrapilot/infrapilot/loadtest/internal/target"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// Service endpoint statistics ($SRV.STATS of the NATS micro services): how
// many requests each operation handled during a phase and how long its
// handler was busy. An operation's handler runs one request at a time per
// service instance, so "busy" near 100 % of the phase means that operation
// is the bottleneck, whatever the CPU does.

// hubServices are the services whose endpoints the API scenarios watch.
var hubServices = []string{"auth", "tenancy", "audit", "logingest"}

// endpointKey names one endpoint of one service instance.
type endpointKey struct{ instance, subject string }

// endpointSnapshot is the stats of every endpoint of some services.
type endpointSnapshot map[endpointKey]micro.EndpointStats

// snapshotEndpoints asks every instance of services for its stats; it
// returns nil when the target has no NATS access.
func snapshotEndpoints(ctx context.Context, t *target.Target, services ...string) endpointSnapshot {
	if t.NATSURL == "" {
		return nil
	}
	nc, err := t.NATS(ctx)
	if err != nil {
		return nil
	}
	defer nc.Close()
	snap := endpointSnapshot{}
	for _, svc := range services {
		subj, err := micro.ControlSubject(micro.StatsVerb, svc, "")
		if err != nil {
			continue
		}
		inbox := nats.NewInbox()
		replies := make(chan *nats.Msg, 64)
		sub, err := nc.ChanSubscribe(inbox, replies)
		if err != nil {
			continue
		}
		if err := nc.PublishRequest(subj, inbox, nil); err != nil {
			_ = sub.Unsubscribe()
			continue
		}
		// Every instance answers; take what arrives within a short window.
		window := time.NewTimer(500 * time.Millisecond)
	collect:
		for {
			select {
			case m := <-replies:
				var st micro.Stats
				if json.Unmarshal(m.Data, &st) != nil {
					continue
				}
				for _, e := range st.Endpoints {
					if e != nil {
						snap[endpointKey{st.ID, e.Subject}] = *e
					}
				}
				window.Reset(100 * time.Millisecond)
			case <-window.C:
				break collect
			case <-ctx.Done():
				break collect
			}
		}
		window.Stop()
		_ = sub.Unsubscribe()
	}
	return snap
}

// endpointNotes compares two snapshots over a phase of length elapsed and
// describes the top endpoints by busy time: requests, average handler
// time, and the share of the phase the handler was busy.
func endpointNotes(before, after endpointSnapshot, elapsed time.Duration, top int) string {
	type use struct {
		subject string
		n       int
		busy    time.Duration
	}
	bySubject := map[string]*use{}
	for k, a := range after {
		b := before[k]
		n := a.NumRequests - b.NumRequests
		if n <= 0 {
			continue
		}
		u := bySubject[k.subject]
		if u == nil {
			u = &use{subject: k.subject}
			bySubject[k.subject] = u
		}
		u.n += n
		u.busy += a.ProcessingTime - b.ProcessingTime
	}
	uses := make([]*use, 0, len(bySubject))
	for _, u := range bySubject {
		uses = append(uses, u)
	}
	sort.Slice(uses, func(i, j int) bool { return uses[i].busy > uses[j].busy })
	if len(uses) == 0 || elapsed <= 0 {
		return ""
	}
	s := "service handlers during the phase (one request at a time per instance; busy ≈ 100 % = saturated):"
	for i, u := range uses {
		if i == top {
			break
		}
		avg := u.busy / time.Duration(u.n)
		s += fmt.Sprintf(" %s %d req, avg %.2f ms, busy %.0f %%;", u.subject, u.n,
			float64(avg.Microseconds())/1000, 100*u.busy.Seconds()/elapsed.Seconds())
	}
	return s[:len(s)-1]
}
