package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/infrapilot/infrapilot/events"
)

// JSON answers r with v encoded as JSON and the given status. v is encoded
// before anything is written, so an unencodable value (a NaN, a channel)
// still becomes a proper 500 problem rather than a truncated body.
func JSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	if status == http.StatusNoContent || status == http.StatusNotModified {
		w.WriteHeader(status)
		return
	}
	data, err := json.Marshal(v)
	if err != nil {
		Error(w, r, fmt.Errorf("httpapi: encode %T response: %w", v, err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(data, '\n'))
}

// Decode reads r's body as exactly one JSON value into v. It rejects, as
// invalid errors with a message a client can act on: a non-JSON
// Content-Type, an empty body, malformed JSON, fields v does not have
// (listed in the error's Fields), values of the wrong type, and trailing
// data. A body over the gateway's limit yields an error that ProblemFor
// answers with 413.
//
// A missing Content-Type is accepted so that simple clients work; a wrong
// one is not, so that a form post can never be taken for an API call.
func Decode(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return events.Invalid("Content-Type must be application/json, not %q", ct)
		}
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return decodeError(err)
		}
		return events.Invalid("request body must hold a single JSON value")
	}
	return nil
}

func decodeError(err error) error {
	var (
		tooLarge  *http.MaxBytesError
		syntax    *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
		invalidUm *json.InvalidUnmarshalError
	)
	switch {
	case errors.As(err, &tooLarge):
		return &events.Error{Code: events.CodeInvalid, Err: err,
			Message: "request body exceeds " + strconv.FormatInt(tooLarge.Limit, 10) + " bytes"}
	case errors.Is(err, io.EOF):
		return events.Invalid("request body is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return events.Invalid("malformed JSON: unexpected end of input")
	case errors.As(err, &syntax):
		return events.Invalid("malformed JSON at byte %d: %s", syntax.Offset, strings.TrimPrefix(syntax.Error(), "json: "))
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return events.Invalid("request body must be %s", jsonKind(typeErr.Type))
		}
		return events.Invalid("invalid value for field %q", typeErr.Field).WithFields(events.FieldError{
			Field: typeErr.Field, Message: "must be " + jsonKind(typeErr.Type),
		})
	case errors.As(err, &invalidUm):
		// A handler passed a non-pointer: a bug, not the client's fault.
		return fmt.Errorf("httpapi: decode: %w", err)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		return events.Invalid("unknown field %q", name).WithFields(events.FieldError{Field: name, Message: "unknown field"})
	}
	return events.Invalid("malformed JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// jsonKind names a Go type the way an API client thinks of it.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	default:
		return "a valid value"
	}
}
