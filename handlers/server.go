// Package handlers implements the generated API server interface: each method decodes nothing
// (the generated code did), runs one tenant transaction through internal/tenancy, and converts
// the sqlc rows into API types. It also assembles the whole HTTP stack in NewHTTPHandler.
package handlers

import (
	"context"
	"log/slog"

	"github.com/google/uuid"
	"github.com/oapi-codegen/nullable"
	"github.com/tasker/tasker/internal/reqinfo"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/auth"
	"github.com/tasker/tasker/internal/password"
	"github.com/tasker/tasker/internal/session"
	"github.com/tasker/tasker/internal/tenancy"
	"github.com/tasker/tasker/internal/tokens"
)

// Server implements api.StrictServerInterface.
type Server struct {
	db       *tenancy.DB
	logger   *slog.Logger
	password password.Params
	issuer   *tokens.Issuer
	sessions *session.Service
}

var _ api.StrictServerInterface = (*Server)(nil)

// principal is the caller of an operation that requires authentication; the auth layer has
// already rejected requests without one, so its absence is a wiring bug.
func principal(ctx context.Context) auth.Principal {
	p, ok := auth.FromContext(ctx)
	if !ok {
		panic("handlers: authenticated operation without a principal")
	}
	return p
}

// scope is the tenant transaction scope of the caller.
func scope(p auth.Principal) tenancy.Scope { return tenancy.Scope{Tenant: p.Tenant, User: p.User} }

// newID returns a time-ordered UUIDv7, which keeps B-tree inserts local.
func newID() uuid.UUID { return uuid.Must(uuid.NewV7()) }

func clientOf(ctx context.Context) (ip, userAgent string) { return reqinfo.Client(ctx) }

// nullableString is the next_cursor of a page: null on the last page.
func nullableString(s *string) nullable.Nullable[string] {
	if s == nil {
		return nullable.NewNullNullable[string]()
	}
	return nullable.NewNullableWithValue(*s)
}

// write runs fn in one transaction for the caller, after re-reading the caller's standing in it
// (auth.Current): fn gets the principal as it is now, so no write trusts a token's claims.
func (s *Server) write(ctx context.Context, p auth.Principal, fn func(q *db.Queries, p auth.Principal) error) error {
	return s.db.InTx(ctx, scope(p), func(q *db.Queries) error {
		cur, err := auth.Current(ctx, q, p)
		if err != nil {
			return err
		}
		return fn(q, cur)
	})
}
