// Package logline derives what InfraPilot knows about a raw log line: its
// level, the message of a structured line, and the fields of an nginx
// access or error line.
//
// It is part of the contract (module events) rather than of one service
// because the same line must get the same level wherever it is looked at:
// in the log store (the log-ingest service), in the live tail (the
// gateway, which filters agents' batches itself), and in any third-party
// reader of stream LOGS. Every function is pure, total (never panics, on
// any input) and cheap: they run on every line InfraPilot ingests.
package logline

import "strings"

// scanPrefix bounds how far into a plain line level markers are looked
// for: a level marker is at the start of a line by convention, and a
// marker deep in a long line is more likely part of the message.
const scanPrefix = 256

// Levels in the order the API names them.
const (
	LevelError = "error"
	LevelWarn  = "warn"
	LevelInfo  = "info"
	LevelDebug = "debug"
)

// ValidLevel reports whether s is one of the four levels.
func ValidLevel(s string) bool {
	switch s {
	case LevelError, LevelWarn, LevelInfo, LevelDebug:
		return true
	}
	return false
}

// NormalizeLevel maps a level name as loggers write it ("ERR", "warning",
// "Notice", "fatal", "trace", pino's numeric "50"…) to one of the four
// levels; ok is false for anything else.
func NormalizeLevel(s string) (level string, ok bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	switch s {
	case "error", "err", "eror", "fatal", "panic", "crit", "critical", "alert", "emerg", "emergency", "severe", "e", "f":
		return LevelError, true
	case "warn", "warning", "wrn", "w":
		return LevelWarn, true
	case "info", "information", "informational", "notice", "inf", "i", "n":
		return LevelInfo, true
	case "debug", "dbg", "trace", "trc", "verbose", "d", "t":
		return LevelDebug, true
	// pino and bunyan write numbers.
	case "10", "20":
		return LevelDebug, true
	case "30":
		return LevelInfo, true
	case "40":
		return LevelWarn, true
	case "50", "60":
		return LevelError, true
	}
	return "", false
}

// markers are the words that mark a level in plain text. Single letters
// are not here: they are only markers in the klog form ("E0102 …").
var markers = map[string]string{
	"error": LevelError, "err": LevelError, "fatal": LevelError, "panic": LevelError,
	"crit": LevelError, "critical": LevelError, "alert": LevelError, "emerg": LevelError,
	"emergency": LevelError, "severe": LevelError,
	"warn": LevelWarn, "warning": LevelWarn,
	"info": LevelInfo, "notice": LevelInfo,
	"debug": LevelDebug, "trace": LevelDebug,
}

// DetectLevel finds the level marker of a plain-text line, looking only at
// its first bytes. It recognises, the earliest in the line winning:
//   - key=value and JSON-ish pairs: level=error, lvl=warn, "level":"info";
//   - an upper-case word: ERROR, WARN, WARNING, INFO, DEBUG, FATAL, CRIT…;
//   - a word of any case in brackets or angle brackets: [error], <warn>;
//   - a word of any case opening the line and followed by a colon:
//     "error: …", "Warning: …";
//   - klog's prefix: "E0102 15:04:05.000000 …";
//   - a Go panic ("panic: …") or a Python traceback at the line's start.
//
// A lower-case word in running text ("no error occurred") is not a
// marker. ok is false when the line has none.
func DetectLevel(text string) (level string, ok bool) {
	if len(text) > scanPrefix {
		text = text[:scanPrefix]
	}
	trimmed := strings.TrimLeft(text, " \t")
	if lvl, ok := klog(trimmed); ok {
		return lvl, true
	}
	if strings.HasPrefix(trimmed, "Traceback (most recent call last)") || strings.HasPrefix(trimmed, "panic: ") {
		return LevelError, true
	}
	start := len(text) - len(trimmed)
	for i := 0; i < len(text); {
		if !isWordByte(text[i]) {
			i++
			continue
		}
		j := i
		for j < len(text) && isWordByte(text[j]) {
			j++
		}
		if lvl, ok := markerAt(text, i, j, i == start); ok {
			return lvl, true
		}
		i = j
	}
	return "", false
}

// markerAt decides whether the word text[i:j] marks a level.
func markerAt(text string, i, j int, first bool) (string, bool) {
	word := text[i:j]
	lower := strings.ToLower(word)
	// level=error, lvl=warn, severity: "error", "level":"info"
	if lower == "level" || lower == "lvl" || lower == "severity" || lower == "loglevel" {
		if v, ok := valueAfter(text, j); ok {
			return NormalizeLevel(v)
		}
		return "", false
	}
	lvl, known := markers[lower]
	if !known {
		return "", false
	}
	switch {
	case word == strings.ToUpper(word):
		return lvl, true
	case i > 0 && j < len(text) && (text[i-1] == '[' && text[j] == ']' || text[i-1] == '<' && text[j] == '>'):
		return lvl, true
	case first && j < len(text) && text[j] == ':':
		return lvl, true
	}
	return "", false
}

// valueAfter reads the value of key=value, key: value, "key":"value" or
// key="value" starting right after the key at position j.
func valueAfter(text string, j int) (string, bool) {
	k := j
	if k < len(text) && text[k] == '"' {
		k++
	}
	if k >= len(text) || (text[k] != '=' && text[k] != ':') {
		return "", false
	}
	k++
	for k < len(text) && (text[k] == ' ' || text[k] == '"' || text[k] == '\'') {
		k++
	}
	e := k
	for e < len(text) && isWordByte(text[e]) {
		e++
	}
	if e == k {
		return "", false
	}
	return text[k:e], true
}

// klog recognises "Lmmdd hh:mm:ss" (glog/klog) prefixes.
func klog(s string) (string, bool) {
	if len(s) < 15 || s[5] != ' ' || s[8] != ':' || s[11] != ':' {
		return "", false
	}
	for _, i := range []int{1, 2, 3, 4, 6, 7, 9, 10, 12, 13} {
		if s[i] < '0' || s[i] > '9' {
			return "", false
		}
	}
	switch s[0] {
	case 'E', 'F':
		return LevelError, true
	case 'W':
		return LevelWarn, true
	case 'I':
		return LevelInfo, true
	}
	return "", false
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}
