-- name: LockWebhookEndpoints :exec
-- Orders the tenant's endpoint creations, so the count that follows (a statement of its own,
-- with a snapshot taken after the wait) sees every endpoint committed before.
SELECT pg_advisory_xact_lock(7218, hashtext(sqlc.arg(tenant_id)::uuid::text));

-- name: CountWebhookEndpoints :one
SELECT count(*) FROM webhook_endpoints;

-- name: CreateWebhookEndpoint :one
INSERT INTO webhook_endpoints (tenant_id, id, url, description, event_types, enabled, secret_sealed, created_by)
VALUES (sqlc.arg(tenant_id), sqlc.arg(id), sqlc.arg(url), sqlc.arg(description), sqlc.arg(event_types)::text[],
        sqlc.arg(enabled), sqlc.arg(secret_sealed), sqlc.arg(created_by))
RETURNING *;

-- name: ListWebhookEndpoints :many
SELECT * FROM webhook_endpoints
WHERE sqlc.narg(before_created_at)::timestamptz IS NULL
   OR (created_at, id) < (sqlc.narg(before_created_at)::timestamptz, sqlc.narg(before_id)::uuid)
ORDER BY created_at DESC, id DESC
LIMIT sqlc.arg(lim);

-- name: GetWebhookEndpoint :one
SELECT * FROM webhook_endpoints WHERE id = sqlc.arg(id);

-- name: UpdateWebhookEndpoint :one
-- A partial update; enabling an endpoint clears the reason the server disabled it.
UPDATE webhook_endpoints SET
    url = COALESCE(sqlc.narg(url), url),
    description = COALESCE(sqlc.narg(description), description),
    event_types = COALESCE(sqlc.narg(event_types)::text[], event_types),
    enabled = COALESCE(sqlc.narg(enabled), enabled),
    disabled_reason = CASE WHEN sqlc.narg(enabled)::boolean THEN NULL ELSE disabled_reason END,
    updated_at = now()
WHERE id = sqlc.arg(id)
RETURNING *;

-- name: DeleteWebhookEndpoint :execrows
DELETE FROM webhook_endpoints WHERE id = sqlc.arg(id);

-- name: RotateWebhookSecret :one
-- The new secret signs from now on; the current one keeps signing too until previous_until.
UPDATE webhook_endpoints SET
    previous_secret_sealed = secret_sealed, previous_secret_expires_at = sqlc.arg(previous_until),
    secret_sealed = sqlc.arg(secret_sealed), updated_at = now()
WHERE id = sqlc.arg(id)
RETURNING *;
