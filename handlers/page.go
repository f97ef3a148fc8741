package handlers

import (
	"time"

	"github.com/google/uuid"

	"github.com/tasker/tasker/internal/cursor"
)

// defaultLimit is the page size when the client names none; the spec caps it at 200.
const defaultLimit = 50

// timeCursor is the position in a list ordered by creation time and id. K names the list, so a
// cursor from one list is refused by another.
type timeCursor struct {
	K  string    `json:"k"`
	T  time.Time `json:"t"`
	ID uuid.UUID `json:"id"`
}

// timeCursorAt decodes a timeCursor for list k; nil values mean "from the start".
func timeCursorAt(k string, c *string) (*time.Time, *uuid.UUID, error) {
	if c == nil {
		return nil, nil, nil
	}
	var tc timeCursor
	if err := cursor.Decode(*c, &tc); err != nil {
		return nil, nil, err
	}
	if tc.K != k {
		return nil, nil, cursor.Invalid()
	}
	return &tc.T, &tc.ID, nil
}

// page trims a result fetched with limit+1 rows and returns the next cursor, or nil at the end.
func page[T any](rows []T, limit int, next func(last T) string) ([]T, *string) {
	if len(rows) <= limit {
		return rows, nil
	}
	rows = rows[:limit]
	c := next(rows[len(rows)-1])
	return rows, &c
}

func timeNext(k string) func(t time.Time, id uuid.UUID) string {
	return func(t time.Time, id uuid.UUID) string { return cursor.Encode(timeCursor{K: k, T: t, ID: id}) }
}

func limitOf(l *int) int { return cursor.Limit(l, defaultLimit) }

// fetchLimit asks for one row more than the page, to know whether there is a next page.
func fetchLimit(l *int) int32 { return int32(limitOf(l) + 1) }
