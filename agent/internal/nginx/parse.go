package nginx

import (
	"strconv"
	"strings"
)

// Problem is one error nginx reported: its line exactly as nginx printed
// it ("nginx: [emerg] host not found in upstream "x" in /r/gen/4/hosts/h.conf:3"),
// its level and, when nginx named one, the file and line at fault. It is
// what a failed host is reported with, so that the user reads nginx's own
// words.
type Problem struct {
	Line   string
	Level  string
	File   string
	LineNo int
}

// failLevels are the levels of messages that fail `nginx -t`, a start or
// a reload; warnings (a conflicting server name) do not.
var failLevels = []string{"emerg", "alert", "crit", "error"}

// ParseProblems extracts the error lines of nginx's output (stderr of
// `nginx -t`, or lines of its error log). The output is nginx's, but it
// quotes the rendered files, which quote user input: it is parsed
// defensively (fuzzed).
func ParseProblems(out string) []Problem {
	var ps []Problem
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		lvl := lineLevel(line)
		if lvl == "" {
			continue
		}
		p := Problem{Line: line, Level: lvl}
		if i := strings.LastIndex(line, " in "); i >= 0 {
			loc := line[i+len(" in "):]
			if j := strings.LastIndexByte(loc, ':'); j > 0 && strings.HasPrefix(loc, "/") {
				if n, err := strconv.Atoi(loc[j+1:]); err == nil && n > 0 {
					p.File, p.LineNo = loc[:j], n
				}
			}
		}
		ps = append(ps, p)
	}
	return ps
}

func lineLevel(line string) string {
	for _, l := range failLevels {
		if strings.Contains(line, "["+l+"] ") {
			return l
		}
	}
	return ""
}

// maxMessage bounds an error message taken from nginx's output.
const maxMessage = 4096

// Message is nginx's reason in out: its error lines, or all of its output
// when it has none, cut to 4 KiB.
func Message(out string) string {
	var lines []string
	for _, p := range ParseProblems(out) {
		lines = append(lines, p.Line)
	}
	msg := strings.Join(lines, "\n")
	if msg == "" {
		msg = strings.TrimSpace(out)
	}
	if len(msg) > maxMessage {
		msg = strings.ToValidUTF8(msg[:maxMessage], "") + "…"
	}
	return msg
}
