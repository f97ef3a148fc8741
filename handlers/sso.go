package handlers

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/audit"
	"github.com/tasker/tasker/internal/auth"
	"github.com/tasker/tasker/internal/authz"
	"github.com/tasker/tasker/internal/problem"
	"github.com/tasker/tasker/internal/secretbox"
	"github.com/tasker/tasker/internal/sso"
	"github.com/tasker/tasker/internal/tenancy"
)

// SSOConfig is what SSO needs: the key that seals client secrets, and which issuers are allowed.
type SSOConfig struct {
	// Box seals the tenants' client secrets; nil answers the SSO endpoints 503.
	Box *secretbox.Box
	// Policy says which issuers may be configured and how they are fetched.
	Policy sso.Policy
	// RedirectURIs are the frontend pages a sign-in may end on, compared exactly; the first
	// also receives the failures whose own frontend is unknown. Empty turns sign-in off.
	RedirectURIs []string
	// StateTTL is how long a started sign-in may take (10 min when zero); CodeTTL is how long
	// its one-time code lasts (60 s when zero).
	StateTTL, CodeTTL time.Duration
	// StartsPerMinute is the sign-ins one client IP may start a minute (60 when zero).
	StartsPerMinute int
}

// withDefaults fills what was left zero.
func (c SSOConfig) withDefaults() SSOConfig {
	if c.StateTTL <= 0 {
		c.StateTTL = 10 * time.Minute
	}
	if c.CodeTTL <= 0 {
		c.CodeTTL = time.Minute
	}
	if c.StartsPerMinute <= 0 {
		c.StartsPerMinute = 60
	}
	return c
}

const resourceSSO = "sso_config"

// GetSSOConfig shows the tenant's provider, never its secret.
func (s *Server) GetSSOConfig(ctx context.Context, _ api.GetSSOConfigRequestObject) (api.GetSSOConfigResponseObject, error) {
	p := principal(ctx)
	out, err := tenancy.ReadV(ctx, s.db, scope(p), func(q *db.Queries) (api.SSOConfig, error) {
		cur, err := auth.Current(ctx, q, p)
		if err != nil {
			return api.SSOConfig{}, err
		}
		if err := authz.ManageTenant(cur, "SSO"); err != nil {
			return api.SSOConfig{}, err
		}
		c, err := q.GetSSOConfig(ctx)
		if err != nil {
			return api.SSOConfig{}, ssoMissing(err)
		}
		byOwner, err := q.SSOSavedByOwner(ctx)
		return ssoToAPI(c, byOwner), err
	})
	if err != nil {
		return nil, err
	}
	return api.GetSSOConfig200JSONResponse(out), nil
}

