package routes

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/coder/websocket"
	"github.com/go-chi/chi/v5"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway/internal/httpapi"
	"github.com/nats-io/nats.go"
)

// Session bridge bounds. Output the client does not take in time is
// dropped and reported, never buffered without bound: at most
// sessionBuffer output messages (an agent sends at most 32 KiB in one)
// wait for a client, and a client that does not take one write within
// tailWriteTimeout ends its session.
const (
	sessionOpenTimeout = 15 * time.Second
	sessionBuffer      = 256
	// sessionKeepalive keeps the agent from ending a quiet session (it
	// ends one it has not heard from in events.SessionIdleTimeout).
	sessionKeepalive = events.SessionIdleTimeout / 3
	sessionPing      = 30 * time.Second
	// sessionMaxInput bounds one client frame, well below the NATS
	// payload limit it is forwarded in.
	sessionMaxInput = 512 << 10
	maxTermSize     = 1000
	maxExecArgs     = 64
	maxExecArgLen   = 4096
)

// Client control messages (text frames) of an exec session.
const (
	controlInput  = "input"
	controlResize = "resize"
)

// sessionControl is a client's text frame: {"type":"resize","rows":…,
// "cols":…} or {"type":"input","data":"…"}.
type sessionControl struct {
	Type string `json:"type"`
	Rows uint   `json:"rows"`
	Cols uint   `json:"cols"`
	Data string `json:"data"`
}

// sessionEnd is a session's last frame: the process's exit code (-1 when
// it ended abnormally or never started), why, and, when the session could
// not be opened, the problem code the REST API would have answered.
type sessionEnd struct {
	Exit  int         `json:"exit"`
	Error string      `json:"error,omitempty"`
	Code  events.Code `json:"code,omitempty"`
}

// logsStream is WS /agents/{id}/containers/{cid}/logs/stream?tail=: the
// container's last tail lines (default 100), then its new lines as the
// agent reads them, one events.LogLine per text frame. {"dropped": n}
// says n lines were lost (the client fell behind), and {"exit": …} ends
// the stream (the container stopped, or the agent ended it).
func (a agentRoutes) logsStream(w http.ResponseWriter, r *http.Request) {
	cid, err := container(r)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	q := &auditQuery{r: r}
	tail := intParam(q, "tail", 1, maxLogsTail, defaultLogsTail)
	if err := q.err(); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	a.session(w, r, events.OpAgentLogsFollow, false, func(session string) any {
		return events.LogsFollowRequest{Session: session, Container: cid, Tail: tail}
	})
}

// exec is WS /agents/{id}/containers/{cid}/exec?cmd=…&tty=&rows=&cols=:
// an interactive process in the container (cmd repeated for each
// argument, default /bin/sh; a terminal unless tty=false). Its output
// arrives as binary frames; binary frames from the client are its stdin,
// text frames are control messages (sessionControl; unknown ones are
// ignored). {"dropped": n} says n output chunks were lost, and
// {"exit": code, "error": …} is the last frame before a normal close.
func (a agentRoutes) exec(w http.ResponseWriter, r *http.Request) {
	cid, err := container(r)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	req, err := execRequest(r, cid)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	a.session(w, r, events.OpAgentExecOpen, true, func(session string) any {
		req.Session = session
		return req
	})
}

// execRequest reads exec's query parameters.
func execRequest(r *http.Request, cid string) (events.ExecOpenRequest, error) {
	q := &auditQuery{r: r}
	req := events.ExecOpenRequest{Container: cid, Cmd: r.URL.Query()["cmd"], TTY: boolParam(q, "tty", true),
		Rows: uint(intParam(q, "rows", 1, maxTermSize, 0)), Cols: uint(intParam(q, "cols", 1, maxTermSize, 0))}
	if len(req.Cmd) == 0 {
		req.Cmd = []string{"/bin/sh"}
	}
	bad := len(req.Cmd) > maxExecArgs || req.Cmd[0] == ""
	for _, arg := range req.Cmd {
		bad = bad || len(arg) > maxExecArgLen
	}
	if bad {
		q.bad("cmd", "a program and its arguments: at most "+strconv.Itoa(maxExecArgs)+" of at most "+strconv.Itoa(maxExecArgLen)+" bytes")
	}
	return req, q.err()
}

