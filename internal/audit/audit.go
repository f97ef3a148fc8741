// Package audit names what a tenant's audit log records. Entries are written only through the
// write seam (tenancy.Tx.Record), inside the transaction of the change itself, so the log and
// the data can never disagree.
package audit

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
