// Package audit names what a tenant's audit log records. Entries are written only through the
// write seam (tenancy.Tx.Record), inside the transaction of the change itself, so the log and
// the data can never disagree.
package audit

import "github.com/google/uuid"

// Actions recorded by the auth flows; resource types are the API's nouns. The CRUD handlers name
// their actions where they make them ("task.create").
const (
	TenantSignup    = "tenant.signup"
	LoginSucceeded  = "auth.login"
	LoginFailed     = "auth.login_failed"
	RefreshReuse    = "auth.refresh_reuse_detected"
	Logout          = "auth.logout"
	SessionRevoked  = "session.revoke"
	APIKeyCreated   = "api_key.create"
	APIKeyRevoked   = "api_key.revoke"
	ResourceTenant  = "tenant"
	ResourceUser    = "user"
	ResourceSession = "session"
	ResourceAPIKey  = "api_key"
)

// Events of the auth flows: each ends credentials that every server instance must stop
// accepting (see tenancy.ReachesEveryServer).
const (
	EventSessionRevoked = "session.revoked"
	EventAPIKeyRevoked  = "api_key.revoked"
)

// RevokedSession is the payload of a session.revoked event: which session, whose, and why
// (logout, revoked, reuse).
func RevokedSession(session, user uuid.UUID, reason string) map[string]any {
	return map[string]any{"id": session, "user_id": user, "reason": reason}
}
