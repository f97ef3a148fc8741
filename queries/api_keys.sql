-- name: CreateAPIKey :one
INSERT INTO api_keys (tenant_id, id, created_by, name, role, secret_hash, prefix, expires_at)
VALUES (sqlc.arg(tenant_id), sqlc.arg(id), sqlc.arg(created_by), sqlc.arg(name), sqlc.arg(role),
        sqlc.arg(secret_hash), sqlc.arg(prefix), sqlc.narg(expires_at))
RETURNING *;

-- name: ListAPIKeys :many
SELECT * FROM api_keys
WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
  AND (sqlc.narg(before_created_at)::timestamptz IS NULL
       OR (created_at, id) < (sqlc.narg(before_created_at)::timestamptz, sqlc.narg(before_id)::uuid))
ORDER BY created_at DESC, id DESC
LIMIT sqlc.arg(lim);

-- name: RevokeAPIKey :one
-- Revokes a live key and names its creator's role, for the rule that only owners touch what
-- owners made; the caller rolls back when that rule says no.
WITH revoked AS (
    UPDATE api_keys k SET revoked_at = now() WHERE k.id = sqlc.arg(id) AND k.revoked_at IS NULL
    RETURNING k.created_by
)
SELECT u.role AS creator_role FROM revoked JOIN users u ON u.id = revoked.created_by;

-- name: GetActiveAPIKey :one
-- The key's creator must still be active: a deactivated user's keys stop working.
SELECT k.id, k.secret_hash, k.role, k.created_by, k.last_used_at, k.expires_at, u.role AS user_role
FROM api_keys k JOIN users u ON u.tenant_id = k.tenant_id AND u.id = k.created_by
WHERE k.id = sqlc.arg(id) AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())
  AND u.status = 'active';

-- name: TouchAPIKey :exec
UPDATE api_keys SET last_used_at = now() WHERE id = sqlc.arg(id);
