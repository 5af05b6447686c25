package service

import (
	"context"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/reqctx"
)

// nullTime maps the zero time to SQL NULL.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// unauthorized is the one answer to bad credentials: it never says which
// part was wrong.
func unauthorized(msg string) error { return events.Errorf(events.CodeUnauthorized, "%s", msg) }

// fieldInvalid is an invalid-input error on one field.
func fieldInvalid(field, msg string) error {
	return events.Invalid("%s %s", field, msg).WithFields(events.FieldError{Field: field, Message: msg})
}

// callerUser returns the id of the calling user, or unauthorized when the
// request does not come from a user (an API key, an anonymous caller).
func callerUser(ctx context.Context) (string, error) {
	a := reqctx.From(ctx).Actor
	if a.Kind != events.ActorUser || !events.ValidToken(a.ID) {
		return "", unauthorized("this operation needs a signed-in user")
	}
	return a.ID, nil
}
