package forward

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/audit/internal/export"
)

// Webhook headers.
const (
	// HeaderSignature is hex(HMAC-SHA256(secret, "<timestamp>.<body>")).
	HeaderSignature = "X-InfraPilot-Signature"
	// HeaderTimestamp is the Unix time (seconds) the request was signed at.
	HeaderTimestamp = "X-InfraPilot-Timestamp"
	// HeaderDelivery is "<org_id>:<index>", the entry's identity: the same
	// value on a redelivery, so a receiver can dedupe.
	HeaderDelivery = "X-InfraPilot-Delivery"
)

// DefaultTolerance is how far a webhook's timestamp may be from the
// receiver's clock before Verify refuses it as a replay.
const DefaultTolerance = 5 * time.Minute

// Sign returns the signature of body at timestamp ts (Unix seconds).
// The timestamp is inside the MAC, so a captured request cannot be
// replayed later with a fresh timestamp.
func Sign(secret []byte, ts int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Errors of Verify.
var (
	ErrNoSignature      = errors.New("webhook: missing signature or timestamp header")
	ErrBadSignature     = errors.New("webhook: signature does not match")
	ErrStaleTimestamp   = errors.New("webhook: timestamp outside the tolerance (replay?)")
	ErrMalformedHeaders = errors.New("webhook: malformed signature or timestamp header")
)

// Verify checks a received webhook: the signature must be the HMAC of
// "<timestamp>.<body>" under secret (compared in constant time), and the
// timestamp within tolerance of now (DefaultTolerance when 0). A receiver
// that also remembers the deliveries (HeaderDelivery) it has seen within
// the tolerance window refuses every replay.
func Verify(secret []byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	sig, tsHeader := h.Get(HeaderSignature), h.Get(HeaderTimestamp)
	if sig == "" || tsHeader == "" {
		return ErrNoSignature
	}
	ts, err := strconv.ParseInt(tsHeader, 10, 64)
	if err != nil {
		return ErrMalformedHeaders
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return ErrMalformedHeaders
	}
	want, _ := hex.DecodeString(Sign(secret, ts, body))
	if !hmac.Equal(got, want) {
		return ErrBadSignature
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return ErrStaleTimestamp
	}
	return nil
}

// webhook POSTs each entry as JSON, one request per entry.
type webhook struct {
	d   Destination
	cfg Config
	c   *http.Client
}

func newWebhook(d Destination, cfg Config) (*webhook, error) {
	c, err := newHTTPClient(d, cfg)
	if err != nil {
		return nil, err
	}
	return &webhook{d: d, cfg: cfg, c: c}, nil
}

func (w *webhook) Send(ctx context.Context, entries []events.AuditEntry) (int, error) {
	for i, e := range entries {
		body, err := export.EntryJSON(e)
		if err != nil {
			return i, err
		}
		ts := w.cfg.Now().Unix()
		h := http.Header{}
		h.Set("Content-Type", "application/json")
		h.Set("User-Agent", "InfraPilot-Audit/"+w.cfg.Version)
		h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
		h.Set(HeaderSignature, Sign([]byte(w.d.Secret), ts, body))
		h.Set(HeaderDelivery, e.OrgID+":"+strconv.FormatUint(e.Index, 10))
		status, msg, err := post(ctx, w.c, w.d.URL, body, h)
		if err != nil {
			return i, deliveryError(w.d, "%v", err)
		}
		if status < 200 || status > 299 {
			return i, deliveryError(w.d, "HTTP %d %s", status, printable(msg))
		}
	}
	return len(entries), nil
}

func (w *webhook) Close() error { w.c.CloseIdleConnections(); return nil }
