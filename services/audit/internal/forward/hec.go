package forward

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/audit/internal/export"
)

// HECPath is the Splunk HTTP Event Collector endpoint for JSON events.
const HECPath = "/services/collector/event"

// hec sends a batch to Splunk HEC in one request: one JSON event object
// per entry, concatenated (HEC's batch form), with the entry as "event".
type hec struct {
	d   Destination
	cfg Config
	c   *http.Client
	url string
}

func newHEC(d Destination, cfg Config) (*hec, error) {
	c, err := newHTTPClient(d, cfg)
	if err != nil {
		return nil, err
	}
	return &hec{d: d, cfg: cfg, c: c, url: strings.TrimSuffix(d.URL, "/") + HECPath}, nil
}

// hecEvent is one event of the HEC JSON protocol.
type hecEvent struct {
	Time       float64         `json:"time,omitempty"`
	Host       string          `json:"host,omitempty"`
	Source     string          `json:"source"`
	SourceType string          `json:"sourcetype"`
	Index      string          `json:"index,omitempty"`
	Event      json.RawMessage `json:"event"`
}

func (h *hec) Send(ctx context.Context, entries []events.AuditEntry) (int, error) {
	var body []byte
	for _, e := range entries {
		raw, err := export.EntryJSON(e)
		if err != nil {
			return 0, err
		}
		ev := hecEvent{Host: h.d.Hostname, Source: "infrapilot:" + e.OrgID, SourceType: "infrapilot:audit", Index: h.d.Index, Event: raw}
		if t, err := time.Parse(time.RFC3339Nano, e.Time); err == nil {
			ev.Time = float64(t.UnixMicro()) / 1e6
		}
		b, err := json.Marshal(ev)
		if err != nil {
			return 0, err
		}
		body = append(append(body, b...), '\n')
	}
	hdr := http.Header{}
	hdr.Set("Content-Type", "application/json")
	hdr.Set("User-Agent", "InfraPilot-Audit/"+h.cfg.Version)
	hdr.Set("Authorization", "Splunk "+h.d.Secret)
	status, msg, err := post(ctx, h.c, h.url, body, hdr)
	if err != nil {
		return 0, deliveryError(h.d, "%v", err)
	}
	// HEC answers {"text":"Success","code":0}; any other code is a refusal
	// (bad token 4, disabled token 1, incorrect index 7, …).
	var ack struct {
		Text string `json:"text"`
		Code *int   `json:"code"`
	}
	_ = json.Unmarshal(msg, &ack)
	if status != http.StatusOK || ack.Code == nil || *ack.Code != 0 {
		return 0, deliveryError(h.d, "HTTP %d %s", status, printable(msg))
	}
	return len(entries), nil
}

func (h *hec) Close() error { h.c.CloseIdleConnections(); return nil }

// printable shortens a response body for a status message.
func printable(b []byte) string {
	s := strings.ToValidUTF8(string(b), "?")
	s = strings.Map(func(r rune) rune {
		if r < 32 || r == 127 {
			return ' '
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strings.TrimSpace(s)
}
