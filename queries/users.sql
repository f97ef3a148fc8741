-- name: CreateUser :one
INSERT INTO users (tenant_id, id, email, name, role, status, password_hash)
VALUES (sqlc.arg(tenant_id), sqlc.arg(id), sqlc.arg(email), sqlc.arg(name), sqlc.arg(role),
        sqlc.arg(status), sqlc.narg(password_hash))
RETURNING *;

-- name: GetUser :one
SELECT * FROM users WHERE id = sqlc.arg(id);

-- name: GetUserByEmail :one
SELECT * FROM users WHERE lower(email) = lower(sqlc.arg(email));

-- name: GetUserAndTenant :one
SELECT sqlc.embed(users), sqlc.embed(tenants)
FROM users JOIN tenants ON tenants.id = users.tenant_id
WHERE users.id = sqlc.arg(id);

-- name: ListUsers :many
SELECT * FROM users
WHERE sqlc.narg(after_created_at)::timestamptz IS NULL
   OR (created_at, id) > (sqlc.narg(after_created_at)::timestamptz, sqlc.narg(after_id)::uuid)
ORDER BY created_at, id
LIMIT sqlc.arg(lim);

-- name: GetUserForUpdate :one
-- NO KEY UPDATE: the change never touches the key, so foreign-key checks (a login's session, a
-- task's assignee) need not wait for it.
SELECT * FROM users WHERE id = sqlc.arg(id) FOR NO KEY UPDATE;

-- name: LockActiveOwners :many
-- Locks every active owner, so two admins cannot demote the last two owners at once.
SELECT id FROM users WHERE role = 'owner' AND status = 'active' ORDER BY id FOR NO KEY UPDATE;

-- name: UpdateUser :one
UPDATE users SET
    name       = CASE WHEN @set_name::boolean THEN sqlc.arg(name)::text ELSE name END,
    role       = CASE WHEN @set_role::boolean THEN sqlc.arg(role)::text ELSE role END,
    status     = CASE WHEN @set_status::boolean THEN sqlc.arg(status)::text ELSE status END,
    updated_at = now()
WHERE id = sqlc.arg(id)
RETURNING *;

-- name: RevokeUserSessions :many
-- The sessions it ends, each announced to every server (session.revoked).
UPDATE sessions SET revoked_at = now(), revoked_reason = 'user_deactivated'
WHERE user_id = sqlc.arg(user_id) AND revoked_at IS NULL
RETURNING id;

-- name: RevokeUserAPIKeys :many
UPDATE api_keys SET revoked_at = now() WHERE created_by = sqlc.arg(user_id) AND revoked_at IS NULL
RETURNING id;

-- name: CreateInvitation :exec
INSERT INTO invitations (tenant_id, id, user_id, secret_hash, expires_at)
VALUES (sqlc.arg(tenant_id), sqlc.arg(id), sqlc.arg(user_id), sqlc.arg(secret_hash), sqlc.arg(expires_at));

-- name: GetInvitationForUpdate :one
SELECT i.id, i.user_id, i.secret_hash, i.expires_at, i.used_at, u.status, u.role
FROM invitations i JOIN users u ON u.tenant_id = i.tenant_id AND u.id = i.user_id
WHERE i.id = sqlc.arg(id)
-- The user is held too (NO KEY UPDATE, as a role or status change holds it), so a deactivation
-- or role change in flight is waited for and seen, never overtaken by the session started here.
FOR UPDATE OF i FOR NO KEY UPDATE OF u;

-- name: UseInvitation :exec
UPDATE invitations SET used_at = now() WHERE id = sqlc.arg(id);

-- name: ActivateInvitedUser :execrows
UPDATE users SET password_hash = sqlc.arg(password_hash), status = 'active', updated_at = now()
WHERE id = sqlc.arg(id) AND status = 'invited';

-- name: GetInvitation :one
SELECT i.id, i.user_id, i.secret_hash, i.expires_at, i.used_at, u.status, u.role
FROM invitations i JOIN users u ON u.tenant_id = i.tenant_id AND u.id = i.user_id
WHERE i.id = sqlc.arg(id);

-- name: GetActor :one
-- The caller's standing now, read inside every write: an access token's role and validity are a
-- cache of these rows, not the truth. session_live and key_live are true when no session or key
-- is named.
SELECT u.role, u.status,
       (sqlc.narg(session_id)::uuid IS NULL OR EXISTS (
            SELECT 1 FROM sessions s
            WHERE s.id = sqlc.narg(session_id)::uuid AND s.user_id = u.id
              AND s.revoked_at IS NULL AND s.expires_at > now()))::boolean AS session_live,
       (sqlc.narg(api_key_id)::uuid IS NULL OR EXISTS (
            SELECT 1 FROM api_keys k
            WHERE k.id = sqlc.narg(api_key_id)::uuid AND k.created_by = u.id
              AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())))::boolean AS key_live
FROM users u
WHERE u.id = sqlc.arg(user_id);

-- name: GetUserForShare :one
-- The user as a login is about to start a session for them. SHARE waits for a role or status
-- change in flight (it holds NO KEY UPDATE) and makes one that starts now wait for the login, so
-- a session is started before a deactivation (which then ends it) or not at all.
SELECT * FROM users WHERE id = sqlc.arg(id) FOR SHARE;
