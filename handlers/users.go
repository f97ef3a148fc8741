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
	"github.com/tasker/tasker/internal/password"
	"github.com/tasker/tasker/internal/problem"
	"github.com/tasker/tasker/internal/session"
	"github.com/tasker/tasker/internal/tenancy"
	"github.com/tasker/tasker/internal/tokens"
	"github.com/tasker/tasker/internal/users"
)

// inviteTTL is how long an invitation can be redeemed.
const inviteTTL = 7 * 24 * time.Hour

// ListUsers lists the tenant's users, oldest first.
func (s *Server) ListUsers(ctx context.Context, req api.ListUsersRequestObject) (api.ListUsersResponseObject, error) {
	p := principal(ctx)
	afterT, afterID, err := timeCursorAt("users", req.Params.Cursor)
	if err != nil {
		return nil, err
	}
	rows, err := tenancy.SearchV(ctx, s.db, scope(p), func(q *db.Queries) ([]db.User, error) {
		return q.ListUsers(ctx, db.ListUsersParams{AfterCreatedAt: afterT, AfterID: afterID, Lim: fetchLimit(req.Params.Limit)})
	})
	if err != nil {
		return nil, err
	}
	rows, next := page(rows, limitOf(req.Params.Limit), func(u db.User) string { return timeNext("users")(u.CreatedAt, u.ID) })
	out := api.ListUsers200JSONResponse{Items: make([]api.User, len(rows)), NextCursor: nullableString(next)}
	for i, u := range rows {
		out.Items[i] = userToAPI(u)
	}
	return out, nil
}

// GetUser reads one user.
func (s *Server) GetUser(ctx context.Context, req api.GetUserRequestObject) (api.GetUserResponseObject, error) {
	p := principal(ctx)
	u, err := tenancy.ReadV(ctx, s.db, scope(p), func(q *db.Queries) (db.User, error) {
		return q.GetUser(ctx, req.Id)
	})
	if err != nil {
		return nil, notFound(err, "user")
	}
	return api.GetUser200JSONResponse(userToAPI(u)), nil
}

// CreateUser adds a user with a password, or invites one without.
func (s *Server) CreateUser(ctx context.Context, req api.CreateUserRequestObject) (api.CreateUserResponseObject, error) {
	p := principal(ctx)
	body := req.Body
	params := db.CreateUserParams{
		TenantID: p.Tenant, ID: newID(), Email: session.NormalizeEmail(string(body.Email)), Name: body.Name,
		Role: string(body.Role), Status: string(api.UserStatusActive),
	}
	var invite *tokens.Opaque
	if body.Password != nil {
		hash, err := password.Hash(*body.Password, s.password)
		if err != nil {
			return nil, err
		}
		params.PasswordHash = &hash
	} else {
		o := tokens.NewOpaque(tokens.Invitation, p.Tenant, newID())
		invite = &o
		params.Status = string(api.UserStatusInvited)
	}
	u, err := writeV(ctx, s, p, func(tx *tenancy.Tx, p auth.Principal) (api.User, error) {
		if err := authz.GrantRole(p, auth.Role(body.Role)); err != nil {
			return api.User{}, err
		}
		if err := s.billing.Catalog.ReserveSeat(ctx, tx.Q, p.Tenant, s.billing.now()); err != nil {
			return api.User{}, err
		}
		row, err := tx.Q.CreateUser(ctx, params)
		if err != nil {
			return api.User{}, err
		}
		if invite != nil {
			if err := tx.Q.CreateInvitation(ctx, db.CreateInvitationParams{
				TenantID: p.Tenant, ID: invite.ID, UserID: row.ID, SecretHash: invite.Hash(), ExpiresAt: time.Now().Add(inviteTTL),
			}); err != nil {
				return api.User{}, err
			}
		}
		out := userToAPI(row)
		tx.Changed("user.created", tenancy.Entry{Action: "user.create", ResourceType: audit.ResourceUser, ResourceID: row.ID,
			Data: map[string]any{"role": row.Role, "invited": invite != nil}}, uuid.Nil, out)
		return out, nil
	})
	if tenancy.IsDuplicate(err) {
		return nil, problem.New(problem.Conflict, "A user with this email already exists.")
	}
	if err != nil {
		return nil, err
	}
	out := api.CreateUser201JSONResponse{User: u}
	if invite != nil {
		tok := invite.String()
		out.InviteToken = &tok
	}
	return out, nil
}

// UpdateUser changes a user's name, role or status under the rules of internal/users.
func (s *Server) UpdateUser(ctx context.Context, req api.UpdateUserRequestObject) (api.UpdateUserResponseObject, error) {
	c := users.Change{Name: req.Body.Name}
	if req.Body.Status != nil {
		c.Status = ptr(string(*req.Body.Status))
	}
	if req.Body.Role != nil {
		c.Role = ptr(auth.Role(*req.Body.Role))
	}
	u, err := s.changeUser(ctx, req.Id, c)
	if err != nil {
		return nil, err
	}
	return api.UpdateUser200JSONResponse(u), nil
}

// DeactivateUser deactivates a user, ending their sessions and keys.
func (s *Server) DeactivateUser(ctx context.Context, req api.DeactivateUserRequestObject) (api.DeactivateUserResponseObject, error) {
	if _, err := s.changeUser(ctx, req.Id, users.Change{Status: ptr(users.Deactivated)}); err != nil {
		return nil, err
	}
	return api.DeactivateUser204Response{}, nil
}

func (s *Server) changeUser(ctx context.Context, id uuid.UUID, c users.Change) (api.User, error) {
	return writeV(ctx, s, principal(ctx), func(tx *tenancy.Tx, p auth.Principal) (api.User, error) {
		c.ReserveSeat = func() error { return s.billing.Catalog.ReserveSeat(ctx, tx.Q, p.Tenant, s.billing.now()) }
		row, changes, err := users.Apply(ctx, tx, p, id, c)
		if err != nil {
			return api.User{}, err
		}
		out := userToAPI(row)
		tx.Changed("user.updated", tenancy.Entry{Action: "user.update", ResourceType: audit.ResourceUser, ResourceID: id, Data: changes}, uuid.Nil, out)
		return out, nil
	})
}
