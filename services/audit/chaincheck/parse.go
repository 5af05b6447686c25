package chaincheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/infrapilot/infrapilot/events"
)

// MaxLineBytes bounds one line of a JSONL export. An entry's details are
// an event's data, which the bus limits far below this.
const MaxLineBytes = 8 << 20

// ParseLine decodes one line of a JSONL export into an entry, strictly:
// exactly one JSON object, no unknown fields, no field twice in any object
// (a duplicated key could show one value to a reader and hash another),
// and the fields every entry has are present and well-formed. A trailing
// carriage return is tolerated.
func ParseLine(line []byte) (events.AuditEntry, error) {
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) > MaxLineBytes {
		return events.AuditEntry{}, fmt.Errorf("line longer than %d bytes", MaxLineBytes)
	}
	if err := noDuplicateKeys(line); err != nil {
		return events.AuditEntry{}, err
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var e events.AuditEntry
	if err := dec.Decode(&e); err != nil {
		return events.AuditEntry{}, fmt.Errorf("malformed entry: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return events.AuditEntry{}, errors.New("malformed entry: data after the JSON object")
	}
	return e, validate(e)
}

// validate checks the fields every chain entry has.
func validate(e events.AuditEntry) error {
	switch {
	case !events.ValidToken(e.OrgID):
		return fmt.Errorf("org_id %q is not a valid org id", e.OrgID)
	case e.Index == 0:
		return errors.New("index must be 1 or more")
	case !isHash(e.PrevHash):
		return errors.New("prev_hash is not 64 lowercase hex digits")
	case !isHash(e.Hash):
		return errors.New("hash is not 64 lowercase hex digits")
	case e.EventID == "":
		return errors.New("event_id is empty")
	case e.Time == "":
		return errors.New("time is empty")
	case e.Action == "":
		return errors.New("action is empty")
	case e.Outcome == "":
		return errors.New("outcome is empty")
	}
	return nil
}

func isHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// maxDepth bounds the nesting noDuplicateKeys follows; deeper documents
// are refused rather than walked.
const maxDepth = 256

// noDuplicateKeys reports an error when any object in doc has a key twice.
func noDuplicateKeys(doc []byte) error {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	if err := walk(dec, 0); err != nil {
		return err
	}
	return nil
}

func walk(dec *json.Decoder, depth int) error {
	if depth > maxDepth {
		return errors.New("malformed entry: nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("malformed entry: %w", err)
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch d {
	case '{':
		seen := map[string]bool{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return fmt.Errorf("malformed entry: %w", err)
			}
			key, _ := k.(string)
			if seen[key] {
				return fmt.Errorf("malformed entry: key %q appears twice in one object", key)
			}
			seen[key] = true
			if err := walk(dec, depth+1); err != nil {
				return err
			}
		}
	case '[':
		for dec.More() {
			if err := walk(dec, depth+1); err != nil {
				return err
			}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing delimiter
		return fmt.Errorf("malformed entry: %w", err)
	}
	return nil
}
