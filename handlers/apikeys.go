package handlers

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/audit"
	"github.com/tasker/tasker/internal/auth"
	"github.com/tasker/tasker/internal/authz"
	"github.com/tasker/tasker/internal/problem"
	"github.com/tasker/tasker/internal/tenancy"
	"github.com/tasker/tasker/internal/tokens"
)

// ListAPIKeys lists the tenant's active keys (admins; the spec's x-min-role).
func (s *Server) ListAPIKeys(ctx context.Context, req api.ListAPIKeysRequestObject) (api.ListAPIKeysResponseObject, error) {
	p := principal(ctx)
	beforeT, beforeID, err := timeCursorAt("api-keys", req.Params.Cursor)
	if err != nil {
		return nil, err
	}
	rows, err := tenancy.SearchV(ctx, s.db, scope(p), func(q *db.Queries) ([]db.ApiKey, error) {
		return q.ListAPIKeys(ctx, db.ListAPIKeysParams{BeforeCreatedAt: beforeT, BeforeID: beforeID, Lim: fetchLimit(req.Params.Limit)})
	})
	if err != nil {
		return nil, err
	}
	rows, next := page(rows, limitOf(req.Params.Limit), func(k db.ApiKey) string { return timeNext("api-keys")(k.CreatedAt, k.ID) })
	out := api.ListAPIKeys200JSONResponse{Items: make([]api.APIKey, len(rows)), NextCursor: nullableString(next)}
	for i, r := range rows {
		out.Items[i] = apiKeyToAPI(r)
	}
	return out, nil
}

// CreateAPIKey makes a key acting with a role no higher than the caller's; its secret is in
// this response only.
func (s *Server) CreateAPIKey(ctx context.Context, req api.CreateAPIKeyRequestObject) (api.CreateAPIKeyResponseObject, error) {
	p := principal(ctx)
	body := req.Body
	if body.ExpiresAt != nil && !body.ExpiresAt.After(time.Now()) {
		return nil, problem.Fields("The key would already be expired.",
			problem.FieldError{Field: "expires_at", In: "body", Message: "must be in the future"})
	}
	key := tokens.NewOpaque(tokens.APIKey, p.Tenant, newID())
	row, err := writeV(ctx, s, p, func(tx *tenancy.Tx, p auth.Principal) (db.ApiKey, error) {
		if !p.Role.AtLeast(auth.Role(body.Role)) {
			return db.ApiKey{}, problem.New(problem.Forbidden, "A key cannot have a role above your own (%s).", p.Role)
		}
		row, err := tx.Q.CreateAPIKey(ctx, db.CreateAPIKeyParams{
			TenantID: p.Tenant, ID: key.ID, CreatedBy: p.User, Name: body.Name, Role: string(body.Role),
			SecretHash: key.Hash(), Prefix: key.Prefix(), ExpiresAt: body.ExpiresAt,
		})
		if err != nil {
			return db.ApiKey{}, err
		}
		tx.Record(tenancy.Entry{Action: audit.APIKeyCreated, ResourceType: audit.ResourceAPIKey, ResourceID: key.ID,
			Data: map[string]any{"name": body.Name, "role": string(body.Role)}})
		return row, nil
	})
	if err != nil {
		return nil, err
	}
	k := apiKeyToAPI(row)
	return api.CreateAPIKey201JSONResponse{
		Id: k.Id, Name: k.Name, Role: k.Role, Prefix: k.Prefix, CreatedBy: k.CreatedBy, CreatedAt: k.CreatedAt,
		ExpiresAt: k.ExpiresAt, Key: key.String(),
	}, nil
}

// DeleteAPIKey revokes a key; it stops working at once.
func (s *Server) DeleteAPIKey(ctx context.Context, req api.DeleteAPIKeyRequestObject) (api.DeleteAPIKeyResponseObject, error) {
	err := s.write(ctx, principal(ctx), func(tx *tenancy.Tx, p auth.Principal) error {
		creator, err := tx.Q.RevokeAPIKey(ctx, req.Id)
		if err != nil {
			return notFound(err, "API key")
		}
		// An owner's key is an owner's to revoke, as an owner is an owner's to change.
		if err := authz.ManageUser(p, auth.Role(creator)); err != nil {
			return err
		}
		tx.Changed(audit.EventAPIKeyRevoked, tenancy.Entry{Action: audit.APIKeyRevoked, ResourceType: audit.ResourceAPIKey, ResourceID: req.Id},
			uuid.Nil, map[string]any{"id": req.Id})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return api.DeleteAPIKey204Response{}, nil
}
