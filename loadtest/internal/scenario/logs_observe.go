package scenario

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/infrapilot/infrapilot/loadtest/internal/harness"
	"github.com/infrapilot/infrapilot/loadtest/internal/target"
)

// How the logs scenario sees what was stored, without trusting its own
// offered rate:
//
//   - the count: the log-ingest service's own counter of rows written to
//     the store, infrapilot_logingest_rows_stored_total{consumer=
//     "logingest_logs"}, read from the gateway's /metrics (the process
//     registry every service shares) while the load runs;
//   - queryability: sampled lines carry a unique marker, and a poller asks
//     GET /logs?q=<marker> (narrowed to the agent and a few seconds) until
//     the line comes back: the delay from the batch's publish (and from
//     the line's own time) to a query that returns it.

// storedMetric is the counter the count is read from.
const storedMetric = `infrapilot_logingest_rows_stored_total{consumer="logingest_logs"}`

// storedCounter reads the log-ingest counter from the gateway's /metrics.
type storedCounter struct {
	url  string
	http *http.Client
}

func newStoredCounter(t *target.Target) *storedCounter {
	base := strings.TrimSuffix(strings.TrimRight(t.APIURL, "/"), "/api/v1")
	c := t.HTTP
	if c == nil {
		c = http.DefaultClient
	}
	return &storedCounter{url: base + "/metrics", http: c}
}

// read returns the counter's value (0 before the first flush: the series
// does not exist yet).
func (s *storedCounter) read(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, &target.APIError{Status: resp.StatusCode, Body: "GET " + s.url}
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), storedMetric+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return 0, fmt.Errorf("%s: %w", storedMetric, err)
			}
			return int64(f), nil
		}
	}
	return 0, sc.Err()
}

// storedWatch polls the counter and records its growth as items of rec.
type storedWatch struct {
	c        *storedCounter
	rec      *harness.Recorder
	base     int64
	mu       sync.Mutex
	last     int64
	lastGrow time.Time
	errs     atomic.Int64
}

func newStoredWatch(ctx context.Context, c *storedCounter, rec *harness.Recorder) (*storedWatch, error) {
	v, err := c.read(ctx)
	if err != nil {
		return nil, err
	}
	return &storedWatch{c: c, rec: rec, base: v, last: v}, nil
}

// poll reads the counter once and records its growth.
func (w *storedWatch) poll(ctx context.Context) {
	v, err := w.c.read(ctx)
	now := time.Now()
	if err != nil {
		if ctx.Err() == nil {
			w.errs.Add(1)
		}
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if v > w.last {
		w.rec.Items(now, v-w.last)
		w.last, w.lastGrow = v, now
	}
}

// run polls every interval until ctx ends.
func (w *storedWatch) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.poll(ctx)
		}
	}
}

// stored is the rows stored since the watch began, and when the count
// last grew.
func (w *storedWatch) stored() (int64, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last - w.base, w.lastGrow
}

// errNotQueryable is a sampled line that no query returned in time.
type errNotQueryable struct{ marker string }

func (e errNotQueryable) Error() string { return "line " + e.marker + " never became queryable" }
func (errNotQueryable) Kind() string    { return "not_queryable" }

// markerPoller finds sampled lines through the API.
type markerPoller struct {
	t        *target.Target
	fromSend *harness.Recorder // publish → queryable
	fromLine *harness.Recorder // line's time → queryable
	interval time.Duration
	deadline time.Duration
	jobs     chan logMarker
	skipped  atomic.Int64
	queries  atomic.Int64
	wg       sync.WaitGroup
}

func newMarkerPoller(t *target.Target, fromSend, fromLine *harness.Recorder, interval, deadline time.Duration, workers int) *markerPoller {
	return &markerPoller{t: t, fromSend: fromSend, fromLine: fromLine, interval: interval, deadline: deadline,
		jobs: make(chan logMarker, workers)}
}

// add hands a marker over; when every worker is busy it is skipped (the
// sampling must never slow the agent down).
func (p *markerPoller) add(m logMarker) {
	select {
	case p.jobs <- m:
	default:
		p.skipped.Add(1)
	}
}

func (p *markerPoller) start(ctx context.Context, workers int) {
	for range workers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for m := range p.jobs {
				p.find(ctx, m)
			}
		}()
	}
}

// close stops taking markers and waits for those being polled.
func (p *markerPoller) close() {
	close(p.jobs)
	p.wg.Wait()
}

// find polls until a query returns the marked line or the deadline.
func (p *markerPoller) find(ctx context.Context, m logMarker) {
	q := url.Values{}
	q.Set("agent_id", m.agent)
	q.Set("q", m.text)
	q.Set("from", m.lineAt.Add(-2*time.Second).UTC().Format(time.RFC3339Nano))
	q.Set("to", m.lineAt.Add(2*time.Second).UTC().Format(time.RFC3339Nano))
	q.Set("limit", "1")
	path := "/logs?" + q.Encode()
	for {
		var page struct {
			Items []struct {
				Line string `json:"line"`
			} `json:"items"`
		}
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := p.t.Do(qctx, http.MethodGet, path, nil, &page)
		cancel()
		p.queries.Add(1)
		now := time.Now()
		if err == nil && len(page.Items) > 0 {
			p.fromSend.Observe(now, now.Sub(m.sentAt), nil)
			p.fromLine.Observe(now, now.Sub(m.lineAt), nil)
			return
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			p.fromSend.Error(err)
		}
		if now.Sub(m.sentAt) > p.deadline {
			p.fromSend.Observe(now, 0, errNotQueryable{m.text})
			return
		}
		fleetSleep(ctx, p.interval)
	}
}
