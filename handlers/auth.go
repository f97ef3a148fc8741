package handlers

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/audit"
	"github.com/tasker/tasker/internal/auth"
	"github.com/tasker/tasker/internal/password"
	"github.com/tasker/tasker/internal/problem"
	"github.com/tasker/tasker/internal/session"
	"github.com/tasker/tasker/internal/tenancy"
	"github.com/tasker/tasker/internal/tokens"
)

// Login signs a user in with a password.
func (s *Server) Login(ctx context.Context, req api.LoginRequestObject) (api.LoginResponseObject, error) {
	pair, err := s.sessions.Login(ctx, req.Body.TenantSlug, req.Body.Email, req.Body.Password)
	if err != nil {
		return nil, err
	}
	return api.Login200JSONResponse(pairToAPI(pair)), nil
}

// Refresh rotates a refresh token.
func (s *Server) Refresh(ctx context.Context, req api.RefreshRequestObject) (api.RefreshResponseObject, error) {
	pair, err := s.sessions.Refresh(ctx, req.Body.RefreshToken)
	if err != nil {
		return nil, err
	}
	return api.Refresh200JSONResponse(pairToAPI(pair)), nil
}

// Logout ends the session of a refresh token.
func (s *Server) Logout(ctx context.Context, req api.LogoutRequestObject) (api.LogoutResponseObject, error) {
	if err := s.sessions.Logout(ctx, req.Body.RefreshToken); err != nil {
		return nil, err
	}
	return api.Logout204Response{}, nil
}

// ListSessions lists the caller's live sessions; API keys cannot (x-api-keys: false).
func (s *Server) ListSessions(ctx context.Context, req api.ListSessionsRequestObject) (api.ListSessionsResponseObject, error) {
	p := principal(ctx)
	beforeT, beforeID, err := timeCursorAt("sessions", req.Params.Cursor)
	if err != nil {
		return nil, err
	}
	rows, err := tenancy.SearchV(ctx, s.db, scope(p), func(q *db.Queries) ([]db.Session, error) {
		return q.ListUserSessions(ctx, db.ListUserSessionsParams{
			UserID: p.User, ActiveSince: s.sessions.ActiveSince(), BeforeCreatedAt: beforeT, BeforeID: beforeID, Lim: fetchLimit(req.Params.Limit),
		})
	})
	if err != nil {
		return nil, err
	}
	rows, next := page(rows, limitOf(req.Params.Limit), func(r db.Session) string { return timeNext("sessions")(r.CreatedAt, r.ID) })
	out := api.ListSessions200JSONResponse{Items: make([]api.Session, len(rows)), NextCursor: nullableString(next)}
	for i, r := range rows {
		out.Items[i] = sessionToAPI(r, p.Session)
	}
	return out, nil
}

// RevokeSession ends one of the caller's sessions; another user's session id is 404.
func (s *Server) RevokeSession(ctx context.Context, req api.RevokeSessionRequestObject) (api.RevokeSessionResponseObject, error) {
	p := principal(ctx)
	err := s.write(ctx, p, func(tx *tenancy.Tx, p auth.Principal) error {
		n, err := tx.Q.RevokeUserSession(ctx, db.RevokeUserSessionParams{ID: req.Id, UserID: p.User, Reason: ptr("revoked")})
		if err != nil {
			return err
		}
		if n == 0 {
			return problem.New(problem.NotFound, "No such session.")
		}
		tx.Changed(audit.EventSessionRevoked, tenancy.Entry{Action: audit.SessionRevoked, ResourceType: audit.ResourceSession, ResourceID: req.Id},
			uuid.Nil, audit.RevokedSession(req.Id, p.User, "revoked"))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return api.RevokeSession204Response{}, nil
}

// GetMe returns the caller, its tenant and role.
func (s *Server) GetMe(ctx context.Context, _ api.GetMeRequestObject) (api.GetMeResponseObject, error) {
	p := principal(ctx)
	row, err := tenancy.ReadV(ctx, s.db, scope(p), func(q *db.Queries) (db.GetUserAndTenantRow, error) {
		return q.GetUserAndTenant(ctx, p.User)
	})
	if err != nil {
		return nil, err
	}
	return api.GetMe200JSONResponse{
		User: userToAPI(row.User), Tenant: tenantToAPI(row.Tenant),
		Role: api.UserRole(p.Role), AuthMethod: api.MeAuthMethod(p.Method),
	}, nil
}

// GetJWKS publishes the access-token verification keys.
func (s *Server) GetJWKS(context.Context, api.GetJWKSRequestObject) (api.GetJWKSResponseObject, error) {
	keys := s.issuer.Keys().JWKS()
	out := api.GetJWKS200JSONResponse{Keys: make([]api.JWK, len(keys))}
	for i, k := range keys {
		out.Keys[i] = api.JWK{Kty: api.OKP, Crv: api.Ed25519, X: k.X, Kid: k.Kid, Alg: api.EdDSA, Use: api.Sig}
	}
	return out, nil
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
		return passwordsAllowed(ctx, q, inv.Tenant, row.Role, false)
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
	pair, err := tenancy.WriteV(ctx, s.db, tenancy.Scope{Tenant: inv.Tenant}, func(tx *tenancy.Tx) (session.Pair, error) {
		row, err := tx.Q.GetInvitationForUpdate(ctx, inv.ID)
		if err != nil {
			return session.Pair{}, err
		}
		if !usable(row.SecretHash, row.UsedAt, row.ExpiresAt, row.Status) {
			return session.Pair{}, bad // used by a concurrent request meanwhile
		}
		if err := passwordsAllowed(ctx, tx.Q, inv.Tenant, row.Role, true); err != nil {
			return session.Pair{}, err
		}
		n, err := tx.Q.ActivateInvitedUser(ctx, db.ActivateInvitedUserParams{ID: row.UserID, PasswordHash: &hash})
		if err != nil {
			return session.Pair{}, err
		}
		if n == 0 {
			return session.Pair{}, bad // no longer invited
		}
		if err := tx.Q.UseInvitation(ctx, inv.ID); err != nil {
			return session.Pair{}, err
		}
		pair, err := s.sessions.Start(ctx, tx.Q, inv.Tenant, row.UserID, auth.Role(row.Role), session.MethodPassword)
		if err != nil {
			return session.Pair{}, err
		}
		tx.ActAs(row.UserID)
		tx.Record(tenancy.Entry{Action: "user.accept_invite", ResourceType: audit.ResourceUser, ResourceID: row.UserID})
		return pair, nil
	})
	if problem.Is(err, problem.NotFound) {
		return nil, bad
	}
	if err != nil {
		return nil, err
	}
	return api.AcceptInvite200JSONResponse(pairToAPI(pair)), nil
}

// passwordsAllowed refuses a password to a user of role when the tenant's SSO configuration
// reserves passwords to owners: an invited user then answers the invitation by signing in
// with SSO, which activates them. hold takes the rule for the rest of the (write) transaction;
// a read's early check does without.
func passwordsAllowed(ctx context.Context, q *db.Queries, tenant uuid.UUID, role string, hold bool) error {
	if role == string(auth.Owner) {
		return nil
	}
	read := func(ctx context.Context, q *db.Queries, _ uuid.UUID) (bool, error) { return q.SSOPasswordLogin(ctx) }
	if hold {
		read = session.PasswordRule
	}
	allowed, err := read(ctx, q, tenant)
	if err != nil || allowed {
		return err
	}
	return problem.New(problem.Forbidden, "This tenant signs in with SSO: answer the invitation by signing in with SSO with the invited email.")
}
