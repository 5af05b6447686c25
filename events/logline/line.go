package logline

import (
	"encoding/json"
	"strconv"
	"strings"
)

// Parsed is what InfraPilot derives from one raw line. The raw line itself
// is always kept beside it, unchanged.
type Parsed struct {
	// Level is one of the four levels; LevelInfo when the line carries no
	// marker.
	Level string
	// Message is the message of a structured line (a JSON line's "msg",
	// an nginx request line); empty for a plain line.
	Message string
	// Attrs are the fields of an nginx line; nil otherwise.
	Attrs map[string]string
}

// maxJSON bounds the size of a line decoded as JSON: bigger lines are
// treated as plain text (still stored whole).
const maxJSON = 64 << 10

// Container parses a line of a container's log. A line that is a JSON
// object is a structured line: its level comes from a "level", "lvl",
// "severity", "loglevel" or "log.level" field (or ECS's {"log":{"level"}}),
// its message from "msg", "message" or "log"; Docker's json-file form
// ({"log": "…", "stream": …}) is unwrapped and the inner text examined.
// Any other line is plain text and DetectLevel finds its level.
func Container(text string) Parsed {
	if p, ok := jsonLine(text); ok {
		return p
	}
	lvl, ok := DetectLevel(text)
	if !ok {
		lvl = LevelInfo
	}
	return Parsed{Level: lvl}
}

func jsonLine(text string) (Parsed, bool) {
	t := strings.TrimSpace(text)
	if len(t) < 2 || len(t) > maxJSON || t[0] != '{' || t[len(t)-1] != '}' {
		return Parsed{}, false
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(t), &obj); err != nil {
		return Parsed{}, false
	}
	p := Parsed{}
	var levelSet bool
	for _, k := range []string{"level", "lvl", "severity", "loglevel", "log.level", "levelname", "Level", "LEVEL", "Severity", "severity_text"} {
		if v, ok := obj[k]; ok {
			if lvl, ok := NormalizeLevel(scalar(v)); ok {
				p.Level, levelSet = lvl, true
				break
			}
		}
	}
	if !levelSet {
		if nested, ok := obj["log"].(map[string]any); ok {
			if lvl, ok := NormalizeLevel(scalar(nested["level"])); ok {
				p.Level, levelSet = lvl, true
			}
		}
	}
	for _, k := range []string{"msg", "message", "Message", "MESSAGE", "log"} {
		if s, ok := obj[k].(string); ok {
			p.Message = strings.TrimRight(s, "\r\n")
			break
		}
	}
	if !levelSet {
		// Docker's json-file form, or a JSON line whose level hides in
		// its message text.
		lvl, ok := DetectLevel(p.Message)
		if !ok {
			lvl = LevelInfo
		}
		p.Level = lvl
	}
	return p, true
}

// scalar renders a JSON scalar for level matching.
func scalar(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return ""
}

// Nginx parses a line of an nginx log: stream "stdout" is the access log,
// "stderr" the error log (how the nginx image writes them). A line that
// does not parse as its stream's format is tried as the other, and failing
// both is a plain line.
func Nginx(stream, text string) Parsed {
	first, second := NginxAccess, NginxError
	if stream == "stderr" {
		first, second = NginxError, NginxAccess
	}
	if p, ok := first(text); ok {
		return p
	}
	if p, ok := second(text); ok {
		return p
	}
	return Container(text)
}
