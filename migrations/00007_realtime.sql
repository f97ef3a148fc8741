-- Realtime: per-tenant event ids in commit order, the actor of each event, and the two narrow
-- SECURITY DEFINER functions through which the relay reaches across tenants.

-- +goose Up

-- The newest event id of each tenant's stream. A write takes its ids here as the last statement
-- before COMMIT and holds the row lock until COMMIT, so a tenant's ids are gap-free and in commit
-- order: whoever has seen id N has seen everything before it. A rolled-back write gives its ids
-- back.
CREATE TABLE event_streams (
    tenant_id uuid   PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    last_id   bigint NOT NULL CHECK (last_id >= 0)
);
ALTER TABLE event_streams ENABLE ROW LEVEL SECURITY;
ALTER TABLE event_streams FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON event_streams
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

-- The owner reads past FORCE only for this copy, then FORCE is back.
ALTER TABLE events NO FORCE ROW LEVEL SECURITY;
INSERT INTO event_streams (tenant_id, last_id) SELECT tenant_id, max(id) FROM events GROUP BY tenant_id;
ALTER TABLE events FORCE ROW LEVEL SECURITY;

ALTER TABLE events ALTER COLUMN id DROP IDENTITY;
ALTER TABLE events ADD COLUMN actor_user_id uuid;
-- Project topics replay by project; retention prunes by age.
CREATE INDEX events_project ON events (tenant_id, project_id, id) WHERE project_id IS NOT NULL;
CREATE INDEX events_created ON events (created_at);

-- Rows the two functions below may touch: the functions are owned by tasker_owner and run as it,
-- and these policies are for that role alone; the application role still sees one tenant.
CREATE POLICY relay_read ON events FOR SELECT TO tasker_owner USING (true);
CREATE POLICY relay_prune ON events FOR DELETE TO tasker_owner USING (true);

-- The changes every server instance must apply whatever tenants it serves, since after (at most
-- a day back): revoked sessions, and each user's latest role and status. Only ids, role and
-- status; paged by (tenant_id, id), which for one tenant is commit order.
-- +goose StatementBegin
CREATE FUNCTION auth_events_since(after timestamptz, after_tenant uuid, after_id bigint, max_rows integer)
RETURNS TABLE (tenant_id uuid, id bigint, type text, resource_id uuid, role text, status text, created_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT x.tenant_id, x.id, x.type, x.resource_id, x.role, x.status, x.created_at
    FROM ((SELECT DISTINCT ON (e.tenant_id, e.resource_id) e.tenant_id, e.id, e.type, e.resource_id,
                  e.payload->>'role' AS role, e.payload->>'status' AS status, e.created_at
           FROM public.events e
           WHERE e.type = 'user.updated' AND e.created_at > greatest(after, now() - interval '1 day')
           ORDER BY e.tenant_id, e.resource_id, e.id DESC)
          UNION ALL
          (SELECT e.tenant_id, e.id, e.type, e.resource_id, NULL, NULL, e.created_at
           FROM public.events e
           WHERE e.type = 'session.revoked' AND e.created_at > greatest(after, now() - interval '1 day'))) AS x
    WHERE (x.tenant_id, x.id) > (after_tenant, after_id)
    ORDER BY x.tenant_id, x.id
    LIMIT least(max_rows, 10000)
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION auth_events_since(timestamptz, uuid, bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION auth_events_since(timestamptz, uuid, bigint, integer) TO tasker_app;

-- Retention: deletes at most max_rows events older than before, across tenants, and says how
-- many. Never anything younger than an hour, whatever before says: the application role calls
-- it, and must not be able to empty every tenant's replay history at once.
-- +goose StatementBegin
CREATE FUNCTION prune_events(before timestamptz, max_rows integer)
RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    WITH gone AS (
        DELETE FROM public.events WHERE ctid = ANY (ARRAY(
            SELECT ctid FROM public.events WHERE created_at < least(before, now() - interval '1 hour')
            ORDER BY created_at LIMIT least(max_rows, 100000)))
        RETURNING 1)
    SELECT count(*) FROM gone
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION prune_events(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION prune_events(timestamptz, integer) TO tasker_app;

-- +goose Down
DROP FUNCTION prune_events(timestamptz, integer);
DROP FUNCTION auth_events_since(timestamptz, uuid, bigint, integer);
DROP POLICY relay_prune ON events;
DROP POLICY relay_read ON events;
DROP INDEX events_created;
DROP INDEX events_project;
ALTER TABLE events DROP COLUMN actor_user_id;
ALTER TABLE events ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY;
DROP TABLE event_streams;
