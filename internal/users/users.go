// Package users holds the rules of changing a user: who may change whom, the roles one may
// grant, that nobody changes their own standing, the last-owner rule, and what deactivation
// takes away. The handlers glue it to the API inside the write seam.
package users

import (
	"context"
	"slices"

	"github.com/google/uuid"

	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/audit"
	"github.com/tasker/tasker/internal/auth"
	"github.com/tasker/tasker/internal/authz"
	"github.com/tasker/tasker/internal/problem"
	"github.com/tasker/tasker/internal/session"
	"github.com/tasker/tasker/internal/tenancy"
)

// Statuses of a user.
const (
	Active      = "active"
	Invited     = "invited"
	Deactivated = "deactivated"
)

// Change is what a request asks to change about a user; nil fields stay as they are.
type Change struct {
	Name   *string
	Role   *auth.Role
	Status *string
	// ReserveSeat, when set, is called in the transaction when the change gives a deactivated
	// user their seat back, and refuses it past the plan's seats.
	ReserveSeat func() error
}

// Apply makes the change c to user id on behalf of p, inside the caller's write transaction
// (q), and returns the user as it now is and the changed fields for the audit entry.
//
// A role or status change may take away the last owner, so every active owner is locked first,
// in id order, before the target: concurrent changes queue instead of deadlocking, and no two of
// them can each leave one owner and together leave none. Deactivation ends the user's sessions
// and revokes their API keys in the same transaction.
func Apply(ctx context.Context, tx *tenancy.Tx, p auth.Principal, id uuid.UUID, c Change) (db.User, map[string]any, error) {
	q := tx.Q
	// What p may not do whatever the user's row says is refused before any lock is taken.
	if c.Role != nil || c.Status != nil {
		if p.Method == auth.ByAPIKey {
			return db.User{}, nil, authz.ChangeStanding(p, id)
		}
	}
	if c.Role != nil {
		if err := authz.GrantRole(p, *c.Role); err != nil {
			return db.User{}, nil, err
		}
	}
	var owners []uuid.UUID
	if c.Role != nil || c.Status != nil {
		var err error
		if owners, err = q.LockActiveOwners(ctx); err != nil {
			return db.User{}, nil, err
		}
	}
	u, err := q.GetUserForUpdate(ctx, id)
	if err != nil {
		return db.User{}, nil, tenancy.Missing(err, "user")
	}
	if err := check(p, u, c, owners); err != nil {
		return db.User{}, nil, err
	}
	if c.Status != nil && u.Status == Deactivated && *c.Status != Deactivated && c.ReserveSeat != nil {
		if err := c.ReserveSeat(); err != nil {
			return db.User{}, nil, err
		}
	}
	params := db.UpdateUserParams{ID: id}
	changes := map[string]any{}
	if c.Name != nil {
		params.SetName, params.Name, changes["name"] = true, *c.Name, *c.Name
	}
	if c.Role != nil {
		params.SetRole, params.Role, changes["role"] = true, string(*c.Role), string(*c.Role)
	}
	if c.Status != nil {
		params.SetStatus, params.Status, changes["status"] = true, *c.Status, *c.Status
	}
	out, err := q.UpdateUser(ctx, params)
	if err != nil {
		return db.User{}, nil, err
	}
	// Deactivation ends every session and key of the user. Reactivation does it again: a key a
	// write of the user's created while the deactivation ran (its read of the user came first)
	// may have escaped the first sweep, and must not come back to life with its creator.
	if c.Status != nil && *c.Status != u.Status && (*c.Status == Deactivated || u.Status == Deactivated) {
		// Each one is announced, so every server stops accepting exactly those credentials; the
		// user.update audit entry records the change itself.
		sessions, err := q.RevokeUserSessions(ctx, id)
		if err != nil {
			return db.User{}, nil, err
		}
		for _, s := range sessions {
			tx.Emit(tenancy.Event{Type: audit.EventSessionRevoked, ResourceType: audit.ResourceSession, ResourceID: s,
				Payload: audit.RevokedSession(s, id, "user_deactivated")})
		}
		keys, err := q.RevokeUserAPIKeys(ctx, id)
		if err != nil {
			return db.User{}, nil, err
		}
		for _, k := range keys {
			tx.Emit(tenancy.Event{Type: audit.EventAPIKeyRevoked, ResourceType: audit.ResourceAPIKey, ResourceID: k,
				Payload: map[string]any{"id": k}})
		}
	}
	if c.Role != nil && u.Role != string(auth.Owner) && *c.Role == auth.Owner {
		// An SSO session or code was admitted without the owner check (an admin's provider may
		// have made it), and a refresh takes the new role: the new owner signs in again, by
		// password or through SSO's owner check.
		sessions, err := q.EndUserSSOSessions(ctx, id)
		if err != nil {
			return db.User{}, nil, err
		}
		for _, s := range sessions {
			tx.Emit(tenancy.Event{Type: audit.EventSessionRevoked, ResourceType: audit.ResourceSession, ResourceID: s,
				Payload: audit.RevokedSession(s, id, "revoked")})
		}
	}
	if c.Role != nil && u.Role == string(auth.Owner) && *c.Role != auth.Owner {
		// A former owner keeps no password session where passwords are owners' only.
		allowed, err := session.PasswordRule(ctx, q, u.TenantID)
		if err != nil {
			return db.User{}, nil, err
		}
		if !allowed {
			sessions, err := q.RevokeUserPasswordSessions(ctx, id)
			if err != nil {
				return db.User{}, nil, err
			}
			for _, s := range sessions {
				tx.Emit(tenancy.Event{Type: audit.EventSessionRevoked, ResourceType: audit.ResourceSession, ResourceID: s,
					Payload: audit.RevokedSession(s, id, "revoked")})
			}
		}
	}
	return out, changes, nil
}

// check applies the rules to the change c of user u by p; owners are the active owners, locked.
func check(p auth.Principal, u db.User, c Change, owners []uuid.UUID) error {
	if err := authz.ManageUser(p, auth.Role(u.Role)); err != nil {
		return err
	}
	if (c.Role != nil && string(*c.Role) != u.Role) || (c.Status != nil && *c.Status != u.Status) {
		if err := authz.ChangeStanding(p, u.ID); err != nil {
			return err
		}
	}
	if c.Role != nil {
		if err := authz.GrantRole(p, *c.Role); err != nil {
			return err
		}
	}
	if c.Status != nil && *c.Status == Active && u.Status != Active && u.PasswordHash == nil {
		// Invited, or deactivated before accepting: active, they could never sign in.
		return problem.New(problem.Conflict, "A user who has not accepted their invitation becomes active only by accepting it.")
	}
	losesOwner := u.Role == string(auth.Owner) && u.Status == Active &&
		((c.Role != nil && *c.Role != auth.Owner) || (c.Status != nil && *c.Status != Active))
	if losesOwner && len(owners) <= 1 && slices.Contains(owners, u.ID) {
		return problem.New(problem.Conflict, "The last owner cannot be demoted or deactivated.")
	}
	return nil
}
