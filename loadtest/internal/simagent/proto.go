package simagent

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// The leafnode protocol as the hub speaks it to a soliciting leaf (the
// side an agent is). It is the client protocol's text framing with leaf
// verbs (nats-server's leafnode.go and client.go):
//
//	hub → leaf   INFO {json}            (first, with the nonce to sign; again with permissions)
//	leaf → hub   CONNECT {json}         (jwt, nonce signature, name, headers)
//	both         PING / PONG
//	hub → leaf   LS+ <subject> [<queue> <weight>] / LS- …   (the hub's interest; a simulated agent ignores it)
//	leaf → hub   LS+ <subject>          (what the leaf wants delivered)
//	both         LMSG <subject> [<reply>] <size>\r\n<payload>\r\n
//	both         HMSG <subject> [<reply>] <header size> <total size>\r\n<headers><payload>\r\n
//	hub → leaf   -ERR '<text>'          (then, usually, the hub closes the link)
//
// A message delivered to queue subscribers carries their names:
// "LMSG <subject> + <reply> <queue>… <size>" or "LMSG <subject> | <queue>… <size>".

// maxControlLine bounds one protocol line the hub sends (nats-server's
// own MAX_CONTROL_LINE_SIZE is 4 KiB; INFO lines can be longer).
const maxControlLine = 64 << 10

// maxPayload bounds one message read from the hub.
const maxPayload = 64 << 20

// Header is a message's NATS headers. Keys are kept as sent.
type Header map[string][]string

