package simagent

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/infrapilot/infrapilot/events"
)

// What travels back to a simulated agent: JetStream's PubAcks on its
// private inbox, and its own replies to commands.

// PubAck is JetStream's answer to a publish into a stream.
type PubAck struct {
	Stream    string `json:"stream"`
	Seq       uint64 `json:"seq"`
	Domain    string `json:"domain"`
	Duplicate bool   `json:"duplicate"`
	Error     *struct {
		Code        int    `json:"code"`
		ErrCode     int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error"`
}

// JSError is a JetStream error answer (or an answer that is no PubAck).
type JSError struct {
	Code        int
	Description string
}

// Error implements error.
func (e *JSError) Error() string {
	return fmt.Sprintf("jetstream: %d %s", e.Code, e.Description)
}

// Kind implements harness.Kinded.
func (e *JSError) Kind() string { return fmt.Sprintf("js_%d", e.Code) }

// HubDomain is the JetStream domain of the hub; a PubAck from any other
// domain is an error, as in the real agent's forwarder.
const HubDomain = "hub"

// ParsePubAck reads a JetStream PubAck from an answer.
func ParsePubAck(m Msg) (PubAck, error) {
	if m.Status != "" && len(m.Data) == 0 {
		code, _ := strconv.Atoi(m.Status)
		return PubAck{}, &JSError{Code: code, Description: "status " + m.Status + " (no stream answered)"}
	}
	var a PubAck
	if err := json.Unmarshal(m.Data, &a); err != nil {
		return a, &JSError{Code: 0, Description: fmt.Sprintf("answer is no PubAck: %q", clip(m.Data, 80))}
	}
	if a.Error != nil {
		return a, &JSError{Code: a.Error.Code, Description: a.Error.Description}
	}
	if a.Stream == "" {
		return a, &JSError{Code: 0, Description: fmt.Sprintf("answer is no PubAck: %q", clip(m.Data, 80))}
	}
	if a.Domain != HubDomain {
		return a, &JSError{Code: 0, Description: fmt.Sprintf("stored by %s in domain %q, not the hub's", a.Stream, a.Domain)}
	}
	return a, nil
}

// PublishJS publishes into the hub's JetStream as the real agent's
// forwarder does: the message carries its Nats-Msg-Id (the stream
// de-duplicates on it) and a reply subject on the agent's private inbox,
// where the hub's PubAck arrives (the reply is mapped back across the
// account import). cb receives the PubAck or the error.
func (c *Conn) PublishJS(subject, msgID string, data []byte, cb func(PubAck, error)) (cancel func() bool) {
	h := Header{"Nats-Msg-Id": {msgID}}
	return c.RequestAsync(subject, h, data, func(m Msg, err error) {
		if err != nil {
			cb(PubAck{}, err)
			return
		}
		cb(ParsePubAck(m))
	})
}

// Reply answers a command the services' way: a JSON body on success; on
// failure the Nats-Service-Error-Code and Nats-Service-Error headers and
// the *events.Error as the body (see agent/internal/commands).
func (c *Conn) Reply(m Msg, resp any, err error) error {
	if m.Reply == "" {
		return nil
	}
	if err != nil {
		e := events.AsError(err)
		body, _ := json.Marshal(e)
		return c.Publish(m.Reply, "", Header{events.HeaderServiceErrorCode: {string(e.Code)},
			events.HeaderServiceError: {e.Message}}, body)
	}
	var body []byte
	switch v := resp.(type) {
	case []byte:
		body = v
	default:
		b, merr := json.Marshal(resp)
		if merr != nil {
			return c.Reply(m, nil, merr)
		}
		body = b
	}
	return c.Publish(m.Reply, "", nil, body)
}

func clip(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
