package logline

import (
	"strings"
)

// NginxAccess parses an access-log line in nginx's "combined" format:
//
//	$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"
//
// ("common", without referer and user agent, parses too; fields appended
// after the user agent are ignored). The level follows the status: 5xx is
// an error, 4xx a warning, anything else info. Message is the request
// line. Attrs: remote_addr, remote_user, time_local, request, method,
// path, protocol, status, bytes, referer, user_agent.
func NginxAccess(text string) (Parsed, bool) {
	s := scanner{s: strings.TrimRight(text, "\r\n")}
	addr, ok := s.word()
	if !ok || addr == "" {
		return Parsed{}, false
	}
	if _, ok := s.word(); !ok { // ident, always "-"
		return Parsed{}, false
	}
	user, ok := s.word()
	if !ok {
		return Parsed{}, false
	}
	tl, ok := s.bracketed()
	if !ok || !validTimeLocal(tl) {
		return Parsed{}, false
	}
	request, ok := s.quoted()
	if !ok {
		return Parsed{}, false
	}
	status, ok := s.word()
	if !ok || !validStatus(status) {
		return Parsed{}, false
	}
	bytes, ok := s.word()
	if !ok || !digitsOrDash(bytes) {
		return Parsed{}, false
	}
	attrs := map[string]string{
		"remote_addr": addr, "remote_user": user, "time_local": tl, "request": request,
		"status": status, "bytes": bytes,
	}
	if method, rest, ok := strings.Cut(request, " "); ok {
		attrs["method"] = method
		path, proto, _ := strings.Cut(rest, " ")
		attrs["path"] = path
		if proto != "" {
			attrs["protocol"] = proto
		}
	}
	if !s.done() {
		ref, ok := s.quoted()
		if !ok {
			return Parsed{}, false
		}
		attrs["referer"] = ref
		if !s.done() {
			ua, ok := s.quoted()
			if !ok {
				return Parsed{}, false
			}
			attrs["user_agent"] = ua
		}
	}
	lvl := LevelInfo
	switch status[0] {
	case '5':
		lvl = LevelError
	case '4':
		lvl = LevelWarn
	}
	return Parsed{Level: lvl, Message: request, Attrs: attrs}, true
}

// NginxError parses an error-log line:
//
//	2024/01/02 15:04:05 [error] 31#31: *7 open() "/x" failed (2: No such file or directory), client: 10.0.0.1, server: _, request: "GET /x HTTP/1.1", host: "example.com"
//
// Its level is the bracketed nginx level (emerg, alert, crit and error are
// errors; warn a warning; notice and info info; debug debug). Message is
// the text after "pid#tid: " and the connection number, up to the
// trailing key: value context. Attrs: time, nginx_level, pid, tid,
// connection, and whichever of client, server, request, upstream, host,
// referrer the line carries.
func NginxError(text string) (Parsed, bool) {
	t := strings.TrimRight(text, "\r\n")
	if len(t) < 22 || !validErrorTime(t[:19]) || t[19] != ' ' || t[20] != '[' {
		return Parsed{}, false
	}
	end := strings.IndexByte(t[21:], ']')
	if end < 0 {
		return Parsed{}, false
	}
	nlevel := t[21 : 21+end]
	lvl, ok := nginxLevel(nlevel)
	if !ok {
		return Parsed{}, false
	}
	rest := strings.TrimPrefix(t[21+end+1:], " ")
	attrs := map[string]string{"time": t[:19], "nginx_level": nlevel}
	if ids, after, ok := strings.Cut(rest, ": "); ok && strings.Contains(ids, "#") && digitsAndHash(ids) {
		pid, tid, _ := strings.Cut(ids, "#")
		attrs["pid"], attrs["tid"] = pid, tid
		rest = after
	}
	if strings.HasPrefix(rest, "*") {
		if n, after, ok := strings.Cut(rest[1:], " "); ok && digitsOrDash(n) && n != "-" {
			attrs["connection"] = n
			rest = after
		}
	}
	msg := rest
	if i := strings.Index(rest, ", client: "); i >= 0 {
		msg = rest[:i]
		errorContext(rest[i+2:], attrs)
	}
	return Parsed{Level: lvl, Message: msg, Attrs: attrs}, true
}