// PutSSOConfig checks the issuer by its discovery document, then stores the configuration with
// the client secret sealed.
func (s *Server) PutSSOConfig(ctx context.Context, req api.PutSSOConfigRequestObject) (api.PutSSOConfigResponseObject, error) {
	if s.sso.Box == nil {
		return nil, problem.New(problem.Unavailable, "SSO is not configured on this server.")
	}
	b := req.Body
	domains, err := ssoDomains(b.AllowedDomains)
	if err != nil {
		return nil, err
	}
	p := principal(ctx)
	// The role is checked before the server fetches anything on the caller's behalf.
	if _, err := tenancy.ReadV(ctx, s.db, scope(p), func(q *db.Queries) (struct{}, error) {
		cur, err := auth.Current(ctx, q, p)
		if err != nil {
			return struct{}{}, err
		}
		return struct{}{}, authz.ManageTenant(cur, "SSO")
	}); err != nil {
		return nil, err
	}
	if _, err := s.sso.Policy.Discover(ctx, b.Issuer); err != nil {
		return nil, &problem.Error{Kind: problem.Unprocessable, Detail: "The issuer cannot be used: " + err.Error() + ".",
			Fields: []problem.FieldError{{Field: "issuer", In: "body", Message: err.Error()}}}
	}
	passwordLogin := true
	if b.PasswordLogin != nil {
		passwordLogin = *b.PasswordLogin
	}
	out, err := writeV(ctx, s, p, func(tx *tenancy.Tx, p auth.Principal) (api.SSOConfig, error) {
		if err := authz.ManageTenant(p, "SSO"); err != nil {
			return api.SSOConfig{}, err
		}
		// Ordered with password sign-ins in flight (SSOPasswordLogin), so the revocation below
		// sees every password session started under the old rule.
		if err := tx.Q.LockPasswordRule(ctx, p.Tenant); err != nil {
			return api.SSOConfig{}, err
		}
		var sealed []byte
		if b.ClientSecret != nil {
			sealed = s.sso.Box.Seal([]byte(*b.ClientSecret), p.Tenant[:])
		} else {
			prev, err := tx.Q.GetSSOConfig(ctx)
			if errors.Is(err, pgx.ErrNoRows) {
				return api.SSOConfig{}, problem.Fields("The client secret is required the first time.",
					problem.FieldError{Field: "client_secret", In: "body", Message: "required when SSO is not configured yet"})
			}
			if err != nil {
				return api.SSOConfig{}, err
			}
			sealed = prev.ClientSecretSealed
		}
		row, err := tx.Q.PutSSOConfig(ctx, db.PutSSOConfigParams{
			TenantID: p.Tenant, Issuer: b.Issuer, ClientID: b.ClientId, ClientSecretSealed: sealed,
			AllowedDomains: domains, DefaultRole: string(b.DefaultRole), PasswordLogin: passwordLogin,
			SavedBy: &p.User,
		})
		if err != nil {
			return api.SSOConfig{}, err
		}
		out := ssoToAPI(row, p.Role == auth.Owner)
		if !row.PasswordLogin {
			// Passwords are owners' only from now on: the others' password sessions end, on
			// every instance (session.revoked), as a deactivation ends sessions.
			ended, err := tx.Q.RevokePasswordSessions(ctx)
			if err != nil {
				return api.SSOConfig{}, err
			}
			for _, e := range ended {
				tx.Changed(audit.EventSessionRevoked, tenancy.Entry{Action: audit.SessionRevoked, ResourceType: audit.ResourceSession, ResourceID: e.ID,
					Data: map[string]any{"reason": "sso_required"}}, uuid.Nil, audit.RevokedSession(e.ID, e.UserID, "revoked"))
			}
		}
		tx.Record(tenancy.Entry{Action: "sso.config_update", ResourceType: resourceSSO, ResourceID: p.Tenant, Data: map[string]any{
			"issuer": row.Issuer, "client_id": row.ClientID, "allowed_domains": row.AllowedDomains,
			"default_role": row.DefaultRole, "password_login": row.PasswordLogin, "client_secret_changed": b.ClientSecret != nil,
			"saved_by_owner": p.Role == auth.Owner,
		}})
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	return api.PutSSOConfig200JSONResponse(out), nil
}

// DeleteSSOConfig turns SSO off; users it provisioned stay.
func (s *Server) DeleteSSOConfig(ctx context.Context, _ api.DeleteSSOConfigRequestObject) (api.DeleteSSOConfigResponseObject, error) {
	err := s.write(ctx, principal(ctx), func(tx *tenancy.Tx, p auth.Principal) error {
		if err := authz.ManageTenant(p, "SSO"); err != nil {
			return err
		}
		n, err := tx.Q.DeleteSSOConfig(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			return problem.New(problem.NotFound, "SSO is not configured for this tenant.")
		}
		tx.Record(tenancy.Entry{Action: "sso.config_delete", ResourceType: resourceSSO, ResourceID: p.Tenant})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return api.DeleteSSOConfig204Response{}, nil
}

func ssoMissing(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return problem.New(problem.NotFound, "SSO is not configured for this tenant.")
	}
	return err
}

// ssoDomains lower-cases, trims and de-duplicates the allowed domains; each must be a domain
// name with a dot (a bare "com" would allow half the internet).
func ssoDomains(in []string) ([]string, error) {
	var out []string
	for i, d := range in {
		d = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
		if !strings.Contains(d, ".") || strings.HasPrefix(d, ".") || strings.HasPrefix(d, "-") || strings.Contains(d, "..") {
			return nil, problem.Fields("An allowed domain is not a domain name.", problem.FieldError{
				Field: "allowed_domains." + strconv.Itoa(i), In: "body", Message: "want a domain such as example.com"})
		}
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out, nil
}

// ssoToAPI is the named converter of a stored configuration: the secret never leaves.
// byOwner is whether an active owner saved it last.
func ssoToAPI(c db.SsoConfig, byOwner bool) api.SSOConfig {
	return api.SSOConfig{
		Issuer: c.Issuer, ClientId: c.ClientID, ClientSecretSet: len(c.ClientSecretSealed) > 0,
		AllowedDomains: c.AllowedDomains, DefaultRole: api.SSORole(c.DefaultRole), PasswordLogin: c.PasswordLogin, SavedByOwner: byOwner,
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
	}
}
