// Package handlers implements the generated API server interface: each method decodes nothing
// (the generated code did), runs one tenant transaction through internal/tenancy, and converts
// the sqlc rows into API types. It also assembles the whole HTTP stack in NewHTTPHandler.
package handlers

import (
	"context"
	"log/slog"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/internal/auth"
	"github.com/tasker/tasker/internal/files"
	"github.com/tasker/tasker/internal/password"
	"github.com/tasker/tasker/internal/ratelimit"
	"github.com/tasker/tasker/internal/session"
	"github.com/tasker/tasker/internal/sso"
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
	files    FilesConfig
	uploads  *files.Uploads
	billing  BillingConfig
	sso      SSOConfig
	// ssoProviders caches the tenants' discovered providers; ssoStarts limits sign-in starts per IP.
	ssoProviders *sso.Providers
	ssoStarts    *ratelimit.Limiter
	webhooks     WebhooksConfig
	// manualSends limits a tenant's test pings and redeliveries.
	manualSends *ratelimit.Limiter
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
func scope(p auth.Principal) tenancy.Scope {
	return tenancy.Scope{Tenant: p.Tenant, User: p.User, Key: p.APIKey}
}

// writeV runs fn in one write transaction for the caller (tenancy.Write), after re-reading the
// caller's standing in it (auth.Current): fn gets the principal as it is now, so no write
// trusts a token's claims, and the transaction value to record and emit the change with.
func writeV[T any](ctx context.Context, s *Server, p auth.Principal, fn func(tx *tenancy.Tx, p auth.Principal) (T, error)) (T, error) {
	return tenancy.WriteV(ctx, s.db, scope(p), func(tx *tenancy.Tx) (T, error) {
		cur, err := auth.Current(ctx, tx.Q, p)
		if err != nil {
			var zero T
			return zero, err
		}
		return fn(tx, cur)
	})
}

// write is the generic write for changes that return nothing.
func (s *Server) write(ctx context.Context, p auth.Principal, fn func(tx *tenancy.Tx, p auth.Principal) error) error {
	_, err := writeV(ctx, s, p, func(tx *tenancy.Tx, p auth.Principal) (struct{}, error) { return struct{}{}, fn(tx, p) })
	return err
}
