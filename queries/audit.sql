-- name: InsertChanges :exec
-- Everything a write queued through the write seam (tenancy.Tx), audit entries and events, in
-- one statement and so one round trip, just before COMMIT. uuid.Nil stands for "none" in the
-- optional uuid columns, since arrays of non-null uuids are what the driver sends.
--
-- The events take the next ids of the tenant's stream; the stream's row stays locked until
-- COMMIT, which is what makes a tenant's ids follow commit order. When channel is not empty the
-- commit also wakes every listening server (NOTIFY is delivered only if the write commits) with
-- "tenant:first:last:auth", auth being 1 when the events include one every server must apply.
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
),
stream AS (
    INSERT INTO event_streams (tenant_id, last_id)
    SELECT sqlc.arg(tenant_id)::uuid, cardinality(sqlc.arg(event_types)::text[])
    WHERE cardinality(sqlc.arg(event_types)::text[]) > 0
    ON CONFLICT (tenant_id) DO UPDATE SET last_id = event_streams.last_id + EXCLUDED.last_id
    RETURNING last_id
),
inserted AS (
    INSERT INTO events (tenant_id, id, actor_user_id, type, resource_type, resource_id, project_id, payload)
    SELECT sqlc.arg(tenant_id)::uuid, s.last_id - cardinality(sqlc.arg(event_types)::text[]) + e.n,
           NULLIF(sqlc.arg(actor_user_id)::uuid, '00000000-0000-0000-0000-000000000000'::uuid), e.type, e.resource_type,
           e.resource_id, NULLIF(e.project_id, '00000000-0000-0000-0000-000000000000'::uuid), e.payload
    FROM stream s,
         (SELECT unnest(sqlc.arg(event_types)::text[]) AS type, unnest(sqlc.arg(event_resource_types)::text[]) AS resource_type,
                 unnest(sqlc.arg(event_resource_ids)::uuid[]) AS resource_id, unnest(sqlc.arg(event_project_ids)::uuid[]) AS project_id,
                 unnest(sqlc.arg(event_payloads)::jsonb[]) AS payload,
                 generate_subscripts(sqlc.arg(event_types)::text[], 1) AS n) AS e
    RETURNING id
)
SELECT pg_notify(sqlc.arg(channel)::text,
                 sqlc.arg(tenant_id)::uuid::text || ':' || min(i.id) || ':' || max(i.id) || ':' || CASE WHEN sqlc.arg(auth)::bool THEN '1' ELSE '0' END)
FROM inserted i
WHERE sqlc.arg(channel)::text <> ''
HAVING count(*) > 0;

-- name: ListEventsAfter :many
-- The tenant's events after id after, up to upto, oldest first; optionally of one project or one
-- resource (the topics' filters).
SELECT id, created_at, actor_user_id, type, resource_type, resource_id, project_id, payload
FROM events
WHERE id > sqlc.arg(after)::bigint AND id <= sqlc.arg(upto)::bigint
  AND (sqlc.narg(project_id)::uuid IS NULL OR project_id = sqlc.narg(project_id)::uuid)
  AND (sqlc.narg(resource_id)::uuid IS NULL OR resource_id = sqlc.narg(resource_id)::uuid)
ORDER BY id
LIMIT sqlc.arg(lim);

-- name: EventStreamBounds :one
-- The tenant stream's newest id and the oldest one retention has kept (0 when none).
SELECT coalesce((SELECT last_id FROM event_streams), 0)::bigint AS last_id,
       coalesce((SELECT min(id) FROM events), 0)::bigint AS oldest_id;

-- name: AuthEventsSince :many
-- Revoked sessions and users' latest standing in every tenant since after, a page after
-- (after_tenant, after_id) (auth_events_since, SECURITY DEFINER).
SELECT a.tenant_id::uuid AS tenant_id, a.id::bigint AS id, a.type::text AS type, a.resource_id::uuid AS resource_id,
       coalesce(a.role, '')::text AS role, coalesce(a.status, '')::text AS status, a.created_at::timestamptz AS created_at
FROM auth_events_since(sqlc.arg(after)::timestamptz, sqlc.arg(after_tenant)::uuid, sqlc.arg(after_id)::bigint,
                       sqlc.arg(max_rows)::integer) AS a;

-- name: PruneEvents :one
-- Deletes up to max_rows events older than before, in every tenant (prune_events, SECURITY DEFINER).
SELECT prune_events(sqlc.arg(before)::timestamptz, sqlc.arg(max_rows)::integer)::bigint AS pruned;

-- name: ListAuditEvents :many
SELECT * FROM audit_events
WHERE (sqlc.narg(action)::text IS NULL OR action = sqlc.narg(action)::text)
  AND (sqlc.narg(resource_type)::text IS NULL OR resource_type = sqlc.narg(resource_type)::text)
  AND (sqlc.narg(resource_id)::uuid IS NULL OR resource_id = sqlc.narg(resource_id)::uuid)
  AND (sqlc.narg(before_created_at)::timestamptz IS NULL
       OR (created_at, id) < (sqlc.narg(before_created_at)::timestamptz, sqlc.narg(before_id)::uuid))
ORDER BY created_at DESC, id DESC
LIMIT sqlc.arg(lim);
