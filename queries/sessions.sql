-- name: CreateSession :one
INSERT INTO sessions (tenant_id, id, user_id, expires_at, user_agent, ip, method)
VALUES (sqlc.arg(tenant_id), sqlc.arg(id), sqlc.arg(user_id), sqlc.arg(expires_at), sqlc.arg(user_agent), sqlc.arg(ip), sqlc.arg(method))
RETURNING *;

-- name: CreateRefreshToken :exec
INSERT INTO refresh_tokens (tenant_id, id, session_id, secret_hash)
VALUES (sqlc.arg(tenant_id), sqlc.arg(id), sqlc.arg(session_id), sqlc.arg(secret_hash));

-- name: GetRefreshTokenForUpdate :one
-- Locks the token so concurrent refreshes of it run one after the other; the session and user
-- come along so one round trip decides whether the refresh may proceed.
SELECT rt.id, rt.session_id, rt.secret_hash, rt.used_at, rt.successor_id, rt.successor_sealed,
       successor.used_at AS successor_used_at,
       s.user_id, s.expires_at, s.last_used_at, s.revoked_at,
       u.role, u.status
FROM refresh_tokens rt
JOIN sessions s ON s.tenant_id = rt.tenant_id AND s.id = rt.session_id
JOIN users u ON u.tenant_id = s.tenant_id AND u.id = s.user_id
LEFT JOIN refresh_tokens successor ON successor.tenant_id = rt.tenant_id AND successor.id = rt.successor_id
WHERE rt.id = sqlc.arg(id)
FOR UPDATE OF rt;

-- name: RotateRefreshToken :exec
-- Retires the presented token, issues its successor and marks the session used, in one statement.
-- successor_sealed is the successor's secret encrypted under a key derived from the retired
-- token's secret: only a client holding that secret can recover it, inside the grace window.
WITH retired AS (
    UPDATE refresh_tokens SET used_at = now(), successor_id = sqlc.arg(successor_id),
                              successor_sealed = sqlc.arg(successor_sealed)
    WHERE refresh_tokens.id = sqlc.arg(id) AND used_at IS NULL
    RETURNING tenant_id, session_id
), issued AS (
    INSERT INTO refresh_tokens (tenant_id, id, session_id, secret_hash)
    SELECT tenant_id, sqlc.arg(successor_id), session_id, sqlc.arg(successor_hash) FROM retired
)
UPDATE sessions SET last_used_at = now()
FROM retired WHERE sessions.tenant_id = retired.tenant_id AND sessions.id = retired.session_id;

-- name: RevokeSession :execrows
UPDATE sessions SET revoked_at = now(), revoked_reason = sqlc.arg(reason)
WHERE id = sqlc.arg(id) AND revoked_at IS NULL;

-- name: RevokeUserSession :execrows
UPDATE sessions SET revoked_at = now(), revoked_reason = sqlc.arg(reason)
WHERE id = sqlc.arg(id) AND user_id = sqlc.arg(user_id) AND revoked_at IS NULL;

-- name: GetSessionOfRefreshToken :one
SELECT s.id, s.user_id, rt.secret_hash
FROM refresh_tokens rt JOIN sessions s ON s.tenant_id = rt.tenant_id AND s.id = rt.session_id
WHERE rt.id = sqlc.arg(id);

-- name: ListUserSessions :many
SELECT * FROM sessions
WHERE user_id = sqlc.arg(user_id) AND revoked_at IS NULL AND expires_at > now()
  AND last_used_at > sqlc.arg(active_since)
  AND (sqlc.narg(before_created_at)::timestamptz IS NULL
       OR (created_at, id) < (sqlc.narg(before_created_at)::timestamptz, sqlc.narg(before_id)::uuid))
ORDER BY created_at DESC, id DESC
LIMIT sqlc.arg(lim);

-- name: RotateActiveRefreshToken :one
-- The common case of a refresh in one statement: when the presented token is current, its
-- secret hash matches, and its session and user are live, retire it, issue its successor and
-- mark the session used. No row means "not the common case": the caller then looks closer
-- (grace window, reuse, or simply invalid) with GetRefreshTokenForUpdate.
-- A successful rotation commits without waiting for the WAL flush (synchronous_commit off for
-- this transaction only): a database crash can then lose the last moments of rotations, whose
-- clients simply sign in again, and it cannot make any token valid that was not. Waiting for
-- the flush caps rotations at about 1,400/s on a 2-core machine; see docs/performance.md.
WITH retired AS (
    UPDATE refresh_tokens rt
    SET used_at = now(), successor_id = sqlc.arg(successor_id), successor_sealed = sqlc.arg(successor_sealed)
    FROM sessions s, users u
    WHERE rt.id = sqlc.arg(id) AND rt.secret_hash = sqlc.arg(secret_hash) AND rt.used_at IS NULL
      AND s.tenant_id = rt.tenant_id AND s.id = rt.session_id
      AND s.revoked_at IS NULL AND s.expires_at > now() AND s.last_used_at > sqlc.arg(active_since)
      AND u.tenant_id = s.tenant_id AND u.id = s.user_id AND u.status = 'active'
    RETURNING rt.tenant_id, rt.session_id, s.user_id, u.role
), issued AS (
    INSERT INTO refresh_tokens (tenant_id, id, session_id, secret_hash)
    SELECT tenant_id, sqlc.arg(successor_id), session_id, sqlc.arg(successor_hash) FROM retired
), touched AS (
    UPDATE sessions SET last_used_at = now()
    FROM retired WHERE sessions.tenant_id = retired.tenant_id AND sessions.id = retired.session_id
)
SELECT session_id, user_id, role, set_config('synchronous_commit', 'off', true) AS async_commit FROM retired;
