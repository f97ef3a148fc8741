-- name: GetSSOConfig :one
SELECT * FROM sso_configs;

-- name: PutSSOConfig :one
INSERT INTO sso_configs AS c (tenant_id, issuer, client_id, client_secret_sealed, allowed_domains, default_role, password_login, saved_by)
VALUES (sqlc.arg(tenant_id), sqlc.arg(issuer), sqlc.arg(client_id), sqlc.arg(client_secret_sealed), sqlc.arg(allowed_domains)::text[],
        sqlc.arg(default_role), sqlc.arg(password_login), sqlc.arg(saved_by))
ON CONFLICT (tenant_id) DO UPDATE SET
    issuer = EXCLUDED.issuer, client_id = EXCLUDED.client_id, client_secret_sealed = EXCLUDED.client_secret_sealed,
    allowed_domains = EXCLUDED.allowed_domains, default_role = EXCLUDED.default_role,
    password_login = EXCLUDED.password_login, saved_by = EXCLUDED.saved_by, updated_at = now()
RETURNING *;

-- name: DeleteSSOConfig :execrows
DELETE FROM sso_configs;

-- name: SSOPasswordLogin :one
-- Whether people other than owners may sign in with a password (true without SSO). Read it
-- through session.PasswordRule, after SharePasswordRule.
SELECT COALESCE((SELECT password_login FROM sso_configs), true)::boolean AS allowed;

-- name: SharePasswordRule :exec
-- Orders a password sign-in with a change of the rule (LockPasswordRule), so that no password
-- session starts unseen by the revocation such a change makes. A statement of its own: a read
-- in the same statement would keep the snapshot taken before the wait.
SELECT pg_advisory_xact_lock_shared(7217, hashtext(sqlc.arg(tenant_id)::uuid::text));

-- name: LockPasswordRule :exec
SELECT pg_advisory_xact_lock(7217, hashtext(sqlc.arg(tenant_id)::uuid::text));

-- name: LockSSOConfigForSignIn :one
-- The configuration a sign-in is admitted under, held until it commits, and whether an active
-- owner saved it last.
SELECT c.issuer, c.client_id, c.allowed_domains, c.default_role, EXISTS (
    SELECT 1 FROM users u WHERE u.tenant_id = c.tenant_id AND u.id = c.saved_by AND u.role = 'owner' AND u.status = 'active'
) AS saved_by_owner
FROM sso_configs c FOR SHARE OF c;

-- name: CreateSSOState :exec
INSERT INTO sso_states (tenant_id, id, secret_hash, browser_hash, nonce, code_verifier, issuer, client_id,
                        callback_url, redirect_uri, app_state, expires_at)
VALUES (sqlc.arg(tenant_id), sqlc.arg(id), sqlc.arg(secret_hash), sqlc.arg(browser_hash), sqlc.arg(nonce),
        sqlc.arg(code_verifier), sqlc.arg(issuer), sqlc.arg(client_id), sqlc.arg(callback_url),
        sqlc.arg(redirect_uri), sqlc.narg(app_state), sqlc.arg(expires_at));

-- name: PruneSSOFlows :exec
-- Expired states and codes of the tenant; kept a while past expiry so a replay is told apart.
WITH s AS (DELETE FROM sso_states WHERE sso_states.expires_at < sqlc.arg(before)::timestamptz)
DELETE FROM sso_codes WHERE sso_codes.expires_at < sqlc.arg(before)::timestamptz;

-- name: GetSSOStateForUpdate :one
SELECT * FROM sso_states WHERE id = sqlc.arg(id) FOR UPDATE;

-- name: UseSSOState :exec
UPDATE sso_states SET used_at = now() WHERE id = sqlc.arg(id);

-- name: GetSSOIdentityUser :one
SELECT sqlc.embed(users), i.vouched_client FROM sso_identities i
JOIN users ON users.tenant_id = i.tenant_id AND users.id = i.user_id
WHERE i.issuer = sqlc.arg(issuer) AND i.subject = sqlc.arg(subject)
FOR NO KEY UPDATE OF users;

-- name: GetUserByEmailForUpdate :one
SELECT * FROM users WHERE lower(email) = lower(sqlc.arg(email)) FOR NO KEY UPDATE;

-- name: CreateSSOIdentity :exec
INSERT INTO sso_identities (tenant_id, issuer, subject, user_id, email, vouched_client)
VALUES (sqlc.arg(tenant_id), sqlc.arg(issuer), sqlc.arg(subject), sqlc.arg(user_id), sqlc.arg(email), sqlc.narg(vouched_client));

-- name: TouchSSOIdentity :exec
UPDATE sso_identities SET email = sqlc.arg(email), vouched_client = COALESCE(sqlc.narg(vouched_client), vouched_client), last_login_at = now()
WHERE issuer = sqlc.arg(issuer) AND subject = sqlc.arg(subject);

-- name: CreateSSOCode :exec
INSERT INTO sso_codes (tenant_id, id, secret_hash, user_id, expires_at)
VALUES (sqlc.arg(tenant_id), sqlc.arg(id), sqlc.arg(secret_hash), sqlc.arg(user_id), sqlc.arg(expires_at));

-- name: GetSSOCodeForUpdate :one
SELECT * FROM sso_codes WHERE id = sqlc.arg(id) FOR UPDATE;

-- name: UseSSOCode :exec
UPDATE sso_codes SET used_at = now(), session_id = sqlc.arg(session_id) WHERE id = sqlc.arg(id);

-- name: SSOSavedByOwner :one
-- Whether whoever saved the configuration last is an active owner now.
SELECT EXISTS (
    SELECT 1 FROM sso_configs c JOIN users u ON u.tenant_id = c.tenant_id AND u.id = c.saved_by
    WHERE u.role = 'owner' AND u.status = 'active'
);

-- name: RevokePasswordSessions :many
-- Ends the password sessions of everyone but owners, when passwords become owners' only.
UPDATE sessions s SET revoked_at = now(), revoked_reason = 'revoked'
FROM users u
WHERE u.tenant_id = s.tenant_id AND u.id = s.user_id AND u.role <> 'owner'
  AND s.method = 'password' AND s.revoked_at IS NULL
RETURNING s.id, s.user_id;

-- name: RevokeUserPasswordSessions :many
-- Ends a user's password sessions (an owner demoted while passwords are owners' only).
UPDATE sessions SET revoked_at = now(), revoked_reason = 'revoked'
WHERE user_id = sqlc.arg(user_id) AND method = 'password' AND revoked_at IS NULL
RETURNING id;

-- name: EndUserSSOSessions :many
-- Ends a user's SSO sessions and unused SSO codes (a promotion to owner: each was admitted
-- without the owner check).
WITH codes AS (
    UPDATE sso_codes SET expires_at = LEAST(expires_at, now()) WHERE sso_codes.user_id = sqlc.arg(user_id) AND used_at IS NULL
)
UPDATE sessions SET revoked_at = now(), revoked_reason = 'revoked'
WHERE sessions.user_id = sqlc.arg(user_id) AND method = 'sso' AND revoked_at IS NULL
RETURNING id;