// session bridges the request's WebSocket and an agent session that
// open's request starts (see events.AgentSessionOutput). The socket is
// accepted first (same origin only, as the live tail) so that a browser,
// which cannot read a refused handshake, learns why a session could not
// be opened: a sessionEnd frame, then a close with code 4000 + the HTTP
// status (4503 for an offline agent). Whatever ends the bridge short of
// the session's own end tells the agent to close the session.
func (a agentRoutes) session(w http.ResponseWriter, r *http.Request, op string, terminal bool, open func(session string) any) {
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept has answered the client
	}
	defer conn.CloseNow()
	conn.SetReadLimit(sessionMaxInput)
	// A session lives as long as its client: detached from the request
	// deadline on purpose, keeping the request's values.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()

	b := &sessionBridge{nc: a.d.NC, conn: conn, terminal: terminal, org: principalOrg(r), agent: chi.URLParam(r, "id"),
		id: "gw_" + rand.Text(), next: 1, out: make(chan *nats.Msg, sessionBuffer), exit: make(chan *nats.Msg, 1)}
	// Subscribe before opening, so that no output can be missed.
	sub, err := b.nc.Subscribe(events.AgentSessionOutput(b.org, b.agent, b.id), b.receive)
	if err != nil {
		a.refuse(ctx, r, conn, err)
		return
	}
	defer func() { _ = sub.Unsubscribe() }()
	_ = sub.SetPendingLimits(sessionBuffer, 64<<20)
	defer func() {
		if !b.ended {
			_ = b.nc.Publish(events.AgentSessionClose(b.org, b.agent, b.id), nil)
		}
	}()
	fctx, fcancel := context.WithTimeout(ctx, sessionOpenTimeout)
	err = b.nc.FlushWithContext(fctx)
	fcancel()
	if err == nil {
		_, err = agentCall[any, events.SessionOpened](ctx, b.nc, b.org, b.agent, op, open(b.id), sessionOpenTimeout)
	}
	if err != nil {
		a.refuse(ctx, r, conn, err)
		return
	}
	go b.readClient(ctx, cancel)
	b.pump(ctx)
}

// refuse ends a socket whose session could not be opened.
func (a agentRoutes) refuse(ctx context.Context, r *http.Request, conn *websocket.Conn, err error) {
	p := httpapi.ProblemFor(r, err)
	if p.Status >= http.StatusInternalServerError && a.d.Log != nil {
		a.d.Log.WarnContext(ctx, "agent session not opened", "path", r.URL.Path, "err", err)
	}
	if writeJSON(ctx, conn, sessionEnd{Exit: -1, Error: p.Detail, Code: p.Code}) == nil {
		_ = conn.Close(websocket.StatusCode(4000+p.Status), string(p.Code))
	}
}

// sessionBridge is one WebSocket's agent session.
type sessionBridge struct {
	nc             *nats.Conn
	conn           *websocket.Conn
	terminal       bool
	org, agent, id string
	out, exit      chan *nats.Msg
	next           uint64 // the output sequence number expected next; pump's only
	ended          bool   // the agent sent the session's last message; pump's only
}

// receive queues one output message for pump. It never blocks the NATS
// connection: when the client is behind, the message is dropped and pump
// reports the gap. The last message has a slot of its own and is never
// dropped.
func (b *sessionBridge) receive(m *nats.Msg) {
	if m.Header.Get(events.HeaderSessionExit) != "" {
		select {
		case b.exit <- m:
		default:
		}
		return
	}
	select {
	case b.out <- m:
	default:
	}
}

