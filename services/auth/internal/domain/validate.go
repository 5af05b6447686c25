// Package domain holds the auth service's rules and aggregates: input
// validation, and the state of users, sessions and API keys rebuilt from
// their events. It does no I/O.
package domain

import (
	"crypto/sha256"
	"encoding/hex"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/infrapilot/infrapilot/events"
)

// Input limits.
const (
	MaxEmailLen    = 254
	MaxNameLen     = 200
	MinPasswordLen = 10
	MaxPasswordLen = 256
	MaxKeyNameLen  = 100
)

// NormalizeEmail trims and lower-cases an e-mail address and checks that it
// is a plain addr-spec (local@domain, no display name, no comments, no
// control characters or spaces, a dotted domain), at most MaxEmailLen
// bytes. The error is a field error on field.
func NormalizeEmail(field, s string) (string, *events.FieldError) {
	e := strings.ToLower(strings.TrimSpace(s))
	bad := func(msg string) (string, *events.FieldError) {
		return "", &events.FieldError{Field: field, Message: msg}
	}
	switch {
	case e == "":
		return bad("is required")
	case len(e) > MaxEmailLen:
		return bad("must be at most 254 characters")
	case !utf8.ValidString(e):
		return bad("must be valid UTF-8")
	}
	for _, r := range e {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == '<' || r == '>' || r == '(' || r == ')' || r == ',' || r == ';' || r == '"' || r == '\\' {
			return bad("must be a plain e-mail address")
		}
	}
	at := strings.LastIndexByte(e, '@')
	if at <= 0 || at == len(e)-1 || strings.Count(e, "@") != 1 {
		return bad("must be an e-mail address like name@example.com")
	}
	local, domain := e[:at], e[at+1:]
	if len(local) > 64 {
		return bad("has a local part longer than 64 characters")
	}
	if !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") ||
		strings.Contains(domain, "..") || strings.HasPrefix(domain, "-") {
		return bad("must have a domain like example.com")
	}
	a, err := mail.ParseAddress(e)
	if err != nil || a.Address != e || a.Name != "" {
		return bad("must be an e-mail address like name@example.com")
	}
	return e, nil
}

// EmailKey is the aggregate id derived from a normalised address: hex
// SHA-256, a valid subject token that reveals nothing readable.
func EmailKey(normalized string) string {
	sum := sha256.Sum256([]byte(normalized))
	return hex.EncodeToString(sum[:])
}

// CleanName trims a display name and checks it: required, at most max
// characters, no control characters.
func CleanName(field, s string, max int) (string, *events.FieldError) {
	n := strings.TrimSpace(s)
	switch {
	case n == "":
		return "", &events.FieldError{Field: field, Message: "is required"}
	case !utf8.ValidString(n):
		return "", &events.FieldError{Field: field, Message: "must be valid UTF-8"}
	case utf8.RuneCountInString(n) > max:
		return "", &events.FieldError{Field: field, Message: "is too long"}
	}
	for _, r := range n {
		if unicode.IsControl(r) || r == unicode.ReplacementChar || isBidiControl(r) {
			return "", &events.FieldError{Field: field, Message: "must not contain control characters"}
		}
	}
	return n, nil
}

// CheckPassword checks a new password's length (in characters):
// MinPasswordLen to MaxPasswordLen. Nothing else is imposed (NIST SP
// 800-63B: length over composition rules).
func CheckPassword(field, p string) *events.FieldError {
	n := utf8.RuneCountInString(p)
	switch {
	case n < MinPasswordLen:
		return &events.FieldError{Field: field, Message: "must be at least 10 characters"}
	case n > MaxPasswordLen:
		return &events.FieldError{Field: field, Message: "must be at most 256 characters"}
	case !utf8.ValidString(p):
		return &events.FieldError{Field: field, Message: "must be valid UTF-8"}
	}
	return nil
}

// Fields collects field errors and turns them into one invalid error.
type Fields []events.FieldError

// Add records fe when it is not nil.
func (f *Fields) Add(fe *events.FieldError) {
	if fe != nil {
		*f = append(*f, *fe)
	}
}

// Err is nil without field errors, else an invalid error listing them.
func (f Fields) Err() error {
	if len(f) == 0 {
		return nil
	}
	return events.Invalid("invalid input").WithFields(f...)
}

// isBidiControl reports the bidirectional embedding, override and isolate
// characters, which can make a name display as something else.
func isBidiControl(r rune) bool {
	return (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069)
}
