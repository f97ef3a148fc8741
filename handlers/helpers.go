package handlers

import (
	"fmt"

	"github.com/google/uuid"
	"github.com/oapi-codegen/nullable"

	"github.com/tasker/tasker/internal/problem"
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
	if problem.Is(err, problem.Conflict) {
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
func notFound(err error, what string) error {
	if problem.Is(err, problem.NotFound) {
		return problem.New(problem.NotFound, "No such %s.", what)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }
