package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway/internal/httpapi"
	"github.com/infrapilot/infrapilot/gateway/internal/reqctx"
)

func TestProblemFor(t *testing.T) {
	t.Parallel()
	deadline := &events.Error{Code: events.CodeUnavailable, Message: "service auth did not answer in time", Err: context.DeadlineExceeded}
	tooLarge := &events.Error{Code: events.CodeInvalid, Message: "request body exceeds 10 bytes", Err: &http.MaxBytesError{Limit: 10}}
	cases := []struct {
		name       string
		err        error
		status     int
		code       events.Code
		typ        string
		detail     string
		withFields bool
	}{
		{"invalid", events.Invalid("bad name").WithFields(events.FieldError{Field: "name", Message: "too long"}), 400, events.CodeInvalid, "invalid", "bad name", true},
		{"unauthorized", events.Errorf(events.CodeUnauthorized, "token expired"), 401, events.CodeUnauthorized, "unauthorized", "token expired", false},
		{"forbidden", events.Errorf(events.CodeForbidden, "viewers cannot"), 403, events.CodeForbidden, "forbidden", "viewers cannot", false},
		{"not_found", events.NotFound("agent a1"), 404, events.CodeNotFound, "not_found", "agent a1", false},
		{"conflict", events.Errorf(events.CodeConflict, "exists"), 409, events.CodeConflict, "conflict", "exists", false},
		{"rate_limited", events.Errorf(events.CodeRateLimited, "slow down"), 429, events.CodeRateLimited, "rate_limited", "slow down", false},
		{"unavailable", events.Errorf(events.CodeUnavailable, "service auth is not running"), 503, events.CodeUnavailable, "unavailable", "service auth is not running", false},
		{"internal", events.Errorf(events.CodeInternal, "pq: secret table detail"), 500, events.CodeInternal, "internal", "internal error", false},
		{"wrapped", fmt.Errorf("proxy: %w", events.NotFound("host h1")), 404, events.CodeNotFound, "not_found", "host h1", false},
		{"plain error", errors.New("dial tcp 10.1.2.3:5432: refused"), 500, events.CodeInternal, "internal", "internal error", false},
		{"unknown code", &events.Error{Code: "teapot", Message: "x"}, 500, events.CodeInternal, "internal", "internal error", false},
		{"deadline", deadline, 504, events.CodeUnavailable, "timeout", deadline.Message, false},
		{"too large", tooLarge, 413, events.CodeInvalid, "body_too_large", tooLarge.Message, false},
		{"method", httpapi.ErrMethodNotAllowed, 405, events.CodeInvalid, "method_not_allowed", "method GET is not allowed on /x", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/x", nil)
			r = r.WithContext(reqctx.WithRequestInfo(r.Context(), reqctx.RequestInfo{RequestID: "rid"}))
			p := httpapi.ProblemFor(r, c.err)
			if p.Status != c.status || p.Code != c.code || p.Type != "urn:infrapilot:problem:"+c.typ || p.Detail != c.detail {
				t.Fatalf("got %+v", p)
			}
			if p.Title != http.StatusText(c.status) || p.Instance != "/x" || p.RequestID != "rid" {
				t.Fatalf("got %+v", p)
			}
			if (len(p.Errors) > 0) != c.withFields {
				t.Fatalf("errors = %+v", p.Errors)
			}
		})
	}
}

func TestErrorWritesProblemAndRecordsCause(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest(http.MethodGet, "/x", nil)
	ctx, outcome := httpapi.WithOutcome(r.Context())
	r = r.WithContext(ctx)
	w := httptest.NewRecorder()
	cause := errors.New("boom")
	httpapi.Error(w, r, cause)
	if w.Code != 500 || w.Header().Get("Content-Type") != httpapi.ProblemContentType {
		t.Fatalf("status %d, content type %q", w.Code, w.Header().Get("Content-Type"))
	}
	if strings.Contains(w.Body.String(), "boom") {
		t.Fatalf("internal detail leaked: %s", w.Body)
	}
	if !errors.Is(outcome.Err(), cause) {
		t.Fatalf("outcome err = %v", outcome.Err())
	}
}

