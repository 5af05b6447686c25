package forward

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"github.com/infrapilot/infrapilot/events"
)

// Sender delivers entries to one destination. Send returns how many of
// entries, from the first, the destination has accepted; the rest are
// sent again on the next attempt. A Sender is used by one goroutine.
type Sender interface {
	Send(ctx context.Context, entries []events.AuditEntry) (int, error)
	Close() error
}

// NewSender validates d and returns its sender.
func NewSender(d Destination, cfg Config) (Sender, error) {
	cfg.setDefaults()
	if err := d.Validate(cfg); err != nil {
		return nil, err
	}
	switch d.Kind {
	case KindWebhook:
		return newWebhook(d, cfg)
	case KindSplunkHEC:
		return newHEC(d, cfg)
	default:
		return newSyslog(d, cfg), nil
	}
}

// TestAction is the action of the synthetic entry Test sends.
const TestAction = "audit.forwarding.test"

// TestResult is the outcome of POST /audit/forwarding/test.
type TestResult struct {
	OK         bool   `json:"ok"`
	Error      string `json:"error,omitempty"`
	DurationMS int64  `json:"duration_ms"`
}

// Test sends one synthetic entry to d and reports whether it was
// accepted. The entry is not part of the chain: index 0, no hashes,
// action TestAction, details {"test": true}. An invalid destination is an
// error; an unreachable or refusing one is a result with OK false and what
// went wrong (never the secret).
func Test(ctx context.Context, d Destination, cfg Config) (TestResult, error) {
	cfg.setDefaults()
	s, err := NewSender(d, cfg)
	if err != nil {
		return TestResult{}, err
	}
	defer s.Close()
	id, _ := uuid.NewV7()
	e := events.AuditEntry{
		OrgID: d.OrgID, EventID: id.String(), Time: cfg.Now().UTC().Format(time.RFC3339Nano),
		Actor: events.SystemActor("audit"), Action: TestAction,
		Resource: events.AuditResource{Type: "siem_destination", ID: d.ID},
		Outcome:  events.OutcomeSuccess, Details: json.RawMessage(`{"test":true}`),
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	start := time.Now()
	_, err = s.Send(ctx, []events.AuditEntry{e})
	r := TestResult{OK: err == nil, DurationMS: time.Since(start).Milliseconds()}
	if err != nil {
		r.Error = err.Error()
	}
	return r, nil
}
