package export

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/infrapilot/infrapilot/events"
)

// fuzzEntry builds an entry from fuzzed strings. Details must be JSON to be
// part of a chain at all; other input is dropped from the details.
func fuzzEntry(actorID, ua, ip, action, resID, outcome, details string) events.AuditEntry {
	e := events.AuditEntry{
		OrgID: "org_f", Index: 7, PrevHash: events.GenesisHash, Hash: strings.Repeat("a", 64),
		EventID: "evt", Time: "2026-11-29T10:00:00.123456789Z",
		Actor:  events.Actor{Kind: events.ActorUser, ID: actorID, IP: ip, UserAgent: ua},
		Action: action, Resource: events.AuditResource{Type: "t", ID: resID}, Outcome: outcome,
	}
	if json.Valid([]byte(details)) {
		e.Details = json.RawMessage(details)
	}
	return e
}

func addSeeds(f *testing.F) {
	f.Add("u1", "Mozilla/5.0", "203.0.113.9", "tenancy.member.added", "org_1", "success", `{"a":1}`)
	f.Add(`a=b\c|d]e"f`, "x\r\ny", "::1", "weird|act\\ion\nnext", "x=1]\"\\", "denied", `{"n":"l1\nl2"}`)
	f.Add("=cmd", "\xff\xfe", "", "", "", "", "not json")
	f.Add("\\", "=", "|", "]", "\"", "\n", `"\u2028"`)
}

func oneLine(t *testing.T, line []byte) string {
	t.Helper()
	s := string(line)
	if !strings.HasSuffix(s, "\n") {
		t.Fatalf("record not terminated: %q", s)
	}
	s = strings.TrimSuffix(s, "\n")
	if strings.ContainsAny(s, "\r\n") {
		t.Fatalf("record spans lines: %q", s)
	}
	return s
}

func FuzzCSV(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, actorID, ua, ip, action, resID, outcome, details string) {
		e := fuzzEntry(actorID, ua, ip, action, resID, outcome, details)
		var b bytes.Buffer
		enc := NewCSV(&b)
		if err := enc.Encode(e); err != nil {
			t.Fatal(err)
		}
		if err := enc.Flush(); err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(&b).ReadAll()
		if err != nil {
			t.Fatalf("unparseable CSV: %v", err)
		}
		if len(recs) != 2 || len(recs[1]) != len(CSVHeader) {
			t.Fatalf("records: %q", recs)
		}
		// encoding/csv's reader turns a quoted CRLF into LF.
		norm := func(s string) string { return strings.ReplaceAll(s, "\r\n", "\n") }
		for i, want := range map[int]string{4: actorID, 5: ip, 6: ua, 7: action, 9: resID, 10: outcome, 14: string(e.Details)} {
			if got := recs[1][i]; got != norm(csvCell(want)) {
				t.Fatalf("column %s = %q, want %q", CSVHeader[i], got, csvCell(want))
			}
			if c := recs[1][i]; c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
				t.Fatalf("column %s starts a formula: %q", CSVHeader[i], c)
			}
		}
	})
}

func FuzzJSONL(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, actorID, ua, ip, action, resID, outcome, details string) {
		e := fuzzEntry(actorID, ua, ip, action, resID, outcome, details)
		var b bytes.Buffer
		if err := NewJSONL(&b).Encode(e); err != nil {
			t.Fatal(err)
		}
		line := oneLine(t, b.Bytes())
		var got events.AuditEntry
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("unparseable JSON line: %v", err)
		}
		if got.Actor.ID != jsonUTF8(actorID) || got.Actor.UserAgent != jsonUTF8(ua) ||
			got.Action != jsonUTF8(action) || got.Resource.ID != jsonUTF8(resID) {
			t.Fatalf("round trip changed the entry: %+v", got)
		}
		// Valid UTF-8 entries hash the same after the round trip.
		if h1, err1 := e.ComputeHash(); err1 == nil && validUTF8(actorID+ua+ip+action+resID+outcome+details) == actorID+ua+ip+action+resID+outcome+details {
			if h2, err2 := got.ComputeHash(); err2 != nil || h1 != h2 {
				t.Fatalf("hash changed by the round trip: %v", err2)
			}
		}
	})
}

func FuzzCEF(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, actorID, ua, ip, action, resID, outcome, details string) {
		e := fuzzEntry(actorID, ua, ip, action, resID, outcome, details)
		var b bytes.Buffer
		if err := NewCEF(&b, Options{Version: "1|0"}).Encode(e); err != nil {
			t.Fatal(err)
		}
		header, ext := parseCEF(t, oneLine(t, b.Bytes()))
		hdr := func(s string) string { return strings.NewReplacer("\r", " ", "\n", " ").Replace(validUTF8(s)) }
		want := []string{"CEF:0", "InfraPilot", "InfraPilot", "1|0", hdr(action), hdr(action + " " + outcome), strconv.Itoa(cefSeverity(outcome))}
		for i := range want {
			if header[i] != want[i] {
				t.Fatalf("header field %d = %q, want %q", i, header[i], want[i])
			}
		}
		for k, v := range map[string]string{"suid": actorID, "act": action, "cs3": resID, "outcome": outcome, "cs1": "org_f", "cn1": "7"} {
			if ext[k] != validUTF8(v) {
				t.Fatalf("extension %s = %q, want %q (line %s)", k, ext[k], v, b.String())
			}
		}
		if ua != "" && ext["requestClientApplication"] != validUTF8(ua) {
			t.Fatalf("user agent = %q, want %q", ext["requestClientApplication"], ua)
		}
	})
}

