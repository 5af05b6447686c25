package harness

import (
	"fmt"
	"math"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Plot size: small PNGs (768×432 px) that read well in docs.
const (
	plotWidth  = 8 * vg.Inch
	plotHeight = 4.5 * vg.Inch
)

// WritePlots writes <dir>/<scenario>-throughput.png (completions per second
// of every recorder over time) and <dir>/<scenario>-latency.png (each
// recorder's latency distribution, percentile on a log-ish axis as
// HdrHistogram plots draw it). A plot without data is not written. It
// returns the paths written.
func WritePlots(r *Result, dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var out []string
	if p, ok := throughputPlot(r); ok {
		path := filepath.Join(dir, r.Scenario+"-throughput.png")
		if err := p.Save(plotWidth, plotHeight, path); err != nil {
			return out, fmt.Errorf("throughput plot: %w", err)
		}
		out = append(out, path)
	}
	if p, ok := latencyPlot(r); ok {
		path := filepath.Join(dir, r.Scenario+"-latency.png")
		if err := p.Save(plotWidth, plotHeight, path); err != nil {
			return out, fmt.Errorf("latency plot: %w", err)
		}
		out = append(out, path)
	}
	return out, nil
}

// throughputPlot draws each recorder's per-second series. The last second
// of a series is left out: it is cut by the end of the run, and drawing it
// would show a drop that did not happen.
func throughputPlot(r *Result) (*plot.Plot, bool) {
	p := plot.New()
	p.Title.Text = r.Scenario + " — throughput"
	p.X.Label.Text = "seconds since start"
	p.Y.Label.Text = "completions / s"
	p.Legend.Top = true
	type line struct {
		name string
		pts  plotter.XYs
	}
	var lines []line
	lo, hi := math.Inf(1), 0.0
	for _, s := range r.Recorders {
		series := s.PerSecond
		if len(series) > 1 {
			series = series[:len(series)-1]
		}
		if len(series) == 0 {
			continue
		}
		pts := make(plotter.XYs, len(series))
		for i, v := range series {
			pts[i].X, pts[i].Y = float64(i)+0.5, float64(v)
			if v > 0 {
				lo = math.Min(lo, float64(v))
			}
			hi = math.Max(hi, float64(v))
		}
		lines = append(lines, line{s.Name, pts})
	}
	if len(lines) == 0 || hi == 0 {
		return nil, false
	}
	logY := hi/lo > 20
	if logY {
		// Series of very different sizes (baseline parts): log scale,
		// with zero seconds drawn at the bottom instead of -Inf.
		p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
		p.Y.Min = lo / 2
	} else {
		p.Y.Min = 0
	}
	p.Y.Max = legendRoom(p.Y.Min, hi, logY, len(lines))
	for i, l := range lines {
		if logY {
			for j := range l.pts {
				l.pts[j].Y = math.Max(l.pts[j].Y, lo/2)
			}
		}
		_ = addLine(p, i, l.name, l.pts)
	}
	return p, true
}

// latencyPlot draws each recorder's percentiles with x = 1/(1-q), so that
// 50 %, 90 %, 99 %, 99.9 % … are evenly spaced, and the maximum at the
// right edge.
func latencyPlot(r *Result) (*plot.Plot, bool) {
	p := plot.New()
	p.Title.Text = r.Scenario + " — latency by percentile"
	p.X.Label.Text = "percentile"
	p.Y.Label.Text = "ms"
	p.Legend.Top = true
	p.Legend.Left = true
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = percentileTicks{}
	lo, hi := math.Inf(1), 0.0
	n := 0
	for _, s := range r.Recorders {
		if s.Samples == 0 || len(s.Percentiles) == 0 {
			continue
		}
		pts := make(plotter.XYs, 0, len(s.Percentiles))
		for _, q := range s.Percentiles {
			ms := math.Max(q.MS, 0.001)
			pts = append(pts, plotter.XY{X: percentileX(q.Quantile), Y: ms})
			lo, hi = math.Min(lo, ms), math.Max(hi, ms)
		}
		if err := addLine(p, n, s.Name, pts); err != nil {
			continue
		}
		n++
	}
	if n == 0 {
		return nil, false
	}
	p.X.Min, p.X.Max = 1, maxPercentileX
	logY := hi/lo > 50
	if logY {
		p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
		p.Y.Min = lo
	} else {
		p.Y.Min = 0
	}
	p.Y.Max = legendRoom(p.Y.Min, hi, logY, n)
	return p, true
}

// legendRoom returns the top of the y axis that leaves the legend (n
// entries, in the top corner) above the data: about 6 % of the height
// per entry.
func legendRoom(lo, hi float64, logY bool, n int) float64 {
	frac := 0.06*float64(n) + 0.04
	if frac > 0.6 {
		frac = 0.6
	}
	if logY && lo > 0 {
		span := math.Log10(hi / lo)
		return hi * math.Pow(10, span*frac/(1-frac))
	}
	return hi + (hi-lo)*frac/(1-frac)
}

// maxPercentileX is where 100 % (the maximum) is drawn: 1/(1-0.99999).
const maxPercentileX = 1e5

// percentileX maps a percentile (0–100) to 1/(1-q), capped for the max.
func percentileX(q float64) float64 {
	f := q / 100
	if f >= 1-1/maxPercentileX {
		return maxPercentileX
	}
	return 1 / (1 - f)
}

// percentileTicks labels the percentile axis.
type percentileTicks struct{}

// Ticks implements plot.Ticker.
func (percentileTicks) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for _, t := range []struct {
		x     float64
		label string
	}{{1, "0%"}, {2, "50%"}, {10, "90%"}, {100, "99%"}, {1000, "99.9%"}, {1e4, "99.99%"}, {1e5, "max"}} {
		if t.x >= lo && t.x <= hi {
			ts = append(ts, plot.Tick{Value: t.x, Label: t.label})
		}
	}
	return ts
}

// addLine adds a named line in the i-th color and dash style.
func addLine(p *plot.Plot, i int, name string, pts plotter.XYs) error {
	l, err := plotter.NewLine(pts)
	if err != nil {
		return err
	}
	l.Color = plotutil.Color(i)
	l.Dashes = plotutil.Dashes(i / 7)
	l.Width = vg.Points(1.5)
	p.Add(l)
	p.Legend.Add(name, l)
	return nil
}