// Get returns the first value of key, compared case-insensitively.
func (h Header) Get(key string) string {
	if v, ok := h[key]; ok && len(v) > 0 {
		return v[0]
	}
	for k, v := range h {
		if strings.EqualFold(k, key) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// Set replaces key's values with v.
func (h Header) Set(key, v string) { h[key] = []string{v} }

// Msg is one message from the hub.
type Msg struct {
	Subject string
	Reply   string
	Queues  []string
	Header  Header
	// Status is the status of a headers block ("NATS/1.0 503" → "503"),
	// empty for a plain one.
	Status string
	Data   []byte
}

// frame is one parsed protocol operation from the hub: Op is the verb
// ("INFO", "PING", "LMSG", "HMSG", "-ERR", …); Arg the rest of a control
// line; Msg the message of LMSG and HMSG.
type frame struct {
	Op  string
	Arg string
	Msg Msg
}

// protoReader parses the hub's side of the protocol.
type protoReader struct {
	br *bufio.Reader
}

func newProtoReader(r io.Reader) *protoReader {
	return &protoReader{br: bufio.NewReaderSize(r, 4<<10)}
}

// ErrProtocol marks a line the parser does not understand.
var ErrProtocol = errors.New("simagent: leafnode protocol error")

// readLine reads one CRLF- (or LF-) terminated line without its end.
func (r *protoReader) readLine() (string, error) {
	var buf []byte
	for {
		chunk, err := r.br.ReadSlice('\n')
		buf = append(buf, chunk...)
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(buf) > maxControlLine {
				return "", fmt.Errorf("%w: control line longer than %d bytes", ErrProtocol, maxControlLine)
			}
			continue
		}
		return "", err
	}
	buf = bytes.TrimRight(buf, "\r\n")
	return string(buf), nil
}

// next reads the next operation.
func (r *protoReader) next() (frame, error) {
	line, err := r.readLine()
	if err != nil {
		return frame{}, err
	}
	verb, arg, _ := strings.Cut(line, " ")
	op := strings.ToUpper(verb)
	switch op {
	case "LMSG", "HMSG":
		m, n, hdr, err := parseMsgArgs(op == "HMSG", arg)
		if err != nil {
			return frame{}, err
		}
		if n > maxPayload {
			return frame{}, fmt.Errorf("%w: message of %d bytes", ErrProtocol, n)
		}
		body := make([]byte, n+2)
		if _, err := io.ReadFull(r.br, body); err != nil {
			return frame{}, err
		}
		if body[n] != '\r' || body[n+1] != '\n' {
			return frame{}, fmt.Errorf("%w: message payload not followed by CRLF", ErrProtocol)
		}
		body = body[:n]
		if hdr >= 0 {
			m.Header, m.Status, err = parseHeaders(body[:hdr])
			if err != nil {
				return frame{}, err
			}
			body = body[hdr:]
		}
		m.Data = body
		return frame{Op: op, Msg: m}, nil
	case "":
		return frame{}, fmt.Errorf("%w: empty line", ErrProtocol)
	}
	return frame{Op: op, Arg: strings.TrimSpace(arg)}, nil
}

// parseMsgArgs reads the arguments of LMSG (hdr false) or HMSG: the
// message's addressing, its total size and (HMSG) its header size; hdrLen
// is -1 for LMSG.
func parseMsgArgs(hdr bool, arg string) (m Msg, size, hdrLen int, err error) {
	args := strings.Fields(arg)
	sizes := 1
	if hdr {
		sizes = 2
	}
	if len(args) < 1+sizes {
		return m, 0, 0, fmt.Errorf("%w: too few arguments in %q", ErrProtocol, arg)
	}
	m.Subject = args[0]
	mid := args[1 : len(args)-sizes]
	switch {
	case len(mid) == 0:
	case len(mid) == 1 && mid[0] != "+" && mid[0] != "|":
		m.Reply = mid[0]
	case mid[0] == "+" && len(mid) >= 2:
		m.Reply, m.Queues = mid[1], mid[2:]
	case mid[0] == "|":
		m.Queues = mid[1:]
	default:
		return m, 0, 0, fmt.Errorf("%w: bad reply indicator in %q", ErrProtocol, arg)
	}
	size, err = strconv.Atoi(args[len(args)-1])
	if err != nil || size < 0 {
		return m, 0, 0, fmt.Errorf("%w: bad size in %q", ErrProtocol, arg)
	}
	hdrLen = -1
	if hdr {
		hdrLen, err = strconv.Atoi(args[len(args)-2])
		if err != nil || hdrLen < 0 || hdrLen > size {
			return m, 0, 0, fmt.Errorf("%w: bad header size in %q", ErrProtocol, arg)
		}
	}
	return m, size, hdrLen, nil
}

// parseHeaders reads a headers block: "NATS/1.0[ <status>[ <text>]]\r\n",
// then "Key: Value\r\n" lines, then an empty line.
func parseHeaders(b []byte) (Header, string, error) {
	lines := strings.Split(string(b), "\r\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "NATS/1.0") {
		return nil, "", fmt.Errorf("%w: headers without the NATS/1.0 line", ErrProtocol)
	}
	status := ""
	if rest := strings.TrimSpace(strings.TrimPrefix(lines[0], "NATS/1.0")); rest != "" {
		status, _, _ = strings.Cut(rest, " ")
	}
	h := Header{}
	for _, l := range lines[1:] {
		if l == "" {
			continue
		}
		k, v, ok := strings.Cut(l, ":")
		if !ok || k == "" {
			return nil, "", fmt.Errorf("%w: malformed header line %q", ErrProtocol, l)
		}
		h[k] = append(h[k], strings.TrimSpace(v))
	}
	return h, status, nil
}

// appendHeaders encodes h as a headers block; keys are written sorted
// by nothing in particular (order carries no meaning).
func appendHeaders(b []byte, h Header) []byte {
	b = append(b, "NATS/1.0\r\n"...)
	for k, vs := range h {
		for _, v := range vs {
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	return append(b, "\r\n"...)
}

// appendMsg encodes one message from the leaf: LMSG without headers, HMSG
// with them.
func appendMsg(b []byte, subject, reply string, h Header, data []byte) []byte {
	if len(h) == 0 {
		b = append(b, "LMSG "...)
		b = append(b, subject...)
		b = append(b, ' ')
		if reply != "" {
			b = append(b, reply...)
			b = append(b, ' ')
		}
		b = strconv.AppendInt(b, int64(len(data)), 10)
		b = append(b, "\r\n"...)
		b = append(b, data...)
		return append(b, "\r\n"...)
	}
	hb := appendHeaders(nil, h)
	b = append(b, "HMSG "...)
	b = append(b, subject...)
	b = append(b, ' ')
	if reply != "" {
		b = append(b, reply...)
		b = append(b, ' ')
	}
	b = strconv.AppendInt(b, int64(len(hb)), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(hb)+len(data)), 10)
	b = append(b, "\r\n"...)
	b = append(b, hb...)
	b = append(b, data...)
	return append(b, "\r\n"...)
}

// validSubject reports whether s can be sent as a subject or reply: no
// whitespace (which would shift the protocol's arguments) and not empty.
func validSubject(s string) bool {
	return s != "" && !strings.ContainsAny(s, " \t\r\n")
}