func FuzzSyslog(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, actorID, ua, ip, action, resID, outcome, details string) {
		e := fuzzEntry(actorID, ua, ip, action, resID, outcome, details)
		var b bytes.Buffer
		if err := NewSyslog(&b, Options{Hostname: ua}).Encode(e); err != nil {
			t.Fatal(err)
		}
		m := parseSyslog(t, oneLine(t, b.Bytes()))
		if m.sdID != SDID {
			t.Fatalf("SD-ID = %q", m.sdID)
		}
		for k, v := range map[string]string{"actor_id": actorID, "actor_user_agent": ua, "actor_ip": ip, "action": action, "resource_id": resID, "outcome": outcome, "index": "7"} {
			if m.params[k] != validUTF8(v) {
				t.Fatalf("param %s = %q, want %q", k, m.params[k], v)
			}
		}
		var got events.AuditEntry
		if err := json.Unmarshal([]byte(m.msg), &got); err != nil {
			t.Fatalf("MSG is not the entry's JSON: %v", err)
		}
		if got.Actor.ID != jsonUTF8(actorID) {
			t.Fatalf("MSG actor = %q", got.Actor.ID)
		}
	})
}

// jsonUTF8 is s as encoding/json writes it: each invalid byte becomes
// U+FFFD.
func jsonUTF8(s string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(r)
	}
	return b.String()
}

// parseCEF splits a CEF line into its 7 header fields (unescaped) and its
// extensions (unescaped), by the rules of the CEF specification.
func parseCEF(t *testing.T, line string) ([]string, map[string]string) {
	t.Helper()
	var header []string
	var cur strings.Builder
	i := 0
	for ; i < len(line) && len(header) < 7; i++ {
		switch c := line[i]; {
		case c == '\\' && i+1 < len(line) && (line[i+1] == '\\' || line[i+1] == '|'):
			cur.WriteByte(line[i+1])
			i++
		case c == '|':
			header = append(header, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	if len(header) != 7 {
		t.Fatalf("CEF header has %d fields: %q", len(header), line)
	}
	// Split the extensions at unescaped '=': each piece but the first and
	// the last is "<value of the previous key> <next key>".
	rest := line[i:]
	var pieces []string
	start := 0
	for j := 0; j < len(rest); j++ {
		if rest[j] == '\\' {
			j++
			continue
		}
		if rest[j] == '=' {
			pieces = append(pieces, rest[start:j])
			start = j + 1
		}
	}
	pieces = append(pieces, rest[start:])
	ext := map[string]string{}
	key := pieces[0]
	for j := 1; j < len(pieces); j++ {
		val, next := pieces[j], ""
		if j < len(pieces)-1 {
			sp := strings.LastIndexByte(val, ' ')
			if sp < 0 {
				t.Fatalf("no key before '=' in %q", rest)
			}
			val, next = val[:sp], val[sp+1:]
		}
		ext[key] = unescapeCEF(val)
		key = next
	}
	return header, ext
}

func unescapeCEF(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			default:
				b.WriteByte(s[i])
			}
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

type syslogMsg struct {
	header []string
	sdID   string
	params map[string]string
	msg    string
}

// parseSyslog parses an RFC 5424 message with one SD element.
func parseSyslog(t *testing.T, line string) syslogMsg {
	t.Helper()
	var m syslogMsg
	rest := line
	for range 6 { // PRI+VERSION, TIMESTAMP, HOSTNAME, APP-NAME, PROCID, MSGID
		sp := strings.IndexByte(rest, ' ')
		if sp <= 0 {
			t.Fatalf("short header: %q", line)
		}
		m.header = append(m.header, rest[:sp])
		rest = rest[sp+1:]
	}
	for _, h := range m.header[1:] {
		for _, c := range []byte(h) {
			if c < 33 || c > 126 {
				t.Fatalf("header field %q is not PRINTUSASCII", h)
			}
		}
	}
	if !strings.HasPrefix(rest, "[") {
		t.Fatalf("no structured data: %q", line)
	}
	rest = rest[1:]
	sp := strings.IndexByte(rest, ' ')
	m.sdID, rest = rest[:sp], rest[sp:]
	m.params = map[string]string{}
	for strings.HasPrefix(rest, " ") {
		rest = rest[1:]
		eq := strings.Index(rest, `="`)
		if eq <= 0 {
			t.Fatalf("bad param at %q", rest)
		}
		name := rest[:eq]
		rest = rest[eq+2:]
		var v strings.Builder
		j := 0
		for ; j < len(rest) && rest[j] != '"'; j++ {
			if rest[j] == '\\' && j+1 < len(rest) {
				j++
				switch rest[j] {
				case 'n':
					v.WriteByte('\n')
				case 'r':
					v.WriteByte('\r')
				case '"', '\\', ']':
					v.WriteByte(rest[j])
				default:
					v.WriteByte('\\')
					v.WriteByte(rest[j])
				}
				continue
			}
			if rest[j] == ']' {
				t.Fatalf("unescaped ] in param %s", name)
			}
			v.WriteByte(rest[j])
		}
		if j == len(rest) {
			t.Fatalf("unterminated param %s", name)
		}
		m.params[name] = v.String()
		rest = rest[j+1:]
	}
	if !strings.HasPrefix(rest, "] ") {
		t.Fatalf("SD element not closed: %q", rest)
	}
	m.msg = rest[2:]
	return m
}
