package scenario

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/loadtest/internal/harness"
	"github.com/infrapilot/infrapilot/loadtest/internal/simagent"
)

// One simulated agent of the logs scenario: a generator that produces its
// containers' lines on an open-loop schedule and cuts them into batches
// as the real agent's log followers do (MaxLines, MaxBytes, or
// FlushInterval after a batch's first line), an in-memory outbox, and a
// sender that publishes the batches into the hub's LOGS stream and waits
// for each PubAck (one at a time by default, as the real forwarder does),
// retrying with the same Nats-Msg-Id on failure.

// errOutboxFull counts a batch dropped because the agent's in-memory
// outbox already held --max-backlog bytes: the hub did not keep up.
type errOutboxFull struct{}

func (errOutboxFull) Error() string { return "outbox full: the hub did not take the offered lines" }
func (errOutboxFull) Kind() string  { return "outbox_full" }

// errPubAckTimeout is a publish the hub did not acknowledge in time.
type errPubAckTimeout struct{}

func (errPubAckTimeout) Error() string { return "no PubAck in time" }
func (errPubAckTimeout) Kind() string  { return "puback_timeout" }

// logBatch is one batch waiting in, or being sent from, the outbox.
type logBatch struct {
	subject, id string
	data        []byte
	lines       int
	markers     []logMarker
	sentAt      time.Time // first attempt
	attempts    int
}

// logMarker is a sampled line whose publish→queryable delay is measured.
type logMarker struct {
	text, agent string
	lineAt      time.Time // the line's time (when it was due)
	sentAt      time.Time // when its batch was first published
}

// logsShared is what every agent of a run shares.
type logsShared struct {
	cfg        logsConfig
	run        string
	start, end time.Time
	// nextMark is when the next marker line is due (unix ns).
	nextMark  atomic.Int64
	markEvery int64
	markSeq   atomic.Int64
	markers   func(logMarker)

	offered, accepted *harness.Recorder
	batches           *harness.Recorder
	acked, lost       atomic.Int64
	dropped           atomic.Int64
}

// openBatch is a container's batch being filled.
type openBatch struct {
	lines   []simagent.Line
	bytes   int
	first   time.Time
	markers []logMarker
}

type logAgent struct {
	sh      *logsShared
	a       *simagent.Agent
	streams []*simagent.LogStream
	open    []openBatch
	short   string

	mu      sync.Mutex
	cond    *sync.Cond
	queue   []*logBatch
	qbytes  int64
	closed  bool
	sem     chan struct{}
	pending sync.WaitGroup
	line    []byte
}

func newLogAgent(sh *logsShared, a *simagent.Agent) *logAgent {
	la := &logAgent{sh: sh, a: a, sem: make(chan struct{}, max(sh.cfg.inflight, 1)), short: a.AgentID[len(a.AgentID)-8:]}
	la.cond = sync.NewCond(&la.mu)
	for i, c := range a.Containers() {
		if i >= sh.cfg.containers {
			break
		}
		la.streams = append(la.streams, simagent.NewLogStream(a.OrgID, a.AgentID, c.ID, c.Name, c.Stack))
	}
	la.open = make([]openBatch, len(la.streams))
	return la
}

// generate produces the agent's lines until the run's end, then flushes
// and closes the outbox.
func (la *logAgent) generate(ctx context.Context, rate float64) {
	defer la.closeQueue()
	sh := la.sh
	total := int64(rate * sh.end.Sub(sh.start).Seconds())
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var n int64
	for n < total {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		due := min(int64(now.Sub(sh.start).Seconds()*rate), total)
		if due > n {
			sh.offered.Items(now, due-n)
		}
		for ; n < due; n++ {
			at := sh.start.Add(time.Duration(float64(n) / rate * float64(time.Second)))
			la.add(int(n%int64(len(la.streams))), n, at, now)
		}
		for i := range la.open {
			if len(la.open[i].lines) > 0 && now.Sub(la.open[i].first) >= sh.cfg.flush {
				la.flush(i)
			}
		}
	}
	for i := range la.open {
		la.flush(i)
	}
}

// add appends line n (due at at) to container i's batch.
func (la *logAgent) add(i int, n int64, at, now time.Time) {
	sh := la.sh
	ob := &la.open[i]
	if len(ob.lines) == 0 {
		ob.first = now
	}
	mark := ""
	if next := sh.nextMark.Load(); at.UnixNano() >= next && sh.nextMark.CompareAndSwap(next, next+sh.markEvery) {
		mark = "ltq-" + sh.run + "-" + pad8(sh.markSeq.Add(1))
		ob.markers = append(ob.markers, logMarker{text: mark, agent: la.a.AgentID, lineAt: at})
	}
	la.line = appendLogLine(la.line[:0], n, la.short, sh.cfg.lineBytes, mark)
	stream := events.StreamStdout
	if n%10 == 7 {
		stream = events.StreamStderr
	}
	ob.lines = append(ob.lines, simagent.Line{Time: at, Stream: stream, Text: string(la.line)})
	ob.bytes += len(la.line) + 48
	if len(ob.lines) >= sh.cfg.batchLines || ob.bytes >= sh.cfg.batchBytes {
		la.flush(i)
	}
}

// flush moves container i's batch into the outbox.
func (la *logAgent) flush(i int) {
	ob := &la.open[i]
	if len(ob.lines) == 0 {
		return
	}
	data, id := la.streams[i].Batch(ob.lines)
	b := &logBatch{subject: la.streams[i].Subject, id: id, data: append([]byte(nil), data...), lines: len(ob.lines), markers: ob.markers}
	*ob = openBatch{lines: ob.lines[:0]}
	la.mu.Lock()
	if la.qbytes+int64(len(b.data)) > la.sh.cfg.maxBacklog {
		la.mu.Unlock()
		la.sh.dropped.Add(int64(b.lines))
		la.sh.batches.Error(errOutboxFull{})
		return
	}
	la.queue = append(la.queue, b)
	la.qbytes += int64(len(b.data))
	la.mu.Unlock()
	la.cond.Signal()
}

