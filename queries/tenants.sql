-- name: CreateTenant :one
INSERT INTO tenants (id, slug, name)
VALUES (sqlc.arg(id), sqlc.arg(slug), sqlc.arg(name))
RETURNING *;

-- name: GetTenant :one
SELECT * FROM tenants WHERE id = sqlc.arg(id);

-- name: AddTenantToDirectory :exec
INSERT INTO tenant_directory (slug, tenant_id) VALUES (sqlc.arg(slug), sqlc.arg(tenant_id));

-- name: LookupTenantBySlug :one
-- Runs before the tenant is known: tenant_directory is the one table without RLS for this.
SELECT tenant_id FROM tenant_directory WHERE slug = sqlc.arg(slug);
