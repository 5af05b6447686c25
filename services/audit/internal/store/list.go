package store

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/infrapilot/infrapilot/events"
)

// Filter narrows a List. Zero fields do not filter.
type Filter struct {
	// Action is an exact event type, or a prefix when it ends in "*".
	Action       string
	ResourceType string
	// Actor is the actor id.
	Actor string
	// From (inclusive) and To (exclusive) bound the entry time.
	From, To time.Time
}

// List returns up to limit of org's entries matching f, newest (highest
// index) first, starting after cursor (empty for the first page). The
// reply's NextCursor is empty on the last page.
func (s *Store) List(ctx context.Context, org string, f Filter, cursor string, limit int) (events.List[events.AuditEntry], error) {
	before, err := DecodeCursor(cursor)
	if err != nil {
		return events.List[events.AuditEntry]{}, err
	}
	if limit <= 0 {
		limit = events.AuditListDefaultLimit
	}
	limit = min(limit, events.AuditListMaxLimit)

	where := []string{"org_id = $1"}
	args := []any{org}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if before > 0 {
		add("entry_index < ?", int64(before))
	}
	if f.Action != "" {
		if prefix, ok := strings.CutSuffix(f.Action, "*"); ok {
			add(`action LIKE ? ESCAPE '\'`, likeEscape(prefix)+"%")
		} else {
			add("action = ?", f.Action)
		}
	}
	if f.ResourceType != "" {
		add("resource_type = ?", f.ResourceType)
	}
	if f.Actor != "" {
		add("actor_id = ?", f.Actor)
	}
	if !f.From.IsZero() {
		add("at >= ?", f.From)
	}
	if !f.To.IsZero() {
		add("at < ?", f.To)
	}
	args = append(args, limit+1)
	q := `SELECT ` + entryColumns + ` FROM entries WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY entry_index DESC LIMIT $` + strconv.Itoa(len(args))

	rows, err := s.db.Query(ctx, q, args...)
	if err != nil {
		return events.List[events.AuditEntry]{}, fmt.Errorf("audit store: list %s: %w", org, err)
	}
	defer rows.Close()
	out := events.List[events.AuditEntry]{Items: make([]events.AuditEntry, 0, limit)}
	for rows.Next() {
		r, err := scanRow(rows)
		if err != nil {
			return events.List[events.AuditEntry]{}, err
		}
		out.Items = append(out.Items, r.AuditEntry)
	}
	if err := rows.Err(); err != nil {
		return events.List[events.AuditEntry]{}, fmt.Errorf("audit store: list %s: %w", org, err)
	}
	if len(out.Items) > limit {
		out.Items = out.Items[:limit]
		out.NextCursor = EncodeCursor(out.Items[limit-1].Index)
	}
	return out, nil
}

// likeEscape escapes LIKE's wildcards so a prefix matches literally.
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// EncodeCursor returns the opaque cursor of a page that ended at key (an
// entry index or a stream sequence).
func EncodeCursor(key uint64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("a:" + strconv.FormatUint(key, 10)))
}

// DecodeCursor returns the key of a cursor, 0 for the empty cursor, or an
// invalid error naming the cursor field.
func DecodeCursor(c string) (uint64, error) {
	if c == "" {
		return 0, nil
	}
	bad := events.Invalid("malformed cursor").WithFields(events.FieldError{Field: "cursor", Message: "not a cursor this API returned"})
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, bad
	}
	num, ok := strings.CutPrefix(string(raw), "a:")
	if !ok {
		return 0, bad
	}
	key, err := strconv.ParseUint(num, 10, 64)
	if err != nil || key == 0 {
		return 0, bad
	}
	return key, nil
}
