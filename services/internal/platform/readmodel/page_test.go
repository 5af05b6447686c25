package readmodel_test

import (
	"encoding/base64"
	"fmt"
	"slices"
	"testing"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/readmodel"
)

func TestPageOf(t *testing.T) {
	cursor := base64.RawURLEncoding.EncodeToString([]byte("row-7"))
	for _, tc := range []struct {
		name          string
		limit         int
		cursor        string
		want          readmodel.Page
		invalidFields string
	}{
		{name: "defaults", want: readmodel.Page{Limit: events.DefaultListLimit}},
		{name: "limit and cursor", limit: 5, cursor: cursor, want: readmodel.Page{Limit: 5, After: "row-7"}},
		{name: "max limit", limit: events.MaxListLimit, want: readmodel.Page{Limit: events.MaxListLimit}},
		{name: "limit too large", limit: events.MaxListLimit + 1, invalidFields: "limit"},
		{name: "negative limit", limit: -1, invalidFields: "limit"},
		{name: "cursor not base64", cursor: "%%%", invalidFields: "cursor"},
		{name: "cursor not a token", cursor: base64.RawURLEncoding.EncodeToString([]byte("a.b")), invalidFields: "cursor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readmodel.PageOf(tc.limit, tc.cursor)
			if tc.invalidFields != "" {
				e, ok := err.(*events.Error)
				if !ok || e.Code != events.CodeInvalid || len(e.Fields) != 1 || e.Fields[0].Field != tc.invalidFields {
					t.Fatalf("PageOf(%d, %q) = %v, want invalid %s", tc.limit, tc.cursor, err, tc.invalidFields)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("PageOf(%d, %q) = %+v, %v, want %+v", tc.limit, tc.cursor, got, err, tc.want)
			}
		})
	}
}

// TestNextWalksAList: pages fetched with one row more than the limit, and
// cursors fed back through PageOf, visit every row once.
func TestNextWalksAList(t *testing.T) {
	var rows []string
	for i := range 7 {
		rows = append(rows, fmt.Sprintf("r%d", i))
	}
	for _, limit := range []int{1, 3, 7, 10} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			var seen []string
			cursor := ""
			for range len(rows) + 1 {
				p, err := readmodel.PageOf(limit, cursor)
				if err != nil {
					t.Fatal(err)
				}
				i, _ := slices.BinarySearch(rows, p.After)
				if p.After != "" {
					i++
				}
				fetched := rows[i:min(len(rows), i+p.Limit+1)]
				var items []string
				items, cursor = readmodel.Next(fetched, p.Limit, func(s string) string { return s })
				seen = append(seen, items...)
				if cursor == "" {
					break
				}
			}
			if !slices.Equal(seen, rows) {
				t.Fatalf("pages of %d saw %v, want %v", limit, seen, rows)
			}
		})
	}
}
