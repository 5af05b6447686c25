package export

import (
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/infrapilot/infrapilot/events"
)

// CEF vendor and product of every line.
const (
	cefVendor  = "InfraPilot"
	cefProduct = "InfraPilot"
)

// NewCEF returns an encoder writing ArcSight CEF lines (one per entry):
//
//	CEF:0|InfraPilot|InfraPilot|<version>|<action>|<action> <outcome>|<severity>|<extensions>
//
// Header fields escape \ and | with a backslash, and a line break in a
// header field becomes a space (the CEF header has no newline escape).
// Extension values escape \ and = with a backslash and write CR and LF as
// \r and \n. The extension keys are CEF's standard dictionary (rt,
// externalId, act, outcome, suid, src, requestClientApplication) and the
// labelled custom fields cs1 (org id), cn1 (chain index), cs2/cs3
// (resource type/id), cs4 (entry hash), cs5 (actor kind), cs6 (details
// JSON).
func NewCEF(w io.Writer, o Options) Encoder {
	o = o.withDefaults()
	return &lineEncoder{w: w, fn: func(dst []byte, e events.AuditEntry) ([]byte, error) {
		return AppendCEF(dst, e, o), nil
	}}
}

// AppendCEF appends the CEF line of e, without a line terminator, to dst.
func AppendCEF(dst []byte, e events.AuditEntry, o Options) []byte {
	o = o.withDefaults()
	dst = append(dst, "CEF:0|"...)
	for _, h := range []string{cefVendor, cefProduct, o.Version, e.Action, e.Action + " " + e.Outcome} {
		dst = appendCEFHeader(dst, h)
		dst = append(dst, '|')
	}
	dst = strconv.AppendInt(dst, int64(cefSeverity(e.Outcome)), 10)
	dst = append(dst, '|')

	n := 0
	ext := func(key, val string) {
		if n > 0 {
			dst = append(dst, ' ')
		}
		n++
		dst = append(dst, key...)
		dst = append(dst, '=')
		dst = appendCEFValue(dst, val)
	}
	if t, ok := entryTime(e); ok {
		ext("rt", strconv.FormatInt(t.UnixMilli(), 10))
	}
	ext("externalId", e.EventID)
	ext("act", e.Action)
	ext("outcome", e.Outcome)
	ext("suid", e.Actor.ID)
	ext("cs5Label", "actorKind")
	ext("cs5", string(e.Actor.Kind))
	// src is typed "IPv4 or IPv6 address": only a real address goes there.
	if ip := net.ParseIP(e.Actor.IP); ip != nil {
		ext("src", ip.String())
	}
	if e.Actor.UserAgent != "" {
		ext("requestClientApplication", e.Actor.UserAgent)
	}
	ext("cs1Label", "orgId")
	ext("cs1", e.OrgID)
	ext("cn1Label", "chainIndex")
	ext("cn1", strconv.FormatUint(e.Index, 10))
	ext("cs2Label", "resourceType")
	ext("cs2", e.Resource.Type)
	ext("cs3Label", "resourceId")
	ext("cs3", e.Resource.ID)
	ext("cs4Label", "entryHash")
	ext("cs4", e.Hash)
	if len(e.Details) > 0 {
		ext("cs6Label", "details")
		ext("cs6", string(e.Details))
	}
	return dst
}

// cefSeverity maps an outcome to CEF's 0–10 scale: success is low (3),
// a failure medium (6), a denial high (8).
func cefSeverity(outcome string) int {
	switch outcome {
	case events.OutcomeSuccess:
		return 3
	case events.OutcomeDenied:
		return 8
	}
	return 6
}

func appendCEFHeader(dst []byte, s string) []byte {
	s = validUTF8(s)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '|':
			dst = append(dst, '\\', c)
		case '\r', '\n':
			dst = append(dst, ' ')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

func appendCEFValue(dst []byte, s string) []byte {
	s = validUTF8(s)
	if !strings.ContainsAny(s, "\\=\r\n") {
		return append(dst, s...)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '=':
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
