// Package auth decides who a request acts as: it verifies the bearer credential (an access
// token or an API key), puts the resulting Principal in the context, and enforces the minimum
// role an operation declares (x-min-role in the OpenAPI document).
package auth

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// Role is a user's or key's role in its tenant.
type Role string

const (
	Viewer Role = "viewer"
	Member Role = "member"
	Admin  Role = "admin"
	Owner  Role = "owner"
)

var rank = map[Role]int{Viewer: 1, Member: 2, Admin: 3, Owner: 4}

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return rank[r] > 0 }

// AtLeast reports whether r is min or above; unknown roles are below everything.
func (r Role) AtLeast(min Role) bool { return rank[r] > 0 && rank[r] >= rank[min] }

// Lower returns the lesser of two roles.
func Lower(a, b Role) Role {
	if rank[a] <= rank[b] {
		return a
	}
	return b
}

// Method is how a principal authenticated.
type Method string

const (
	ByAccessToken Method = "access_token"
	ByAPIKey      Method = "api_key"
)

// Principal is the authenticated caller.
type Principal struct {
	Tenant  uuid.UUID
	User    uuid.UUID
	Role    Role
	Method  Method
	Session uuid.UUID // set for access tokens
	APIKey  uuid.UUID // set for API keys
	// Expires is when the credential stops being valid; zero for an API key without expiry.
	Expires time.Time
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the request's principal; ok is false on public operations.
func FromContext(ctx context.Context) (p Principal, ok bool) {
	p, ok = ctx.Value(principalKey{}).(Principal)
	return p, ok
}
