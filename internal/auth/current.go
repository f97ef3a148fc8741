package auth

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/problem"
)

type minRoleKey struct{}

// withMinRole records the minimum role of the request's operation, so checks made later, inside
// the operation's transaction, hold the caller to the same rule.
func withMinRole(ctx context.Context, r Role) context.Context {
	return context.WithValue(ctx, minRoleKey{}, r)
}

// MinRole is the minimum role the request's operation declares (x-min-role), or "" for none.
func MinRole(ctx context.Context) Role {
	r, _ := ctx.Value(minRoleKey{}).(Role)
	return r
}

// Current re-reads p's standing through q, inside the caller's transaction: the user must still
// be active, the session or API key still live, and the role, now the lower of the credential's
// and the user's current one, must still meet the operation's minimum. Writes run it first, so
// an access token issued before a deactivation, demotion or logout cannot change anything,
// whatever its claims say. It returns p with the current role.
func Current(ctx context.Context, q *db.Queries, p Principal) (Principal, error) {
	row, err := q.GetActor(ctx, db.GetActorParams{UserID: p.User, SessionID: orNil(p.Session), ApiKeyID: orNil(p.APIKey)})
	if errors.Is(err, pgx.ErrNoRows) {
		return Principal{}, Unauthenticated("invalid_token", "The account of this credential no longer exists.")
	}
	if err != nil {
		return Principal{}, fmt.Errorf("current standing: %w", err)
	}
	if row.Status != "active" || !row.SessionLive || !row.KeyLive {
		return Principal{}, Unauthenticated("invalid_token", "The account, session or key of this credential is no longer active.")
	}
	p.Role = Lower(p.Role, Role(row.Role))
	if min := MinRole(ctx); min != "" && !p.Role.AtLeast(min) {
		return Principal{}, problem.New(problem.Forbidden, "This operation needs the %s role or higher; your role is now %s.", min, p.Role)
	}
	return p, nil
}

func orNil(id uuid.UUID) *uuid.UUID {
	if id == uuid.Nil {
		return nil
	}
	return &id
}