// errorContext reads the ", key: value" pairs nginx appends to an error.
func errorContext(s string, attrs map[string]string) {
	for s != "" {
		key, rest, ok := strings.Cut(s, ": ")
		if !ok || !contextKey(key) {
			return
		}
		var val string
		if strings.HasPrefix(rest, `"`) {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				attrs[key] = rest[1:]
				return
			}
			val, rest = rest[1:1+end], rest[2+end:]
		} else {
			val, rest, _ = strings.Cut(rest, ", ")
			rest = ", " + rest
			if rest == ", " {
				rest = ""
			}
		}
		attrs[key] = val
		rest, ok = strings.CutPrefix(rest, ", ")
		if !ok {
			return
		}
		s = rest
	}
}

func contextKey(k string) bool {
	switch k {
	case "client", "server", "request", "upstream", "host", "referrer", "subrequest":
		return true
	}
	return false
}

func nginxLevel(s string) (string, bool) {
	switch s {
	case "emerg", "alert", "crit", "error":
		return LevelError, true
	case "warn":
		return LevelWarn, true
	case "notice", "info":
		return LevelInfo, true
	case "debug":
		return LevelDebug, true
	}
	return "", false
}

// scanner reads space-separated fields of an access line.
type scanner struct {
	s string
	i int
}

func (c *scanner) done() bool { return c.i >= len(c.s) }

func (c *scanner) skipSpace() {
	for c.i < len(c.s) && c.s[c.i] == ' ' {
		c.i++
	}
}

func (c *scanner) word() (string, bool) {
	c.skipSpace()
	if c.done() {
		return "", false
	}
	start := c.i
	for c.i < len(c.s) && c.s[c.i] != ' ' {
		c.i++
	}
	return c.s[start:c.i], true
}

func (c *scanner) bracketed() (string, bool) {
	c.skipSpace()
	if c.done() || c.s[c.i] != '[' {
		return "", false
	}
	end := strings.IndexByte(c.s[c.i:], ']')
	if end < 0 {
		return "", false
	}
	v := c.s[c.i+1 : c.i+end]
	c.i += end + 1
	return v, true
}

// quoted reads a "…" field. nginx escapes a quote inside as \x22, but a
// lenient reader also takes the last quote followed by a space or the end.
func (c *scanner) quoted() (string, bool) {
	c.skipSpace()
	if c.done() || c.s[c.i] != '"' {
		return "", false
	}
	for j := c.i + 1; j < len(c.s); j++ {
		if c.s[j] == '"' && (j+1 == len(c.s) || c.s[j+1] == ' ') {
			v := c.s[c.i+1 : j]
			c.i = j + 1
			return v, true
		}
	}
	return "", false
}

// validTimeLocal checks "10/Oct/2000:13:55:36 -0700" loosely (shape only).
func validTimeLocal(s string) bool {
	return len(s) >= 20 && s[2] == '/' && s[6] == '/' && s[11] == ':' && s[14] == ':' && s[17] == ':'
}

// validErrorTime checks "2024/01/02 15:04:05".
func validErrorTime(s string) bool {
	for i := 0; i < len(s); i++ {
		switch i {
		case 4, 7:
			if s[i] != '/' {
				return false
			}
		case 10:
			if s[i] != ' ' {
				return false
			}
		case 13, 16:
			if s[i] != ':' {
				return false
			}
		default:
			if s[i] < '0' || s[i] > '9' {
				return false
			}
		}
	}
	return true
}

func validStatus(s string) bool {
	return len(s) == 3 && s[0] >= '1' && s[0] <= '5' && s[1] >= '0' && s[1] <= '9' && s[2] >= '0' && s[2] <= '9'
}

func digitsOrDash(s string) bool {
	if s == "-" {
		return true
	}
	if s == "" || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func digitsAndHash(s string) bool {
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && s[i] != '#' {
			return false
		}
	}
	return true
}
