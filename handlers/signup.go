package handlers

import (
	"context"
	"fmt"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/audit"
	"github.com/tasker/tasker/internal/auth"
	"github.com/tasker/tasker/internal/password"
	"github.com/tasker/tasker/internal/problem"
	"github.com/tasker/tasker/internal/session"
	"github.com/tasker/tasker/internal/tenancy"
)

// Signup creates a tenant, its directory entry, its owner and the owner's first session in one
// transaction scoped to the new tenant's id, so row-level security admits the inserts without
// any bypass.
func (s *Server) Signup(ctx context.Context, req api.SignupRequestObject) (api.SignupResponseObject, error) {
	body := req.Body
	if err := s.sessions.Throttle(ctx); err != nil {
		return nil, err
	}
	// Hash before the transaction: argon2id is deliberately slow and must not hold a connection.
	hash, err := password.Hash(body.Password, s.password)
	if err != nil {
		return nil, fmt.Errorf("signup: %w", err)
	}
	scope := tenancy.Scope{Tenant: newID(), User: newID()}
	out, err := tenancy.WriteV(ctx, s.db, scope, func(tx *tenancy.Tx) (api.Signup201JSONResponse, error) {
		tenant, err := tx.Q.CreateTenant(ctx, db.CreateTenantParams{ID: scope.Tenant, Slug: body.TenantSlug, Name: body.TenantName})
		if err != nil {
			return api.Signup201JSONResponse{}, err
		}
		if err := tx.Q.AddTenantToDirectory(ctx, db.AddTenantToDirectoryParams{Slug: body.TenantSlug, TenantID: scope.Tenant}); err != nil {
			return api.Signup201JSONResponse{}, err
		}
		if err := tx.Q.CreateBillingSubscription(ctx, scope.Tenant); err != nil {
			return api.Signup201JSONResponse{}, err
		}
		owner, err := tx.Q.CreateUser(ctx, db.CreateUserParams{
			TenantID: scope.Tenant, ID: scope.User,
			Email: session.NormalizeEmail(string(body.Email)), Name: body.Name,
			Role: string(api.UserRoleOwner), Status: string(api.UserStatusActive), PasswordHash: &hash,
		})
		if err != nil {
			return api.Signup201JSONResponse{}, err
		}
		pair, err := s.sessions.Start(ctx, tx.Q, scope.Tenant, scope.User, auth.Owner, session.MethodPassword)
		if err != nil {
			return api.Signup201JSONResponse{}, err
		}
		tx.Record(tenancy.Entry{Action: audit.TenantSignup, ResourceType: audit.ResourceTenant, ResourceID: scope.Tenant})
		return api.Signup201JSONResponse{Tenant: tenantToAPI(tenant), User: userToAPI(owner), Tokens: pairToAPI(pair)}, nil
	})
	if tenancy.IsDuplicate(err) {
		return nil, problem.New(problem.Conflict, "The tenant slug %q is already taken.", body.TenantSlug)
	}
	if err != nil {
		return nil, fmt.Errorf("signup: %w", err)
	}
	return out, nil
}
