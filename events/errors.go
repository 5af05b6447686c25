package events

import (
	"errors"
	"fmt"
)

// Code classifies an error the same way everywhere: services return it over
// NATS, the gateway maps it to an HTTP status in one function.
type Code string

// The error codes of InfraPilot. Only CodeInternal is logged with context;
// the others are the caller's business.
const (
	CodeInvalid      Code = "invalid"
	CodeUnauthorized Code = "unauthorized"
	CodeForbidden    Code = "forbidden"
	CodeNotFound     Code = "not_found"
	CodeConflict     Code = "conflict"
	CodeRateLimited  Code = "rate_limited"
	CodeUnavailable  Code = "unavailable"
	CodeInternal     Code = "internal"
)

// FieldError names one invalid input field.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is the one error type that crosses service boundaries. It is the
// JSON body of a failed request-reply and of a problem+json response.
type Error struct {
	Code    Code         `json:"code"`
	Message string       `json:"message"`
	Fields  []FieldError `json:"fields,omitempty"`
	// RetryAfter, in seconds, tells a rate-limited caller when to try
	// again; the gateway sends it as the Retry-After header.
	RetryAfter int `json:"retry_after,omitempty"`
	// Err is the wrapped cause; it never leaves the process.
	Err error `json:"-"`
}

// Error implements error.
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an *Error with a formatted message. A %w verb wraps a cause.
func Errorf(code Code, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Code: code, Message: err.Error(), Err: errors.Unwrap(err)}
}

// Invalid is Errorf(CodeInvalid, …).
func Invalid(format string, args ...any) *Error { return Errorf(CodeInvalid, format, args...) }

// NotFound is Errorf(CodeNotFound, …).
func NotFound(format string, args ...any) *Error { return Errorf(CodeNotFound, format, args...) }

// WithFields adds field errors to an invalid-input error.
func (e *Error) WithFields(fields ...FieldError) *Error {
	e.Fields = append(e.Fields, fields...)
	return e
}

// ErrorCode returns the code of the first *Error in err's chain, or
// CodeInternal for any other non-nil error.
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// AsError returns err as an *Error, wrapping unknown errors as internal with
// a generic message so that no internal detail leaks to a caller.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternal, Message: "internal error", Err: err}
}
