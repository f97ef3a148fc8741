package handlers

import (
	"github.com/google/uuid"
	"github.com/oapi-codegen/nullable"

	"github.com/tasker/tasker/internal/problem"
	"github.com/tasker/tasker/internal/tenancy"
)

// newID returns a time-ordered UUIDv7, which keeps B-tree inserts local.
func newID() uuid.UUID { return uuid.Must(uuid.NewV7()) }

// nullableString is the next_cursor of a page: null on the last page.
func nullableString(s *string) nullable.Nullable[string] {
	if s == nil {
		return nullable.NewNullNullable[string]()
	}
	return nullable.NewNullableWithValue(*s)
}

// keyTaken names the clash when a unique key is taken.
func keyTaken(err error, what, key string) error {
	if tenancy.IsDuplicate(err) {
		return problem.New(problem.Conflict, "The %s key %q is already taken.", what, key)
	}
	return err
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// notFound turns a missing row into a 404 naming the resource; other errors pass.
func notFound(err error, what string) error { return tenancy.Missing(err, what) }

func ptr[T any](v T) *T { return &v }
