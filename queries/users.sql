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

-- name: SetUserStatus :execrows
-- Deactivation also ends sessions: refresh checks the status (see GetRefreshTokenForUpdate).
UPDATE users SET status = sqlc.arg(status), updated_at = now() WHERE id = sqlc.arg(id);
