package readmodel

import (
	"encoding/base64"
	"fmt"

	"github.com/infrapilot/infrapilot/events"
)

// Page is one page of a list: at most Limit rows with an id after After.
// Lists are ordered by id, so a cursor is the last id of the page before.
type Page struct {
	Limit int
	After string
}

// PageOf checks a list's limit and cursor (as a list request carries them)
// and turns them into a page: limit 0 is events.DefaultListLimit, a cursor
// must be one Next returned.
func PageOf(limit int, cursor string) (Page, error) {
	p := Page{Limit: limit}
	switch {
	case p.Limit == 0:
		p.Limit = events.DefaultListLimit
	case p.Limit < 0 || p.Limit > events.MaxListLimit:
		return p, events.Invalid("invalid limit").WithFields(events.FieldError{Field: "limit", Message: fmt.Sprintf("must be 1 to %d", events.MaxListLimit)})
	}
	if cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || !events.ValidToken(string(b)) {
			return p, events.Invalid("invalid cursor").WithFields(events.FieldError{Field: "cursor", Message: "is not a cursor from a previous page"})
		}
		p.After = string(b)
	}
	return p, nil
}

// Next cuts items, fetched with one row more than limit, to the page and
// returns the cursor after it: the last id when the page is full (there is
// more), else "".
func Next[T any](items []T, limit int, id func(T) string) ([]T, string) {
	if len(items) <= limit {
		return items, ""
	}
	items = items[:limit]
	return items, base64.RawURLEncoding.EncodeToString([]byte(id(items[len(items)-1])))
}
