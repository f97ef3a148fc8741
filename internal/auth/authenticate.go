package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/routers"
	"github.com/google/uuid"

	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/problem"
	"github.com/tasker/tasker/internal/tenancy"
	"github.com/tasker/tasker/internal/tokens"
)

// Authenticator verifies bearer credentials for operations that require them.
type Authenticator struct {
	issuer  *tokens.Issuer
	db      *tenancy.DB
	revoked *Revocations
	now     func() time.Time
}

// NewAuthenticator returns an Authenticator; API keys are looked up through d, and access tokens
// checked against revoked (nil: against nothing but their signature and claims).
func NewAuthenticator(issuer *tokens.Issuer, d *tenancy.DB, revoked *Revocations) *Authenticator {
	return &Authenticator{issuer: issuer, db: d, revoked: revoked, now: time.Now}
}

// Unauthenticated is a 401 problem carrying the RFC 6750 WWW-Authenticate challenge.
func Unauthenticated(code, detail string) *problem.Error {
	pe := problem.New(problem.Unauthenticated, "%s", detail)
	pe.Header = http.Header{"Www-Authenticate": {fmt.Sprintf(`Bearer realm="tasker", error=%q, error_description=%q`, code, detail)}}
	return pe
}

// MinRoleExtension is the OpenAPI operation extension naming the lowest role allowed to call it.
const MinRoleExtension = "x-min-role"

// APIKeysExtension set to false on an operation refuses API keys: only a signed-in user may call it.
const APIKeysExtension = "x-api-keys"

// Authenticate is the contract package's hook: for an operation with a security requirement it
// verifies the bearer credential and the operation's minimum role, and returns the request with
// the principal in its context. Public operations pass through untouched.
func (a *Authenticator) Authenticate(r *http.Request, route *routers.Route) (*http.Request, error) {
	security := route.Operation.Security
	if security == nil {
		security = &route.Spec.Security
	}
	if len(*security) == 0 {
		return r, nil
	}
	credential, err := BearerCredential(r.Header.Get("Authorization"))
	if err != nil {
		return nil, err
	}
	p, err := a.Credential(r.Context(), credential)
	if err != nil {
		return nil, err
	}
	if p.Method == ByAPIKey && route.Operation.Extensions[APIKeysExtension] == false {
		// Each such operation would let a key outlive its own revocation: minting keys, creating
		// users it knows the credentials of, ending sessions.
		return nil, problem.New(problem.Forbidden, "This operation needs a signed-in user; API keys cannot call it.")
	}
	ctx := WithPrincipal(r.Context(), p)
	if min, ok := route.Operation.Extensions[MinRoleExtension].(string); ok {
		if !p.Role.AtLeast(Role(min)) {
			return nil, problem.New(problem.Forbidden, "This operation needs the %s role or higher.", min)
		}
		ctx = withMinRole(ctx, Role(min))
	}
	return r.WithContext(ctx), nil
}

// BearerCredential returns the credential of an Authorization header, or the 401 to answer.
func BearerCredential(header string) (string, error) {
	scheme, credential, found := strings.Cut(header, " ")
	if header == "" {
		return "", Unauthenticated("invalid_request", "This operation needs an Authorization: Bearer header.")
	}
	if !found || !strings.EqualFold(scheme, "Bearer") || credential == "" {
		return "", Unauthenticated("invalid_request", "The Authorization header must be: Bearer <token>.")
	}
	return credential, nil
}

// Credential verifies a bearer credential, an access token or an API key, and returns whom it
// acts for. Failures are 401 problems.
func (a *Authenticator) Credential(ctx context.Context, credential string) (Principal, error) {
	if strings.HasPrefix(credential, string(tokens.APIKey)+"_") {
		return a.apiKey(ctx, credential)
	}
	return a.accessToken(credential)
}

func (a *Authenticator) accessToken(tok string) (Principal, error) {
	invalid := Unauthenticated("invalid_token", "The access token is invalid or expired.")
	c, err := a.issuer.Verify(tok)
	if err != nil {
		return Principal{}, invalid
	}
	user, _ := uuid.Parse(c.Subject) // Verify checked it parses
	role := Role(c.Role)
	if !role.Valid() {
		return Principal{}, invalid
	}
	if a.revoked != nil {
		var ok bool
		if role, ok = a.revoked.Check(user, c.SessionID, role, c.IssuedAt.Time); !ok {
			return Principal{}, Unauthenticated("invalid_token", "The session of this access token has ended.")
		}
	}
	return Principal{Tenant: c.TenantID, User: user, Role: role, Method: ByAccessToken, Session: c.SessionID, Expires: c.ExpiresAt.Time}, nil
}

// touchEvery limits last_used_at writes for API keys to one a minute per key.
const touchEvery = time.Minute

func (a *Authenticator) apiKey(ctx context.Context, credential string) (Principal, error) {
	invalid := Unauthenticated("invalid_token", "The API key is invalid, expired or revoked.")
	key, err := tokens.ParseOpaque(tokens.APIKey, credential)
	if err != nil {
		return Principal{}, invalid
	}
	var p Principal
	var touch bool
	err = a.db.Read(ctx, tenancy.Scope{Tenant: key.Tenant}, func(q *db.Queries) error {
		row, err := q.GetActiveAPIKey(ctx, key.ID)
		if err != nil {
			return err
		}
		if !key.Matches(row.SecretHash) {
			return errMismatch
		}
		touch = row.LastUsedAt == nil || a.now().Sub(*row.LastUsedAt) > touchEvery
		p = Principal{
			Tenant: key.Tenant, User: row.CreatedBy, Method: ByAPIKey, APIKey: key.ID, Expires: deref(row.ExpiresAt),
			// A key never acts above its creator's current role.
			Role: Lower(Role(row.Role), Role(row.UserRole)),
		}
		return nil
	})
	if err == nil && touch {
		err = a.db.Write(ctx, tenancy.Scope{Tenant: key.Tenant}, func(tx *tenancy.Tx) error { return tx.Q.TouchAPIKey(ctx, key.ID) })
	}
	if errors.Is(err, errMismatch) || problem.Is(err, problem.NotFound) {
		return Principal{}, invalid
	}
	if err != nil {
		return Principal{}, fmt.Errorf("api key: %w", err)
	}
	return p, nil
}

var errMismatch = errors.New("credential secret mismatch")

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
