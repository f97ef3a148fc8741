package handlers

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/password"
	"github.com/tasker/tasker/internal/problem"
	"github.com/tasker/tasker/internal/tenancy"
)

// Signup creates a tenant and its owner in one transaction scoped to the new tenant's id, so
// row-level security admits the inserts without any bypass.
func (s *Server) Signup(ctx context.Context, req api.SignupRequestObject) (api.SignupResponseObject, error) {
	body := req.Body
	// Hash before the transaction: argon2id is deliberately slow and must not hold a connection.
	hash, err := password.Hash(body.Password, s.password)
	if err != nil {
		return nil, fmt.Errorf("signup: %w", err)
	}
	scope := tenancy.Scope{Tenant: newID(), User: newID()}
	var tenant db.Tenant
	var owner db.User
	err = s.db.InTx(ctx, scope, func(q *db.Queries) error {
		var err error
		tenant, err = q.CreateTenant(ctx, db.CreateTenantParams{ID: scope.Tenant, Slug: body.TenantSlug, Name: body.TenantName})
		if err != nil {
			return err
		}
		owner, err = q.CreateUser(ctx, db.CreateUserParams{
			TenantID: scope.Tenant, ID: scope.User,
			Email: normalizeEmail(string(body.Email)), Name: body.Name,
			Role: string(api.Owner), Status: string(api.Active), PasswordHash: &hash,
		})
		return err
	})
	if problem.Is(err, problem.Conflict) {
		return nil, problem.New(problem.Conflict, "The tenant slug %q is already taken.", body.TenantSlug)
	}
	if err != nil {
		return nil, fmt.Errorf("signup: %w", err)
	}
	return api.Signup201JSONResponse{Tenant: tenantToAPI(tenant), User: userToAPI(owner)}, nil
}

// newID returns a time-ordered UUIDv7, which keeps B-tree inserts local.
func newID() uuid.UUID { return uuid.Must(uuid.NewV7()) }

func normalizeEmail(e string) string { return strings.ToLower(strings.TrimSpace(e)) }
