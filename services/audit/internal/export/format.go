// Package export renders audit chain entries as CSV, JSONL, CEF and
// RFC 5424 syslog, one entry at a time onto an io.Writer. The export jobs
// that use them are package exports.
//
// Every encoder writes one record per line: values that could break a line
// or a field (newlines, separators, quotes) are escaped by the rules of the
// format, so that a reader of the format gets each value back. Nothing is
// ever buffered beyond the current record, so an export of any size runs in
// constant memory.
package export

import (
	"context"
	"fmt"
	"io"
	"iter"
	"strings"
	"time"

	"github.com/infrapilot/infrapilot/events"
)

// Format names an export format.
type Format string

// The export formats.
const (
	FormatCSV    Format = "csv"
	FormatJSONL  Format = "jsonl"
	FormatCEF    Format = "cef"
	FormatSyslog Format = "syslog"
)

// Formats lists every export format.
var Formats = []Format{FormatCSV, FormatJSONL, FormatCEF, FormatSyslog}

// Valid reports whether f is a known format.
func (f Format) Valid() bool {
	for _, k := range Formats {
		if f == k {
			return true
		}
	}
	return false
}

// Ext is the file extension of the format, without the dot.
func (f Format) Ext() string {
	switch f {
	case FormatCEF:
		return "cef"
	case FormatSyslog:
		return "log"
	}
	return string(f)
}

// ContentType is the media type a download of the format is served with.
func (f Format) ContentType() string {
	switch f {
	case FormatCSV:
		return "text/csv; charset=utf-8"
	case FormatJSONL:
		return "application/jsonl"
	}
	return "text/plain; charset=utf-8"
}

// Source yields an org's audit entries whose time lies in [from, to), in
// chain order (ascending index). It is implemented by the audit service's
// Postgres reader and by the ClickHouse projection; the sequence stops at
// the first error it yields.
type Source interface {
	Entries(ctx context.Context, org string, from, to time.Time) iter.Seq2[events.AuditEntry, error]
}

// Options tune the CEF and syslog renderings. The zero value is usable.
type Options struct {
	// Version is the product version in the CEF header ("dev" when empty).
	Version string
	// Hostname is the syslog HOSTNAME field ("-", the nil value, when
	// empty). Only printable US-ASCII is kept.
	Hostname string
	// AppName is the syslog APP-NAME ("infrapilot" when empty).
	AppName string
	// Facility is the syslog facility (0–23); 0 selects 13, "log audit".
	// Kernel messages (facility 0) are never what an audit entry is.
	Facility int
}

func (o Options) withDefaults() Options {
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.AppName == "" {
		o.AppName = "infrapilot"
	}
	if o.Facility <= 0 || o.Facility > 23 {
		o.Facility = 13
	}
	return o
}

// Encoder writes audit entries in one format. Encode writes one record;
// Flush writes anything the encoder still holds (the CSV header of an
// empty export, buffered bytes) and must be called once at the end.
type Encoder interface {
	Encode(e events.AuditEntry) error
	Flush() error
}

// NewEncoder returns the encoder of format f writing to w.
func NewEncoder(f Format, w io.Writer, o Options) (Encoder, error) {
	switch f {
	case FormatCSV:
		return NewCSV(w), nil
	case FormatJSONL:
		return NewJSONL(w), nil
	case FormatCEF:
		return NewCEF(w, o), nil
	case FormatSyslog:
		return NewSyslog(w, o), nil
	}
	return nil, events.Invalid("unknown export format %q", string(f)).
		WithFields(events.FieldError{Field: "format", Message: "must be one of csv, jsonl, cef, syslog"})
}

// lineEncoder writes records produced by an append function, one per line.
type lineEncoder struct {
	w   io.Writer
	buf []byte
	fn  func(dst []byte, e events.AuditEntry) ([]byte, error)
}

func (l *lineEncoder) Encode(e events.AuditEntry) error {
	var err error
	l.buf, err = l.fn(l.buf[:0], e)
	if err != nil {
		return err
	}
	l.buf = append(l.buf, '\n')
	_, err = l.w.Write(l.buf)
	return err
}

func (l *lineEncoder) Flush() error { return nil }

// entryTime parses an entry's RFC 3339 time.
func entryTime(e events.AuditEntry) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, e.Time)
	if err != nil {
		return time.Time{}, false
	}
	return t.UTC(), true
}

// validUTF8 replaces invalid UTF-8 sequences so every encoder emits text.
func validUTF8(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

// errEncode wraps an encoding failure of one entry.
func errEncode(format Format, e events.AuditEntry, err error) error {
	return fmt.Errorf("export: %s: entry %d: %w", format, e.Index, err)
}
