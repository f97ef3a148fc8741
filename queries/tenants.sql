-- name: CreateTenant :one
INSERT INTO tenants (id, slug, name)
VALUES (sqlc.arg(id), sqlc.arg(slug), sqlc.arg(name))
RETURNING *;

-- name: GetTenant :one
SELECT * FROM tenants WHERE id = sqlc.arg(id);
