package export

import (
	"bytes"
	"encoding/json"
	"io"
	"strconv"

	"github.com/infrapilot/infrapilot/events"
)

// SDID is the structured-data id of the element that carries an entry's
// fields. 32473 is the private enterprise number RFC 5612 reserves for
// documentation; a registered number replaces it before the format is
// promised to customers' SIEM parsers.
const SDID = "infrapilot@32473"

// NewSyslog returns an encoder writing RFC 5424 messages, one per line
// (the file form; the syslog forwarder frames the same messages with
// RFC 5425 octet counting instead):
//
//	<PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID [infrapilot@32473 org_id="…" …] MSG
//
// PRI is facility×8 + severity (informational for a success, warning
// otherwise); TIMESTAMP is the entry's time in UTC with microseconds (the
// most RFC 5424 allows); MSGID is the action (truncated to 32 characters);
// the structured data repeats the entry's fields with ", \ and ] escaped by
// a backslash and CR/LF written as \r and \n; MSG is the complete entry as
// JSON (which escapes every control character), so a SIEM that parses JSON
// needs nothing else.
func NewSyslog(w io.Writer, o Options) Encoder {
	o = o.withDefaults()
	return &lineEncoder{w: w, fn: func(dst []byte, e events.AuditEntry) ([]byte, error) {
		out, err := AppendSyslog(dst, e, o)
		if err != nil {
			return nil, errEncode(FormatSyslog, e, err)
		}
		return out, nil
	}}
}

// AppendSyslog appends the RFC 5424 message of e, without framing or line
// terminator, to dst. It fails only when the entry's details are not JSON.
func AppendSyslog(dst []byte, e events.AuditEntry, o Options) ([]byte, error) {
	o = o.withDefaults()
	msg, err := entryJSON(e)
	if err != nil {
		return nil, err
	}
	dst = append(dst, '<')
	dst = strconv.AppendInt(dst, int64(o.Facility*8+syslogSeverity(e.Outcome)), 10)
	dst = append(dst, ">1 "...)
	if t, ok := entryTime(e); ok {
		dst = t.AppendFormat(dst, "2006-01-02T15:04:05.000000Z07:00")
	} else {
		dst = append(dst, '-')
	}
	dst = append(dst, ' ')
	dst = appendHeaderField(dst, o.Hostname, 255)
	dst = append(dst, ' ')
	dst = appendHeaderField(dst, o.AppName, 48)
	dst = append(dst, " - "...) // PROCID
	dst = appendHeaderField(dst, e.Action, 32)
	dst = append(dst, " ["...)
	dst = append(dst, SDID...)
	for _, p := range [...]struct{ k, v string }{
		{"org_id", e.OrgID},
		{"index", strconv.FormatUint(e.Index, 10)},
		{"event_id", e.EventID},
		{"action", e.Action},
		{"outcome", e.Outcome},
		{"actor_kind", string(e.Actor.Kind)},
		{"actor_id", e.Actor.ID},
		{"actor_ip", e.Actor.IP},
		{"actor_user_agent", e.Actor.UserAgent},
		{"resource_type", e.Resource.Type},
		{"resource_id", e.Resource.ID},
		{"hash", e.Hash},
	} {
		dst = append(dst, ' ')
		dst = append(dst, p.k...)
		dst = append(dst, '=', '"')
		dst = appendSDValue(dst, p.v)
		dst = append(dst, '"')
	}
	dst = append(dst, "] "...)
	return append(dst, msg...), nil
}

// syslogSeverity maps an outcome to an RFC 5424 severity: 6
// (informational) for a success, 4 (warning) for a failure or denial.
func syslogSeverity(outcome string) int {
	if outcome == events.OutcomeSuccess {
		return 6
	}
	return 4
}

// appendHeaderField writes a header field: printable US-ASCII only (other
// bytes become '_'), at most max bytes, "-" (the nil value) when empty.
func appendHeaderField(dst []byte, s string, max int) []byte {
	if s == "" {
		return append(dst, '-')
	}
	if len(s) > max {
		s = s[:max]
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 33 || c > 126 {
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst
}

// appendSDValue escapes a PARAM-VALUE: RFC 5424 section 6.3.3 requires ",
// \ and ] to be escaped with a backslash; CR and LF are written as \r and
// \n so that a message stays on one line.
func appendSDValue(dst []byte, s string) []byte {
	s = validUTF8(s)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\', ']':
			dst = append(dst, '\\', c)
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\n':
			dst = append(dst, '\\', 'n')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// entryJSON is the entry as one line of JSON, HTML characters unescaped.
func entryJSON(e events.AuditEntry) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'}), nil
}

// EntryJSON returns the entry as one line of JSON without a terminator:
// the body the webhook and Splunk HEC forwarders send.
func EntryJSON(e events.AuditEntry) ([]byte, error) { return entryJSON(e) }