// TestErrorRetryAfter: a rate_limited error with RetryAfter sets the
// Retry-After header; other errors, and one without RetryAfter, do not.
func TestErrorRetryAfter(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"rate limited", &events.Error{Code: events.CodeRateLimited, Message: "slow down", RetryAfter: 7}, "7"},
		{"wrapped", fmt.Errorf("login: %w", &events.Error{Code: events.CodeRateLimited, Message: "slow down", RetryAfter: 30}), "30"},
		{"no retry after", events.Errorf(events.CodeRateLimited, "slow down"), ""},
		{"not rate limited", &events.Error{Code: events.CodeUnavailable, Message: "down", RetryAfter: 5}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			httpapi.Error(w, httptest.NewRequest(http.MethodGet, "/x", nil), c.err)
			if got := w.Header().Get("Retry-After"); got != c.want {
				t.Fatalf("Retry-After %q, want %q", got, c.want)
			}
		})
	}
}

type input struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
	Tags  []string
}

func TestDecode(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, body, contentType string
		wantErr                 string // substring of the message; "" for success
		field                   string
	}{
		{"ok", `{"name":"a","count":2}`, "application/json", "", ""},
		{"ok no content type", `{"name":"a"}`, "", "", ""},
		{"ok +json", `{"name":"a"}`, "application/merge-patch+json", "", ""},
		{"ok trailing space", "{\"name\":\"a\"}\n  ", "application/json; charset=utf-8", "", ""},
		{"empty", ``, "application/json", "request body is empty", ""},
		{"malformed", `{"name":`, "application/json", "malformed JSON", ""},
		{"syntax", `{"name" "a"}`, "application/json", "malformed JSON at byte", ""},
		{"unknown field", `{"name":"a","admin":true}`, "application/json", `unknown field "admin"`, "admin"},
		{"wrong type", `{"count":"two"}`, "application/json", `invalid value for field "count"`, "count"},
		{"not an object", `[1,2]`, "application/json", "request body must be an object", ""},
		{"trailing value", `{"name":"a"}{"name":"b"}`, "application/json", "single JSON value", ""},
		{"form", `name=a`, "application/x-www-form-urlencoded", "Content-Type must be application/json", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/x", strings.NewReader(c.body))
			if c.contentType != "" {
				r.Header.Set("Content-Type", c.contentType)
			}
			var v input
			err := httpapi.Decode(r, &v)
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected %v", err)
				}
				return
			}
			var e *events.Error
			if !errors.As(err, &e) || e.Code != events.CodeInvalid || !strings.Contains(e.Message, c.wantErr) {
				t.Fatalf("got %v, want invalid containing %q", err, c.wantErr)
			}
			if c.field != "" && (len(e.Fields) != 1 || e.Fields[0].Field != c.field) {
				t.Fatalf("fields = %+v, want %s", e.Fields, c.field)
			}
		})
	}
}

func TestDecodeTooLarge(t *testing.T) {
	t.Parallel()
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "/x", strings.NewReader(`{"name":"`+strings.Repeat("a", 100)+`"}`))
	r.Body = http.MaxBytesReader(w, r.Body, 32)
	var v input
	err := httpapi.Decode(r, &v)
	if p := httpapi.ProblemFor(r, err); p.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("got %v → %d", err, p.Status)
	}
}

func TestJSON(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest(http.MethodGet, "/x", nil)
	w := httptest.NewRecorder()
	httpapi.JSON(w, r, http.StatusCreated, map[string]string{"id": "a1"})
	if w.Code != 201 || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, content type %q", w.Code, w.Header().Get("Content-Type"))
	}
	var got map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || got["id"] != "a1" {
		t.Fatalf("body %s: %v", w.Body, err)
	}

	w = httptest.NewRecorder()
	httpapi.JSON(w, r, http.StatusOK, map[string]float64{"x": math.NaN()})
	if w.Code != 500 || w.Header().Get("Content-Type") != httpapi.ProblemContentType {
		t.Fatalf("unencodable value: status %d, %s", w.Code, w.Body)
	}
}

// FuzzDecode: any body yields either a value or an invalid error, never a
// panic or an internal error.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{`{"name":"a"}`, ``, `{`, `[]`, `{"x":1}`, `{"count":1e400}`, `{"name":"a"} x`, "\xff"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest(http.MethodPost, "/x", strings.NewReader(body))
		var v input
		if err := httpapi.Decode(r, &v); err != nil && events.ErrorCode(err) != events.CodeInvalid {
			t.Fatalf("body %q: %v", body, err)
		}
	})
}
