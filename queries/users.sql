-- name: CreateUser :one
INSERT INTO users (tenant_id, id, email, name, role, status, password_hash)
VALUES (sqlc.arg(tenant_id), sqlc.arg(id), sqlc.arg(email), sqlc.arg(name), sqlc.arg(role),
        sqlc.arg(status), sqlc.narg(password_hash))
RETURNING *;

-- name: GetUser :one
SELECT * FROM users WHERE id = sqlc.arg(id);
