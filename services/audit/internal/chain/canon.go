package chain

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"

	"github.com/gowebpki/jcs"
	"github.com/infrapilot/infrapilot/events"
)

// prepared is an entry's canonical JSON (RFC 8785, as
// events.AuditEntry.Canonical produces it) with two holes, the index and
// the prev_hash: everything a writer can compute before it knows where in
// the chain the entry goes. Preparing is the expensive part of sealing an
// entry (canonicalising the event's data) and runs in the intake
// goroutines, in parallel; filling the holes and hashing is all the
// writer's one loop does per entry.
//
// JCS sorts members by key, so the holes sit at fixed places:
//
//	{"action":…,"actor":{…},"details":…,"event_id":…,"index":N,
//	 "org_id":…,"outcome":…,"prev_hash":"P","resource":{…},"time":…}
//
// TestPreparedIsCanonical and FuzzPreparedIsCanonical hold this to
// events.AuditEntry.Canonical byte for byte.
type prepared struct {
	head []byte // from "{" to the comma after event_id's value
	mid  []byte // from the comma after index to prev_hash's opening quote
	tail []byte // from prev_hash's closing quote to "}"
	// details is e.Details as hashed: the data, or its base64 wrapper
	// when the data cannot be put in canonical form.
	details json.RawMessage
}

// prepare computes e's canonical form around the holes. e.Index,
// e.PrevHash and e.Hash are ignored.
func prepare(e events.AuditEntry) (prepared, error) {
	p := prepared{details: e.Details}
	var canonDetails []byte
	if len(e.Details) > 0 {
		c, err := jcs.Transform(e.Details)
		if err == nil && !utf8.Valid(c) {
			// Postgres (and most readers) refuse invalid UTF-8.
			err = errors.New("invalid UTF-8")
		}
		if err != nil {
			raw, _ := json.Marshal(map[string]string{
				"data_base64": base64.StdEncoding.EncodeToString(e.Details),
				"note":        "the event's data is not canonicalisable JSON",
			})
			if c, err = jcs.Transform(raw); err != nil {
				return prepared{}, err
			}
			p.details = raw
		}
		canonDetails = c
	}
	b := make([]byte, 0, 256+len(canonDetails))
	b = append(b, `{"action":`...)
	b = appendString(b, e.Action)
	b = append(b, `,"actor":{"id":`...)
	b = appendString(b, e.Actor.ID)
	if e.Actor.IP != "" {
		b = append(b, `,"ip":`...)
		b = appendString(b, e.Actor.IP)
	}
	b = append(b, `,"kind":`...)
	b = appendString(b, string(e.Actor.Kind))
	if e.Actor.UserAgent != "" {
		b = append(b, `,"user_agent":`...)
		b = appendString(b, e.Actor.UserAgent)
	}
	b = append(b, '}')
	if canonDetails != nil {
		b = append(b, `,"details":`...)
		b = append(b, canonDetails...)
	}
	b = append(b, `,"event_id":`...)
	b = appendString(b, e.EventID)
	b = append(b, ',')
	p.head = b

	m := append([]byte(nil), `,"org_id":`...)
	m = appendString(m, e.OrgID)
	m = append(m, `,"outcome":`...)
	m = appendString(m, e.Outcome)
	m = append(m, `,"prev_hash":"`...)
	p.mid = m

	t := append([]byte(nil), `","resource":{"id":`...)
	t = appendString(t, e.Resource.ID)
	t = append(t, `,"type":`...)
	t = appendString(t, e.Resource.Type)
	t = append(t, `},"time":`...)
	t = appendString(t, e.Time)
	t = append(t, '}')
	p.tail = t
	return p, nil
}

// canonical fills the holes: the bytes hashed.
func (p prepared) canonical(index uint64, prevHash string) []byte {
	b := make([]byte, 0, len(p.head)+len(p.mid)+len(p.tail)+96)
	b = append(b, p.head...)
	b = append(b, `"index":`...)
	b = strconv.AppendUint(b, index, 10)
	b = append(b, p.mid...)
	b = append(b, prevHash...)
	return append(b, p.tail...)
}

// seal returns the entry's hash and its wire form: the canonical JSON with
// the hash added (before "index", where JCS would sort it).
func (p prepared) seal(index uint64, prevHash string) (hash string, wire []byte, err error) {
	prev, err := hex.DecodeString(prevHash)
	if err != nil || len(prev) != sha256.Size {
		return "", nil, errors.New("audit chain: prev_hash is not 32 hex-encoded bytes")
	}
	h := sha256.New()
	h.Write(prev)
	h.Write(p.canonical(index, prevHash))
	hash = hex.EncodeToString(h.Sum(nil))
	w := make([]byte, 0, len(p.head)+len(p.mid)+len(p.tail)+180)
	w = append(w, p.head...)
	w = append(w, `"hash":"`...)
	w = append(w, hash...)
	w = append(w, `","index":`...)
	w = strconv.AppendUint(w, index, 10)
	w = append(w, p.mid...)
	w = append(w, prevHash...)
	w = append(w, p.tail...)
	return hash, w, nil
}

// appendString appends s as a JCS string: valid UTF-8 (each invalid byte
// becomes U+FFFD, as encoding/json does), '"' and '\' escaped, the control
// characters \b \f \n \r \t in short form and the others as \u00xx, and
// everything else as is.
func appendString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				if c < 0x20 {
					b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
				} else {
					b = append(b, c)
				}
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = utf8.AppendRune(b, utf8.RuneError)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
