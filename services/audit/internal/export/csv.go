package export

import (
	"encoding/csv"
	"io"
	"strconv"

	"github.com/infrapilot/infrapilot/events"
)

// CSVHeader is the header record of a CSV export, in column order.
var CSVHeader = []string{
	"org_id", "index", "time", "actor_kind", "actor_id", "actor_ip", "actor_user_agent",
	"action", "resource_type", "resource_id", "outcome", "event_id", "prev_hash", "hash", "details",
}

// CSV writes RFC 4180 CSV: a header record (CSVHeader), then one record per
// entry. Fields holding a comma, a quote or a line break are quoted by the
// rules of RFC 4180, so a CSV reader gets them back intact (a quoted field
// may span lines; it is still one record).
//
// A cell that starts with =, +, -, @, tab or carriage return is prefixed
// with a single quote, the OWASP defence against formula injection: an
// attacker-chosen user agent or resource name must not run as a formula
// when an auditor opens the export in a spreadsheet. The JSONL export is
// the exact, verifiable one.
type CSV struct {
	w       *csv.Writer
	started bool
	rec     []string
}

// NewCSV returns a CSV encoder writing to w.
func NewCSV(w io.Writer) *CSV {
	return &CSV{w: csv.NewWriter(w), rec: make([]string, len(CSVHeader))}
}

func (c *CSV) start() error {
	if c.started {
		return nil
	}
	c.started = true
	return c.w.Write(CSVHeader)
}

// Encode writes one entry as one record.
func (c *CSV) Encode(e events.AuditEntry) error {
	if err := c.start(); err != nil {
		return err
	}
	r := c.rec
	r[0], r[1], r[2] = e.OrgID, strconv.FormatUint(e.Index, 10), e.Time
	r[3], r[4], r[5], r[6] = string(e.Actor.Kind), e.Actor.ID, e.Actor.IP, e.Actor.UserAgent
	r[7], r[8], r[9], r[10] = e.Action, e.Resource.Type, e.Resource.ID, e.Outcome
	r[11], r[12], r[13], r[14] = e.EventID, e.PrevHash, e.Hash, string(e.Details)
	for i := range r {
		r[i] = csvCell(r[i])
	}
	if err := c.w.Write(r); err != nil {
		return errEncode(FormatCSV, e, err)
	}
	// Flush per record keeps memory constant; the caller buffers the
	// underlying writer (the export runner writes through a bufio.Writer).
	c.w.Flush()
	return c.w.Error()
}

// Flush writes the header of an empty export and flushes the writer.
func (c *CSV) Flush() error {
	if err := c.start(); err != nil {
		return err
	}
	c.w.Flush()
	return c.w.Error()
}

// csvCell neutralises spreadsheet formulas and invalid UTF-8.
func csvCell(s string) string {
	s = validUTF8(s)
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + s
	}
	return s
}
