package export

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"

	"github.com/infrapilot/infrapilot/events"
)

var goldenOpts = Options{Version: "1.2.3", Hostname: "cp-1.example.com"}

func encodeAll(t *testing.T, f Format, entries []events.AuditEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	enc, err := NewEncoder(f, &b, goldenOpts)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := enc.Encode(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := enc.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestGolden(t *testing.T) {
	entries := trickyEntries(t)
	for _, f := range Formats {
		t.Run(string(f), func(t *testing.T) {
			out := encodeAll(t, f, entries)
			golden(t, "golden."+f.Ext(), out)
		})
	}
}

func TestCEFEscaping(t *testing.T) {
	line := string(AppendCEF(nil, trickyEntries(t)[2], goldenOpts))
	for _, want := range []string{
		`|weird\|act\\ion next|`,          // header: \ and | escaped, newline → space
		`suid=\=HYPERLINK("http://evil")`, // extension: = escaped
		`cs3=+cmd`,                        // no CSV-style quoting in CEF
		`|8|`,                             // denied → severity 8
		`cs5=api_key`,                     // actor kind
	} {
		if !strings.Contains(line, want) {
			t.Errorf("CEF line lacks %q:\n%s", want, line)
		}
	}
	if strings.Contains(line, "src=") {
		t.Errorf("a non-IP actor ip went into src: %s", line)
	}
	line = string(AppendCEF(nil, trickyEntries(t)[1], goldenOpts))
	for _, want := range []string{
		`suid=a\=b\\c|d]e"f`,
		`requestClientApplication=curl/8.0\r\nX-Injected: yes`,
		`src=2001:db8::1`,
	} {
		if !strings.Contains(line, want) {
			t.Errorf("CEF line lacks %q:\n%s", want, line)
		}
	}
}

func TestSyslogFields(t *testing.T) {
	e := trickyEntries(t)[1]
	line, err := AppendSyslog(nil, e, goldenOpts)
	if err != nil {
		t.Fatal(err)
	}
	s := string(line)
	// facility 13 (log audit) × 8 + severity 4 (warning) = 108.
	if !strings.HasPrefix(s, "<108>1 2026-11-29T10:00:01.000000Z cp-1.example.com infrapilot - auth.login.failed [infrapilot@32473 ") {
		t.Fatalf("header: %s", s)
	}
	for _, want := range []string{
		`actor_id="a=b\\c|d\]e\"f"`,
		`actor_user_agent="curl/8.0\r\nX-Injected: yes"`,
		`resource_id="x=1\]\"\\"`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("syslog line lacks %q:\n%s", want, s)
		}
	}
	// Nanoseconds are cut to the six digits RFC 5424 allows; a long MSGID
	// is cut to 32 characters and non-printable bytes become '_'.
	e = trickyEntries(t)[0]
	e.Action = "auth.mfa.backup_codes_regenerated"
	line, _ = AppendSyslog(nil, e, Options{})
	if !strings.HasPrefix(string(line), "<110>1 2026-11-29T10:00:00.123456Z - infrapilot - auth.mfa.backup_codes_regenerate [") {
		t.Fatalf("header: %s", line)
	}
}

func TestCSVRoundTripAndFormulaGuard(t *testing.T) {
	entries := trickyEntries(t)
	out := encodeAll(t, FormatCSV, entries)
	r := csv.NewReader(bytes.NewReader(out))
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(entries)+1 || strings.Join(recs[0], ",") != strings.Join(CSVHeader, ",") {
		t.Fatalf("records: %q", recs)
	}
	if got := recs[3][4]; got != `'=HYPERLINK("http://evil")` {
		t.Fatalf("formula not neutralised: %q", got)
	}
	// encoding/csv's reader drops the CR of a CRLF inside a quoted field;
	// the file holds it (see the golden file).
	if got := recs[2][6]; got != "curl/8.0\nX-Injected: yes" {
		t.Fatalf("user agent = %q", got)
	}
	// An empty export is just the header.
	if got := string(encodeAll(t, FormatCSV, nil)); got != strings.Join(CSVHeader, ",")+"\n" {
		t.Fatalf("empty export: %q", got)
	}
}

func TestJSONLIsVerifiable(t *testing.T) {
	entries := trickyEntries(t)
	out := encodeAll(t, FormatJSONL, entries)
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(entries) {
		t.Fatalf("%d lines for %d entries", len(lines), len(entries))
	}
	prev := events.GenesisHash
	for i, l := range lines {
		var e events.AuditEntry
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatal(err)
		}
		h, err := e.ComputeHash()
		if err != nil || h != e.Hash || e.PrevHash != prev {
			t.Fatalf("line %d does not verify: %v", i, err)
		}
		prev = e.Hash
	}
}

func TestUnknownFormat(t *testing.T) {
	if _, err := NewEncoder("xml", &bytes.Buffer{}, Options{}); events.ErrorCode(err) != events.CodeInvalid {
		t.Fatalf("err = %v", err)
	}
}
