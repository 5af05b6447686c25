package commands

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/infrapilot/infrapilot/agent/internal/docker"
	"github.com/infrapilot/infrapilot/events"
	"github.com/nats-io/nats.go"
)

// chunkSize bounds one output message of a session.
const chunkSize = 32 << 10

// session is one interactive stream. Its input is queued by the
// subscription and written by the session's own goroutine, so a process
// that does not read its stdin blocks only its own session.
type session struct {
	id     string
	out    string
	seq    atomic.Uint64
	in     chan []byte
	last   atomic.Int64 // unix nanos of the caller's last message
	cancel context.CancelFunc
	// resize and closeFn act on the session's process; nil when the
	// session has none (log follow).
	resize  func(ctx context.Context, rows, cols uint) error
	closeFn func()

	endOnce sync.Once
}

func (s *session) touch() { s.last.Store(time.Now().UnixNano()) }

// openSession registers a session; the caller starts it.
func (r *Responder) openSession(id string) (*session, context.Context, error) {
	if !events.ValidToken(id) {
		return nil, nil, events.Invalid("session id %q is not a valid subject token", id).
			WithFields(events.FieldError{Field: "session", Message: "letters, digits, '-' and '_' only"})
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.base == nil || r.base.Err() != nil {
		return nil, nil, events.Errorf(events.CodeUnavailable, "agent is stopping")
	}
	if _, dup := r.sessions[id]; dup {
		return nil, nil, events.Errorf(events.CodeConflict, "session %s exists", id)
	}
	if len(r.sessions) >= r.cfg.MaxSessions {
		return nil, nil, events.Errorf(events.CodeUnavailable, "too many sessions (%d)", r.cfg.MaxSessions)
	}
	ctx, cancel := context.WithCancel(r.base)
	s := &session{id: id, out: events.AgentSessionOutput(r.cfg.OrgID, r.cfg.AgentID, id),
		in: make(chan []byte, 256), cancel: cancel}
	s.touch()
	r.sessions[id] = s
	return s, ctx, nil
}

func (r *Responder) execOpen(ctx context.Context, req events.ExecOpenRequest) (events.SessionOpened, error) {
	s, sctx, err := r.openSession(req.Session)
	if err != nil {
		return events.SessionOpened{}, err
	}
	ex, err := r.dc.Exec(ctx, req.Container, docker.ExecOptions{Cmd: req.Cmd, TTY: req.TTY, Rows: req.Rows,
		Cols: req.Cols, User: req.User, WorkingDir: req.WorkingDir})
	if err != nil {
		r.drop(s)
		return events.SessionOpened{}, err
	}
	s.resize = ex.Resize
	s.closeFn = func() { _ = ex.Close() }
	r.wg.Add(2)
	go func() { // input
		defer r.wg.Done()
		for {
			select {
			case <-sctx.Done():
				return
			case b := <-s.in:
				if _, err := ex.Write(b); err != nil {
					return
				}
			}
		}
	}()
	go func() { // output, then the end of the session
		defer r.wg.Done()
		buf := make([]byte, chunkSize)
		for {
			n, err := ex.Read(buf)
			if n > 0 {
				r.emit(s, buf[:n], nil)
			}
			if err != nil {
				break
			}
		}
		wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		code, err := ex.Wait(wctx)
		cancel()
		r.end(s, code, err)
	}()
	r.wg.Add(1)
	go r.watch(sctx, s)
	return events.SessionOpened{Session: s.id, Output: s.out}, nil
}

func (r *Responder) logsFollow(ctx context.Context, req events.LogsFollowRequest) (events.SessionOpened, error) {
	tail := req.Tail
	if tail < 0 || tail > 10000 {
		return events.SessionOpened{}, events.Invalid("tail must be between 0 and 10000")
	}
	if tail == 0 {
		tail = 100
	}
	s, sctx, err := r.openSession(req.Session)
	if err != nil {
		return events.SessionOpened{}, err
	}
	lr, err := r.dc.Logs(sctx, req.Container, docker.LogOptions{Follow: true, Tail: tail})
	if err != nil {
		r.drop(s)
		return events.SessionOpened{}, err
	}
	s.closeFn = func() { lr.Close() }
	r.wg.Add(2)
	go func() { // keepalives only
		defer r.wg.Done()
		for {
			select {
			case <-sctx.Done():
				return
			case <-s.in:
			}
		}
	}()
	go func() {
		defer r.wg.Done()
		for {
			l, err := lr.Next()
			if err != nil {
				if errors.Is(err, io.EOF) || sctx.Err() != nil {
					err = nil
				}
				r.end(s, 0, err)
				return
			}
			b, _ := json.Marshal(l)
			r.emit(s, b, nil)
		}
	}()
	r.wg.Add(1)
	go r.watch(sctx, s)
	return events.SessionOpened{Session: s.id, Output: s.out}, nil
}

// emit publishes one output message of a session.
func (r *Responder) emit(s *session, data []byte, hdr nats.Header) {
	m := nats.NewMsg(s.out)
	m.Data = data
	for k, v := range hdr {
		m.Header[k] = v
	}
	m.Header.Set(events.HeaderSessionSeq, strconv.FormatUint(s.seq.Add(1), 10))
	if err := r.nc.PublishMsg(m); err != nil {
		r.cfg.Log.Warn("session output lost", "session", s.id, "err", err)
	}
}

// end sends a session's last message (once) and forgets it.
func (r *Responder) end(s *session, code int, err error) {
	s.endOnce.Do(func() {
		hdr := nats.Header{}
		hdr.Set(events.HeaderSessionExit, strconv.Itoa(code))
		if err != nil {
			hdr.Set(events.HeaderSessionExit, "-1")
			hdr.Set(events.HeaderSessionError, events.AsError(err).Message)
		}
		r.emit(s, nil, hdr)
		r.drop(s)
	})
}

// drop forgets a session and releases its goroutines.
func (r *Responder) drop(s *session) {
	r.mu.Lock()
	if r.sessions[s.id] == s {
		delete(r.sessions, s.id)
	}
	r.mu.Unlock()
	s.cancel()
}

// watch ends a session whose caller has been silent for IdleTimeout, or
// when the responder stops.
func (r *Responder) watch(ctx context.Context, s *session) {
	defer r.wg.Done()
	t := time.NewTicker(min(r.cfg.IdleTimeout/4, 5*time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			r.stop(s)
			return
		case <-t.C:
			if time.Since(time.Unix(0, s.last.Load())) > r.cfg.IdleTimeout {
				r.cfg.Log.Info("session idle; closing", "session", s.id)
				r.stop(s)
				return
			}
		}
	}
}

// stop ends a session's process; its output goroutine then sends the
// last message.
func (r *Responder) stop(s *session) {
	if s.closeFn != nil {
		go s.closeFn() // Close may wait for the process; never on the subscription
	}
	s.cancel()
}

// sessionMessage handles "<session>.input|resize|close".
func (r *Responder) sessionMessage(m *nats.Msg, rest string) {
	id, verb, ok := strings.Cut(rest, ".")
	r.mu.Lock()
	s := r.sessions[id]
	r.mu.Unlock()
	if !ok || s == nil {
		r.reply(context.Background(), m, "session", nil, events.NotFound("session %s not found", id))
		return
	}
	s.touch()
	switch verb {
	case "input":
		if len(m.Data) == 0 {
			break // keepalive
		}
		select {
		case s.in <- append([]byte(nil), m.Data...):
		default:
			r.cfg.Log.Warn("session input overflow; closing", "session", id)
			r.stop(s)
		}
	case "resize":
		var sz events.SessionResize
		if err := json.Unmarshal(m.Data, &sz); err != nil {
			r.reply(context.Background(), m, "session.resize", nil, events.Invalid("malformed resize: %v", err))
			return
		}
		if s.resize == nil {
			r.reply(context.Background(), m, "session.resize", nil, events.Invalid("the session has no terminal"))
			return
		}
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := s.resize(ctx, sz.Rows, sz.Cols)
			if err != nil && m.Reply == "" {
				r.cfg.Log.Debug("session resize", "session", id, "err", err)
			}
			r.reply(ctx, m, "session.resize", events.Empty{}, err)
		}()
		return
	case "close":
		r.stop(s)
	default:
		r.reply(context.Background(), m, "session", nil, events.NotFound("unknown session operation %q", verb))
		return
	}
	r.reply(context.Background(), m, "session", events.Empty{}, nil)
}

// closeSessions ends every session (the responder is stopping).
func (r *Responder) closeSessions() {
	r.mu.Lock()
	list := make([]*session, 0, len(r.sessions))
	for _, s := range r.sessions {
		list = append(list, s)
	}
	r.mu.Unlock()
	for _, s := range list {
		r.stop(s)
	}
}