// pump writes the session's output to the client until the session ends,
// the client goes away or falls too far behind; it also keeps the session
// alive at the agent and pings the client.
func (b *sessionBridge) pump(ctx context.Context) {
	keepalive := time.NewTicker(sessionKeepalive)
	defer keepalive.Stop()
	ping := time.NewTicker(sessionPing)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-b.out:
			if b.forward(ctx, m) != nil {
				return
			}
		case m := <-b.exit:
			b.ended = true
			// Everything queued before the last message goes first.
		drain:
			for {
				select {
				case o := <-b.out:
					if b.forward(ctx, o) != nil {
						return
					}
				default:
					break drain
				}
			}
			b.finish(ctx, m)
			return
		case <-keepalive.C:
			if b.nc.Publish(events.AgentSessionInput(b.org, b.agent, b.id), nil) != nil {
				return
			}
		case <-ping.C:
			pctx, cancel := context.WithTimeout(ctx, tailWriteTimeout)
			err := b.conn.Ping(pctx)
			cancel()
			if err != nil {
				return
			}
		}
	}
}

// forward writes one output message, after a {"dropped": n} notice when
// messages before it were lost (dropped here, by NATS, or on the way).
func (b *sessionBridge) forward(ctx context.Context, m *nats.Msg) error {
	if seq, err := strconv.ParseUint(m.Header.Get(events.HeaderSessionSeq), 10, 64); err == nil && seq >= b.next {
		lost := seq - b.next
		b.next = seq + 1
		if lost > 0 {
			if err := writeJSON(ctx, b.conn, map[string]uint64{"dropped": lost}); err != nil {
				return err
			}
		}
	}
	if len(m.Data) == 0 {
		return nil
	}
	if b.terminal {
		wctx, cancel := context.WithTimeout(ctx, tailWriteTimeout)
		defer cancel()
		return b.conn.Write(wctx, websocket.MessageBinary, m.Data)
	}
	// Re-encoded rather than passed on: the client gets exactly a LogLine,
	// in valid UTF-8, whatever an agent sent.
	var l events.LogLine
	if json.Unmarshal(m.Data, &l) != nil {
		return nil
	}
	return writeJSON(ctx, b.conn, l)
}

// finish writes the session's last message and closes the socket
// normally.
func (b *sessionBridge) finish(ctx context.Context, m *nats.Msg) {
	if b.forward(ctx, m) != nil {
		return
	}
	end := sessionEnd{Exit: -1, Error: m.Header.Get(events.HeaderSessionError)}
	if n, err := strconv.Atoi(m.Header.Get(events.HeaderSessionExit)); err == nil {
		end.Exit = n
	}
	if writeJSON(ctx, b.conn, end) == nil {
		_ = b.conn.Close(websocket.StatusNormalClosure, "")
	}
}

// readClient forwards the client's frames to the session until the
// socket closes, then cancels the bridge. A log stream takes no input.
func (b *sessionBridge) readClient(ctx context.Context, cancel context.CancelFunc) {
	defer cancel()
	for {
		typ, data, err := b.conn.Read(ctx)
		if err != nil {
			return
		}
		if !b.terminal {
			continue
		}
		if typ == websocket.MessageBinary {
			err = b.input(data)
		} else {
			err = b.control(data)
		}
		if err != nil {
			return
		}
	}
}

func (b *sessionBridge) input(data []byte) error {
	if len(data) == 0 {
		return nil
	}
	return b.nc.Publish(events.AgentSessionInput(b.org, b.agent, b.id), data)
}

// control handles a client's text frame; malformed and unknown ones are
// ignored, so that a newer client's messages do not end the session.
func (b *sessionBridge) control(data []byte) error {
	var c sessionControl
	if json.Unmarshal(data, &c) != nil {
		return nil
	}
	switch c.Type {
	case controlInput:
		return b.input([]byte(c.Data))
	case controlResize:
		if c.Rows < 1 || c.Rows > maxTermSize || c.Cols < 1 || c.Cols > maxTermSize {
			return nil
		}
		size, _ := json.Marshal(events.SessionResize{Rows: c.Rows, Cols: c.Cols})
		return b.nc.Publish(events.AgentSessionResize(b.org, b.agent, b.id), size)
	}
	return nil
}
