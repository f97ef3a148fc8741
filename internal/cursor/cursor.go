// Package cursor makes the opaque next_cursor of keyset-paginated lists: the last row's sort
// key and id, encoded so clients treat it as a token rather than something to build.
package cursor

import (
	"encoding/base64"
	"encoding/json"

	"github.com/tasker/tasker/internal/problem"
)

// Encode returns the cursor for position v (a small struct of the sort key and id).
func Encode(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // v is always one of our own plain structs
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// Decode reads a cursor into v; a cursor that is not one of ours is a 400 naming the field.
func Decode(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		return Invalid()
	}
	return nil
}

// Invalid is the 400 for a cursor that is not one of this list's, naming the field.
func Invalid() error {
	return problem.Fields("The cursor is not valid for this list.",
		problem.FieldError{Field: "cursor", In: "query", Message: "not a cursor from this list"})
}

// Limit is the page size: the requested one, or def.
func Limit(requested *int, def int) int {
	if requested == nil {
		return def
	}
	return *requested
}
