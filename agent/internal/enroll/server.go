package enroll

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/infrapilot/infrapilot/events"
)

// EnrollPath is the control plane's enrollment endpoint under its base URL.
const EnrollPath = "/api/v1/agents/enroll"

// maxReply bounds what is read of an answer: an enrollment is a few KiB.
const maxReply = 1 << 20

// ServerURL checks the control plane's URL and returns its base (no
// trailing slash, no /api/v1). It must be https: the request carries the
// token and the answer the agent's credentials. Plain http is accepted
// for a server on this machine (loopback) and, with insecureHTTP, for any.
func ServerURL(raw string, insecureHTTP bool) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", errors.New("enroll: no server URL (--server https://infrapilot.example.com)")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", fmt.Errorf("enroll: the server URL %q must look like https://infrapilot.example.com", raw)
	}
	if u.User != nil {
		// Not echoed: the user information may be a password.
		return "", errors.New("enroll: the server URL must not contain a user name or password")
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", fmt.Errorf("enroll: the server URL %q must not have a query or fragment", raw)
	}
	if u.Scheme == "http" && !insecureHTTP && !loopback(u.Hostname()) {
		return "", fmt.Errorf("enroll: %s is plain http: the token and the agent's credentials would cross the network unencrypted; use https (or --insecure-http on a network you trust)", raw)
	}
	p := strings.TrimRight(u.Path, "/")
	p = strings.TrimRight(strings.TrimSuffix(p, "/api/v1"), "/")
	u.Path, u.RawPath = p, ""
	return u.String(), nil
}

func loopback(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Error is the control plane's refusal of an enrollment, from its RFC 9457
// problem document.
type Error struct {
	// Status is the HTTP status.
	Status int
	Code   events.Code
	// Detail says what went wrong ("the enrollment token has expired").
	Detail string
	Fields []events.FieldError
}

// Error is one line: the detail, the field errors, the status.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("enroll: ")
	b.WriteString(e.Detail)
	for i, f := range e.Fields {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(f.Field + " " + f.Message)
	}
	fmt.Fprintf(&b, " (%d %s)", e.Status, http.StatusText(e.Status))
	return b.String()
}

// problem is an RFC 9457 document as the gateway writes it (title,
// detail, code, errors), or an events.Error body (code, message, fields)
// from anything that answers with one.
type problem struct {
	Title   string              `json:"title"`
	Detail  string              `json:"detail"`
	Code    events.Code         `json:"code"`
	Errors  []events.FieldError `json:"errors"`
	Message string              `json:"message"`
	Fields  []events.FieldError `json:"fields"`
}

// newHTTPClient is the default client: 30 s per attempt, and redirects
// are not followed but reported (a POST would turn into a GET, or be
// re-sent with the token to wherever the redirect points).
func newHTTPClient() *http.Client {
	return &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// post sends the enrollment, retrying while the connection is refused
// (the control plane restarting, a load balancer without a backend yet).
// Only refusals are retried: the request never reached a server, so a
// retry cannot spend a second use of the token. Any other failure might
// have enrolled the machine and is reported as is.
func post(ctx context.Context, cfg Config, endpoint string, req events.EnrollAgentRequest) (events.AgentEnrollment, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return events.AgentEnrollment{}, fmt.Errorf("enroll: %w", err)
	}
	wait := cfg.Backoff
	for attempt := 1; ; attempt++ {
		got, err := postOnce(ctx, cfg, endpoint, body)
		if err == nil || !errors.Is(err, syscall.ECONNREFUSED) || attempt >= cfg.Attempts {
			return got, err
		}
		fmt.Fprintf(cfg.Progress, "enroll: %s refused the connection; retrying in %s (attempt %d of %d)\n",
			endpoint, wait, attempt+1, cfg.Attempts)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return events.AgentEnrollment{}, fmt.Errorf("enroll: %w", ctx.Err())
		case <-t.C:
		}
		wait *= 2
	}
}

func postOnce(ctx context.Context, cfg Config, endpoint string, body []byte) (events.AgentEnrollment, error) {
	var out events.AgentEnrollment
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return out, fmt.Errorf("enroll: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json, application/problem+json")
	hreq.Header.Set("User-Agent", "infrapilot-agent/"+cfg.Version)
	resp, err := cfg.Client.Do(hreq)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // its text repeats the method and URL
		}
		var nerr net.Error
		if errors.As(err, &nerr) && nerr.Timeout() {
			return out, fmt.Errorf("enroll: no answer from %s in time: %w", endpoint, err)
		}
		return out, fmt.Errorf("enroll: cannot reach %s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		return out, fmt.Errorf("enroll: reading the answer of %s: %w", endpoint, err)
	}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		if err := json.Unmarshal(data, &out); err != nil {
			return out, fmt.Errorf("enroll: %s answered %d with something that is not an enrollment (is --server an InfraPilot control plane?): %w",
				endpoint, resp.StatusCode, err)
		}
		return out, nil
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		loc, err := resp.Location()
		if err != nil {
			return out, fmt.Errorf("enroll: %s redirects (%d) without saying where", endpoint, resp.StatusCode)
		}
		return out, fmt.Errorf("enroll: %s redirects to %s: pass the server's own URL as --server", endpoint, loc.Redacted())
	}
	if p, ok := parseProblem(resp, data); ok {
		return out, p
	}
	return out, fmt.Errorf("enroll: %s answered %d %s (is --server an InfraPilot control plane?)",
		endpoint, resp.StatusCode, http.StatusText(resp.StatusCode))
}

// parseProblem reads a JSON error answer; ok is false when the answer is
// not one (a proxy's HTML page).
func parseProblem(resp *http.Response, data []byte) (*Error, bool) {
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "application/problem+json" && mt != "application/json" {
		return nil, false
	}
	var p problem
	if json.Unmarshal(data, &p) != nil {
		return nil, false
	}
	e := &Error{Status: resp.StatusCode, Code: p.Code, Detail: p.Detail, Fields: p.Errors}
	if e.Detail == "" {
		e.Detail = p.Message
	}
	if e.Fields == nil {
		e.Fields = p.Fields
	}
	if e.Detail == "" {
		e.Detail = p.Title
	}
	if e.Detail == "" {
		return nil, false
	}
	return e, true
}
