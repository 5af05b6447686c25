package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway/internal/reqctx"
)

// ProblemContentType is the media type of RFC 9457 problem documents.
const ProblemContentType = "application/problem+json"

// problemTypePrefix starts every problem "type" URI. The URIs identify the
// kind of problem; they are not meant to be dereferenced.
const problemTypePrefix = "urn:infrapilot:problem:"

// ErrMethodNotAllowed is answered with 405 when a route exists but not for
// the request's method.
var ErrMethodNotAllowed = errors.New("method not allowed")

// Problem is an RFC 9457 problem document. Code and RequestID are extension
// members: clients branch on Code (or Type) and quote RequestID to support.
type Problem struct {
	Type      string              `json:"type"`
	Title     string              `json:"title"`
	Status    int                 `json:"status"`
	Detail    string              `json:"detail,omitempty"`
	Instance  string              `json:"instance,omitempty"`
	RequestID string              `json:"request_id,omitempty"`
	Code      events.Code         `json:"code"`
	Errors    []events.FieldError `json:"errors,omitempty"`
}

// ProblemFor is the one place that maps an error to an HTTP answer.
//
//	invalid      400 (also for field errors: one code, one status; clients
//	                  read the field list in "errors")
//	unauthorized 401   forbidden 403   not_found 404   conflict 409
//	rate_limited 429   unavailable 503   internal 500
//
// Three refinements keep clients and proxies well informed: an invalid
// error caused by http.MaxBytesError is 413, an unavailable error caused by
// context.DeadlineExceeded (the service did not answer before the request's
// deadline) is 504, and ErrMethodNotAllowed is 405. Any error that is not an
// *events.Error, and any unknown code, is internal; an internal error's
// detail is always generic so that no internal text reaches a caller.
func ProblemFor(r *http.Request, err error) Problem {
	e := events.AsError(err)
	p := Problem{
		Code:      e.Code,
		Detail:    e.Message,
		Errors:    e.Fields,
		Instance:  r.URL.Path,
		RequestID: reqctx.RequestID(r.Context()),
	}
	slug := string(e.Code)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.Is(err, ErrMethodNotAllowed):
		p.Status, p.Code, slug, p.Detail = http.StatusMethodNotAllowed, events.CodeInvalid, "method_not_allowed",
			fmt.Sprintf("method %s is not allowed on %s", r.Method, r.URL.Path)
	case e.Code == events.CodeInvalid && errors.As(err, &tooLarge):
		p.Status, slug = http.StatusRequestEntityTooLarge, "body_too_large"
	case e.Code == events.CodeUnavailable && errors.Is(err, context.DeadlineExceeded):
		p.Status, slug = http.StatusGatewayTimeout, "timeout"
	default:
		p.Status = statusOf(e.Code)
	}
	if p.Status == http.StatusInternalServerError {
		p.Code, slug, p.Detail, p.Errors = events.CodeInternal, string(events.CodeInternal), "internal error", nil
	}
	p.Type = problemTypePrefix + slug
	p.Title = http.StatusText(p.Status)
	return p
}

func statusOf(code events.Code) int {
	switch code {
	case events.CodeInvalid:
		return http.StatusBadRequest
	case events.CodeUnauthorized:
		return http.StatusUnauthorized
	case events.CodeForbidden:
		return http.StatusForbidden
	case events.CodeNotFound:
		return http.StatusNotFound
	case events.CodeConflict:
		return http.StatusConflict
	case events.CodeRateLimited:
		return http.StatusTooManyRequests
	case events.CodeUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// Error answers r with the problem document for err. The cause of a 5xx
// answer is recorded for the access log line of the request (which carries
// the request id); outside the gateway's middleware it is logged with
// slog.Default instead.
//
// A rate_limited *events.Error with RetryAfter > 0 also sets the
// Retry-After header (in seconds, RFC 9110 section 10.2.3), so clients and
// proxies back off without reading the body.
func Error(w http.ResponseWriter, r *http.Request, err error) {
	p := ProblemFor(r, err)
	var e *events.Error
	if errors.As(err, &e) && e.Code == events.CodeRateLimited && e.RetryAfter > 0 && p.Status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	if p.Status >= http.StatusInternalServerError {
		if o := outcomeFrom(r.Context()); o != nil {
			o.setErr(err)
		} else {
			slog.Default().ErrorContext(r.Context(), "request failed",
				"request_id", p.RequestID, "status", p.Status, "err", err)
		}
	}
	WriteProblem(w, p)
}

// WriteProblem writes p as the answer, with p.Status.
func WriteProblem(w http.ResponseWriter, p Problem) {
	writeProblemBody(w, p.Status, p)
}

// WriteProblemWith writes body, a struct that embeds a Problem and adds
// extension members (as /readyz adds its checks), with the given status.
func WriteProblemWith(w http.ResponseWriter, status int, body any) {
	writeProblemBody(w, status, body)
}

func writeProblemBody(w http.ResponseWriter, status int, body any) {
	data, err := json.Marshal(body)
	if err != nil {
		// Only a programming error gets here (an unencodable extension).
		status = http.StatusInternalServerError
		data = []byte(`{"type":"` + problemTypePrefix + `internal","title":"Internal Server Error","status":500,"detail":"internal error","code":"internal"}`)
	}
	h := w.Header()
	h.Set("Content-Type", ProblemContentType)
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	w.WriteHeader(status)
	_, _ = w.Write(append(data, '\n'))
}
