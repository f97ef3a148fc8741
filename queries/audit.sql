-- name: InsertAuditEvent :exec
INSERT INTO audit_events (tenant_id, id, actor_user_id, actor_key_id, action, resource_type, resource_id, ip, data)
VALUES (sqlc.arg(tenant_id), sqlc.arg(id), sqlc.narg(actor_user_id), sqlc.narg(actor_key_id), sqlc.arg(action),
        sqlc.arg(resource_type), sqlc.narg(resource_id), sqlc.arg(ip), sqlc.arg(data));

-- name: ListAuditEvents :many
SELECT * FROM audit_events
WHERE (sqlc.narg(action)::text IS NULL OR action = sqlc.narg(action)::text)
  AND (sqlc.narg(resource_type)::text IS NULL OR resource_type = sqlc.narg(resource_type)::text)
  AND (sqlc.narg(resource_id)::uuid IS NULL OR resource_id = sqlc.narg(resource_id)::uuid)
  AND (sqlc.narg(before_created_at)::timestamptz IS NULL
       OR (created_at, id) < (sqlc.narg(before_created_at)::timestamptz, sqlc.narg(before_id)::uuid))
ORDER BY created_at DESC, id DESC
LIMIT sqlc.arg(lim);
