package report

import (
	"encoding/csv"
	"encoding/json"
	"io"
	"strconv"
	"time"
)

// WriteJSON writes the report as one JSON document.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteCSV writes the report as CSV. Every record's first field names the
// part of the report it belongs to:
//
//	report,kind,org_id,from,to,generated_at,entries,first_index,last_index
//	report,<values>
//	sections,id,title,total,truncated
//	sections,<one record per section>
//	section,<the section's columns>      (one block per section …)
//	<section id>,<a row>
//
// so that a spreadsheet filter on the first column isolates any table.
// Cells that would start a spreadsheet formula are prefixed with a quote.
func (r *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	write := func(rec ...string) {
		for i := range rec {
			rec[i] = cell(rec[i])
		}
		_ = cw.Write(rec)
	}
	write("report", "kind", "org_id", "from", "to", "generated_at", "entries", "first_index", "last_index")
	write("report", string(r.Kind), r.OrgID, r.From.Format(time.RFC3339Nano), r.To.Format(time.RFC3339Nano),
		r.GeneratedAt.Format(time.RFC3339Nano), u(r.Entries), u(r.FirstIndex), u(r.LastIndex))
	write("sections", "id", "title", "total", "truncated")
	for _, s := range r.Sections {
		write("sections", s.ID, s.Title, u(s.Total), strconv.FormatBool(s.Truncated))
	}
	for _, s := range r.Sections {
		write(append([]string{"section"}, s.Columns...)...)
		for _, row := range s.Rows {
			write(append([]string{s.ID}, row...)...)
		}
	}
	cw.Flush()
	return cw.Error()
}

// cell neutralises spreadsheet formulas (OWASP CSV injection).
func cell(s string) string {
	if s != "" {
		switch s[0] {
		case '=', '+', '-', '@', '\t', '\r':
			return "'" + s
		}
	}
	return s
}

// numeric are the columns whose values are counts or indexes: JSON writes
// them as numbers.
var numeric = map[string]bool{"count": true, "index": true, "entries": true, "logins": true, "failed_logins": true, "changes_in_period": true}

// MarshalJSON writes the rows as objects keyed by column, in column order,
// with counts as numbers.
func (s Section) MarshalJSON() ([]byte, error) {
	type plain Section // without this method
	rows := make([]json.RawMessage, len(s.Rows))
	for i, row := range s.Rows {
		var b []byte
		b = append(b, '{')
		for j, c := range s.Columns {
			if j > 0 {
				b = append(b, ',')
			}
			k, _ := json.Marshal(c)
			b = append(b, k...)
			b = append(b, ':')
			v := ""
			if j < len(row) {
				v = row[j]
			}
			if _, err := strconv.ParseUint(v, 10, 64); err == nil && numeric[c] {
				b = append(b, v...)
				continue
			}
			q, err := json.Marshal(v)
			if err != nil {
				return nil, err
			}
			b = append(b, q...)
		}
		rows[i] = append(b, '}')
	}
	return json.Marshal(struct {
		plain
		Rows []json.RawMessage `json:"rows"`
	}{plain(s), rows})
}
