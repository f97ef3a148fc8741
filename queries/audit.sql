-- name: InsertChanges :exec
-- Everything a write queued through the write seam (tenancy.Tx), audit entries and events, in
-- one statement and so one round trip, just before COMMIT. uuid.Nil stands for "none" in the
-- optional uuid columns, since arrays of non-null uuids are what the driver sends.
WITH audit AS (
    INSERT INTO audit_events (tenant_id, id, actor_user_id, actor_key_id, action, resource_type, resource_id, ip, data)
    SELECT sqlc.arg(tenant_id)::uuid, a.id, NULLIF(a.actor_user_id, '00000000-0000-0000-0000-000000000000'::uuid),
           NULLIF(a.actor_key_id, '00000000-0000-0000-0000-000000000000'::uuid), a.action, a.resource_type,
           NULLIF(a.resource_id, '00000000-0000-0000-0000-000000000000'::uuid), a.ip, a.data
    FROM (SELECT unnest(sqlc.arg(audit_ids)::uuid[]) AS id, unnest(sqlc.arg(audit_actor_users)::uuid[]) AS actor_user_id,
                 unnest(sqlc.arg(audit_actor_keys)::uuid[]) AS actor_key_id, unnest(sqlc.arg(audit_actions)::text[]) AS action,
                 unnest(sqlc.arg(audit_resource_types)::text[]) AS resource_type,
                 unnest(sqlc.arg(audit_resource_ids)::uuid[]) AS resource_id, unnest(sqlc.arg(audit_ips)::text[]) AS ip,
                 unnest(sqlc.arg(audit_data)::jsonb[]) AS data) AS a
)
INSERT INTO events (tenant_id, type, resource_type, resource_id, project_id, payload)
SELECT sqlc.arg(tenant_id)::uuid, e.type, e.resource_type, e.resource_id,
       NULLIF(e.project_id, '00000000-0000-0000-0000-000000000000'::uuid), e.payload
FROM (SELECT unnest(sqlc.arg(event_types)::text[]) AS type, unnest(sqlc.arg(event_resource_types)::text[]) AS resource_type,
             unnest(sqlc.arg(event_resource_ids)::uuid[]) AS resource_id, unnest(sqlc.arg(event_project_ids)::uuid[]) AS project_id,
             unnest(sqlc.arg(event_payloads)::jsonb[]) AS payload) AS e;

-- name: ListAuditEvents :many
SELECT * FROM audit_events
WHERE (sqlc.narg(action)::text IS NULL OR action = sqlc.narg(action)::text)
  AND (sqlc.narg(resource_type)::text IS NULL OR resource_type = sqlc.narg(resource_type)::text)
  AND (sqlc.narg(resource_id)::uuid IS NULL OR resource_id = sqlc.narg(resource_id)::uuid)
  AND (sqlc.narg(before_created_at)::timestamptz IS NULL
       OR (created_at, id) < (sqlc.narg(before_created_at)::timestamptz, sqlc.narg(before_id)::uuid))
ORDER BY created_at DESC, id DESC
LIMIT sqlc.arg(lim);