func (la *logAgent) closeQueue() {
	la.mu.Lock()
	la.closed = true
	la.mu.Unlock()
	la.cond.Broadcast()
}

func (la *logAgent) pop() *logBatch {
	la.mu.Lock()
	defer la.mu.Unlock()
	for len(la.queue) == 0 && !la.closed {
		la.cond.Wait()
	}
	if len(la.queue) == 0 {
		return nil
	}
	b := la.queue[0]
	la.queue[0] = nil
	la.queue = la.queue[1:]
	la.qbytes -= int64(len(b.data))
	return b
}

// send publishes the outbox until it is closed and empty and every
// publish is answered; ctx ending stops retries (what is left is lost).
func (la *logAgent) send(ctx context.Context) {
	stop := context.AfterFunc(ctx, la.closeQueue)
	defer stop()
	for {
		b := la.pop()
		if b == nil {
			break
		}
		if ctx.Err() != nil {
			la.sh.lost.Add(int64(b.lines))
			continue
		}
		la.sem <- struct{}{}
		la.pending.Add(1)
		la.publish(ctx, b)
	}
	la.pending.Wait()
}

func (la *logAgent) publish(ctx context.Context, b *logBatch) {
	c := la.a.Conn()
	start := time.Now()
	if b.attempts == 0 {
		b.sentAt = start
	}
	b.attempts++
	var cancel atomic.Pointer[func() bool]
	timer := time.AfterFunc(la.sh.cfg.ackTimeout, func() {
		if f := cancel.Load(); f != nil && (*f)() {
			la.answered(ctx, b, start, simagent.PubAck{}, errPubAckTimeout{})
		}
	})
	f := c.PublishJS(b.subject, b.id, b.data, func(ack simagent.PubAck, err error) {
		timer.Stop()
		la.answered(ctx, b, start, ack, err)
	})
	cancel.Store(&f)
}

// answered handles a publish's outcome: counted when acknowledged,
// retried with backoff (same Nats-Msg-Id) when not, lost when the link is
// gone or the run is over.
func (la *logAgent) answered(ctx context.Context, b *logBatch, start time.Time, ack simagent.PubAck, err error) {
	now := time.Now()
	sh := la.sh
	sh.batches.Observe(now, now.Sub(start), err)
	if err == nil {
		if !ack.Duplicate || b.attempts > 1 {
			sh.accepted.Items(now, int64(b.lines))
			sh.acked.Add(int64(b.lines))
			for _, m := range b.markers {
				m.sentAt = b.sentAt
				sh.markers(m)
			}
		} else {
			sh.lost.Add(int64(b.lines)) // a first attempt taken for a duplicate: an id collision
		}
		la.release()
		return
	}
	if errors.Is(err, simagent.ErrClosed) || ctx.Err() != nil {
		sh.lost.Add(int64(b.lines))
		la.release()
		return
	}
	backoff := min(50*time.Millisecond<<min(b.attempts, 6), 2*time.Second)
	time.AfterFunc(backoff, func() {
		if ctx.Err() != nil {
			sh.lost.Add(int64(b.lines))
			la.release()
			return
		}
		la.publish(ctx, b)
	})
}

func (la *logAgent) release() {
	<-la.sem
	la.pending.Done()
}

// logTemplates vary the lines as real services write them: plain lines
// with a level word, JSON lines (which the ingest parses), a few errors.
var logTemplates = []string{
	"INFO  http request method=GET path=/api/v1/items status=200 dur_ms=",
	"INFO  http request method=POST path=/api/v1/orders status=201 dur_ms=",
	"INFO  http request method=GET path=/healthz status=200 dur_ms=",
	"DEBUG cache lookup key=user hit=false dur_ms=",
	`{"level":"warn","msg":"slow query","table":"orders","duration_ms":`,
	"INFO  job finished queue=mail processed=25 dur_ms=",
	"ERROR upstream timeout service=payments attempt=2 dur_ms=",
	`{"level":"info","msg":"request served","route":"/api/v1/items","duration_ms":`,
	"WARN  retrying connection to db host=db-1 dur_ms=",
	"INFO  http request method=GET path=/api/v1/users status=200 dur_ms=",
}

const logFiller = " lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua"

// appendLogLine writes line n: a template, a duration and a request id
// unique to the line, filler up to size bytes, and the marker if any.
func appendLogLine(b []byte, n int64, agent string, size int, mark string) []byte {
	tpl := logTemplates[n%int64(len(logTemplates))]
	b = append(b, tpl...)
	b = strconv.AppendInt(b, n%997, 10)
	json := tpl[0] == '{'
	if json {
		b = append(b, `,"rid":"`...)
	} else {
		b = append(b, " rid="...)
	}
	b = append(b, agent...)
	b = append(b, '-')
	b = strconv.AppendInt(b, n, 36)
	if mark != "" {
		b = append(b, ' ')
		b = append(b, mark...)
	}
	if pad := size - len(b) - 2; pad > 0 {
		b = append(b, logFiller[:min(pad, len(logFiller))]...)
	}
	if json {
		b = append(b, `"}`...)
	}
	return b
}

func pad8(n int64) string {
	s := strconv.FormatInt(n, 10)
	for len(s) < 8 {
		s = "0" + s
	}
	return s
}
