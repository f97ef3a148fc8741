package handlers

import (
	"context"
	"fmt"
	"slices"
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
	var rows []db.User
	err = s.db.Search(ctx, scope(p), func(q *db.Queries) error {
		rows, err = q.ListUsers(ctx, db.ListUsersParams{AfterCreatedAt: afterT, AfterID: afterID, Lim: fetchLimit(req.Params.Limit)})
		return err
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
	var u db.User
	err := s.db.Read(ctx, scope(p), func(q *db.Queries) error {
		var err error
		u, err = q.GetUser(ctx, req.Id)
		return err
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
	var u db.User
	err := s.write(ctx, p, func(q *db.Queries, p auth.Principal) error {
		var err error
		// The role is checked again against the caller's current one.
		if err := authz.GrantRole(p, auth.Role(body.Role)); err != nil {
			return err
		}
		if u, err = q.CreateUser(ctx, params); err != nil {
			return err
		}
		if invite != nil {
			if err := q.CreateInvitation(ctx, db.CreateInvitationParams{
				TenantID: p.Tenant, ID: invite.ID, UserID: u.ID, SecretHash: invite.Hash(), ExpiresAt: time.Now().Add(inviteTTL),
			}); err != nil {
				return err
			}
		}
		return s.record(ctx, q, p, "user.create", audit.ResourceUser, u.ID, map[string]any{"role": u.Role, "invited": invite != nil})
	})
	if problem.Is(err, problem.Conflict) {
		return nil, problem.New(problem.Conflict, "A user with this email already exists.")
	}
	if err != nil {
		return nil, err
	}
	out := api.CreateUser201JSONResponse{User: userToAPI(u)}
	if invite != nil {
		tok := invite.String()
		out.InviteToken = &tok
	}
	return out, nil
}

// UpdateUser changes a user's name, role or status under the owner rules.
func (s *Server) UpdateUser(ctx context.Context, req api.UpdateUserRequestObject) (api.UpdateUserResponseObject, error) {
	p := principal(ctx)
	var status *string
	if req.Body.Status != nil {
		status = ptr(string(*req.Body.Status))
	}
	var role *auth.Role
	if req.Body.Role != nil {
		role = ptr(auth.Role(*req.Body.Role))
	}
	u, err := s.changeUser(ctx, p, req.Id, req.Body.Name, role, status)
	if err != nil {
		return nil, err
	}
	return api.UpdateUser200JSONResponse(userToAPI(u)), nil
}

// DeactivateUser deactivates a user, ending their sessions and keys.
func (s *Server) DeactivateUser(ctx context.Context, req api.DeactivateUserRequestObject) (api.DeactivateUserResponseObject, error) {
	if _, err := s.changeUser(ctx, principal(ctx), req.Id, nil, nil, ptr(string(api.UserStatusDeactivated))); err != nil {
		return nil, err
	}
	return api.DeactivateUser204Response{}, nil
}

// changeUser applies a user change in one transaction: authorization against the user's current
// role, the last-owner rule (with every active owner locked), session and key revocation on
// deactivation, and the audit record.
func (s *Server) changeUser(ctx context.Context, p auth.Principal, id uuid.UUID, name *string, role *auth.Role, status *string) (db.User, error) {
	var out db.User
	err := s.write(ctx, p, func(q *db.Queries, p auth.Principal) error {
		// A role or status change may touch the last owner: lock every active owner first, in
		// id order, before the target, so concurrent changes queue instead of deadlocking.
		var owners []uuid.UUID
		if role != nil || status != nil {
			var err error
			if owners, err = q.LockActiveOwners(ctx); err != nil {
				return err
			}
		}
		u, err := q.GetUserForUpdate(ctx, id)
		if err != nil {
			return notFound(err, "user")
		}
		if err := authz.ManageUser(p, auth.Role(u.Role)); err != nil {
			return err
		}
		changesStanding := (role != nil && string(*role) != u.Role) || (status != nil && *status != u.Status)
		if changesStanding {
			if err := authz.ChangeStanding(p, u.ID); err != nil {
				return err
			}
		}
		if role != nil {
			if err := authz.GrantRole(p, *role); err != nil {
				return err
			}
		}
		if status != nil && *status == string(api.UserStatusActive) && u.Status != *status && u.PasswordHash == nil {
			// Invited, or deactivated before accepting: active, they could never sign in.
			return problem.New(problem.Conflict, "A user who has not accepted their invitation becomes active only by accepting it.")
		}
		losesOwner := u.Role == string(auth.Owner) && u.Status == string(api.UserStatusActive) &&
			((role != nil && *role != auth.Owner) || (status != nil && *status != string(api.UserStatusActive)))
		if losesOwner {
			if len(owners) <= 1 && slices.Contains(owners, u.ID) {
				return problem.New(problem.Conflict, "The last owner cannot be demoted or deactivated.")
			}
		}
		params := db.UpdateUserParams{ID: id}
		changes := map[string]any{}
		if name != nil {
			params.SetName, params.Name, changes["name"] = true, *name, *name
		}
		if role != nil {
			params.SetRole, params.Role, changes["role"] = true, string(*role), string(*role)
		}
		if status != nil {
			params.SetStatus, params.Status, changes["status"] = true, *status, *status
		}
		if out, err = q.UpdateUser(ctx, params); err != nil {
			return err
		}
		if status != nil && *status == string(api.UserStatusDeactivated) && u.Status != *status {
			if err := q.RevokeUserSessions(ctx, id); err != nil {
				return err
			}
			if err := q.RevokeUserAPIKeys(ctx, id); err != nil {
				return err
			}
		}
		return s.record(ctx, q, p, "user.update", audit.ResourceUser, id, changes)
	})
	return out, err
}

// AcceptInvite sets an invited user's password and signs them in.
func (s *Server) AcceptInvite(ctx context.Context, req api.AcceptInviteRequestObject) (api.AcceptInviteResponseObject, error) {
	bad := auth.Unauthenticated("invalid_grant", "The invitation is invalid, used or expired.")
	if err := s.sessions.Throttle(ctx); err != nil {
		return nil, err
	}
	inv, err := tokens.ParseOpaque(tokens.Invitation, req.Body.Token)
	if err != nil {
		return nil, bad
	}
	usable := func(secretHash []byte, usedAt *time.Time, expiresAt time.Time, status string) bool {
		return inv.Matches(secretHash) && usedAt == nil && time.Now().Before(expiresAt) && status == string(api.UserStatusInvited)
	}
	// Check the invitation before paying for argon2id, so bad tokens cost nothing.
	err = s.db.Read(ctx, tenancy.Scope{Tenant: inv.Tenant}, func(q *db.Queries) error {
		row, err := q.GetInvitation(ctx, inv.ID)
		if err != nil {
			return err
		}
		if !usable(row.SecretHash, row.UsedAt, row.ExpiresAt, row.Status) {
			return bad
		}
		return nil
	})
	if problem.Is(err, problem.NotFound) {
		return nil, bad
	}
	if err != nil {
		return nil, err
	}
	hash, err := password.Hash(req.Body.Password, s.password)
	if err != nil {
		return nil, err
	}
	var pair session.Pair
	err = s.db.InTx(ctx, tenancy.Scope{Tenant: inv.Tenant}, func(q *db.Queries) error {
		row, err := q.GetInvitationForUpdate(ctx, inv.ID)
		if err != nil {
			return err
		}
		if !usable(row.SecretHash, row.UsedAt, row.ExpiresAt, row.Status) {
			return bad // used by a concurrent request meanwhile
		}
		if err := q.ActivateInvitedUser(ctx, db.ActivateInvitedUserParams{ID: row.UserID, PasswordHash: &hash}); err != nil {
			return err
		}
		if err := q.UseInvitation(ctx, inv.ID); err != nil {
			return err
		}
		if pair, err = s.sessions.Start(ctx, q, inv.Tenant, row.UserID, auth.Role(row.Role)); err != nil {
			return err
		}
		return s.record(ctx, q, auth.Principal{Tenant: inv.Tenant, User: row.UserID}, "user.accept_invite", audit.ResourceUser, row.UserID, nil)
	})
	if problem.Is(err, problem.NotFound) {
		return nil, bad
	}
	if err != nil {
		return nil, err
	}
	return api.AcceptInvite200JSONResponse(pairToAPI(pair)), nil
}

// record writes the audit row of a change made by p, in the change's transaction.
func (s *Server) record(ctx context.Context, q *db.Queries, p auth.Principal, action, resourceType string, id uuid.UUID, data map[string]any) error {
	ip, _ := clientOf(ctx)
	return audit.Record(ctx, q, audit.Event{
		Tenant: p.Tenant, ActorUser: p.User, ActorKey: p.APIKey, Action: action,
		ResourceType: resourceType, ResourceID: id, IP: ip, Data: data,
	})
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
