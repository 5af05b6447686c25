package query

import (
	"context"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/logingest/internal/store"
)

// metricsDefaultRange is the range of a metrics request without from.
const metricsDefaultRange = time.Hour

// Metrics answers events.OpLogsMetrics for org.
func (s *Service) Metrics(ctx context.Context, org string, req events.AgentMetricsRequest) (events.AgentMetricsReply, error) {
	var fs fields
	if !events.ValidToken(org) {
		return events.AgentMetricsReply{}, events.Errorf(events.CodeForbidden, "no organisation")
	}
	if !events.ValidToken(req.AgentID) {
		fs.bad("agent_id", "not a valid agent id")
	}
	if len(req.Container) > 256 {
		fs.bad("container", "at most 256 characters")
	}
	if req.StepSeconds < 0 || req.StepSeconds%60 != 0 {
		fs.bad("step_seconds", "must be a multiple of 60")
	}
	from, to := fs.timeRange(req.From, req.To, s.cfg.Now(), metricsDefaultRange, events.MetricsMaxRange)
	if err := fs.err(); err != nil {
		return events.AgentMetricsReply{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	q := store.RollupQuery{OrgID: org, AgentID: req.AgentID, Container: req.Container,
		From: from.Truncate(time.Minute), To: ceil(to, time.Minute)}
	scopes, err := s.st.Scopes(ctx, q)
	if err != nil {
		return events.AgentMetricsReply{}, storeError(ctx, err)
	}
	perSeries := min(s.cfg.MetricsMaxSeriesPoints, s.cfg.MetricsMaxPoints/max(1, scopes))
	if perSeries < 1 {
		return events.AgentMetricsReply{}, events.Invalid("too many containers for one reply: name one with container")
	}
	width := q.To.Sub(q.From)
	minStep := max(time.Minute, ceil(time.Duration(int64(width)/int64(perSeries)), time.Minute))
	step := minStep
	if req.StepSeconds > 0 {
		step = time.Duration(req.StepSeconds) * time.Second
		if step < minStep {
			fs.bad("step_seconds", "at least %d for this range and number of series", int(minStep/time.Second))
			return events.AgentMetricsReply{}, fs.err()
		}
	}
	q.Step = step
	q.From = time.Unix(0, 0).Add(q.From.Sub(time.Unix(0, 0)) / step * step).UTC()
	q.To = ceilEpoch(q.To, step)
	series, err := s.st.Rollup(ctx, q)
	if err != nil {
		return events.AgentMetricsReply{}, storeError(ctx, err)
	}
	reply := events.AgentMetricsReply{AgentID: req.AgentID, From: q.From, To: q.To, StepSeconds: int(step / time.Second),
		Series: make([]events.MetricSeries, 0, len(series))}
	for _, sr := range series {
		out := events.MetricSeries{Scope: sr.Scope, ID: sr.ID, Name: sr.Name, Points: make([]events.MetricPoint, 0, len(sr.Points))}
		for _, p := range sr.Points {
			out.Points = append(out.Points, events.MetricPoint{Time: p.Time, Samples: p.Samples, CPUAvg: p.CPUAvg, CPUMax: p.CPUMax,
				MemAvg: p.MemAvg, MemMax: p.MemMax, MemLimit: p.MemLimit, NetRxRate: p.RxRate, NetTxRate: p.TxRate})
		}
		reply.Series = append(reply.Series, out)
	}
	return reply, nil
}

// ceil rounds d up to a multiple of unit.
func ceil[T time.Time | time.Duration](v T, unit time.Duration) T {
	switch x := any(v).(type) {
	case time.Time:
		t := x.Truncate(unit)
		if t.Before(x) {
			t = t.Add(unit)
		}
		return any(t).(T)
	case time.Duration:
		return any((x + unit - 1) / unit * unit).(T)
	}
	return v
}

// ceilEpoch rounds t up to a multiple of step since the Unix epoch.
func ceilEpoch(t time.Time, step time.Duration) time.Time {
	d := t.Sub(time.Unix(0, 0))
	return time.Unix(0, 0).Add((d + step - 1) / step * step).UTC()
}
