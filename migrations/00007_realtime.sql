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

-- The changes every server instance must apply whatever tenants it serves: revoked sessions and
-- keys, and users' role and status. Only those types, and only ids, role and status.
-- +goose StatementBegin
CREATE FUNCTION auth_events_since(after timestamptz)
RETURNS TABLE (tenant_id uuid, type text, resource_id uuid, user_id uuid, role text, status text, created_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT e.tenant_id, e.type, e.resource_id,
           CASE WHEN e.type = 'user.updated' THEN e.resource_id ELSE (e.payload->>'user_id')::uuid END,
           e.payload->>'role', e.payload->>'status', e.created_at
    FROM public.events e
    WHERE e.created_at > after AND e.type IN ('session.revoked', 'api_key.revoked', 'user.updated')
    ORDER BY e.created_at
    LIMIT 100000
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION auth_events_since(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION auth_events_since(timestamptz) TO tasker_app;

-- Retention: deletes at most max_rows events older than before, across tenants, and says how many.
-- +goose StatementBegin
CREATE FUNCTION prune_events(before timestamptz, max_rows integer)
RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    WITH gone AS (
        DELETE FROM public.events WHERE ctid = ANY (ARRAY(
            SELECT ctid FROM public.events WHERE created_at < before ORDER BY created_at LIMIT max_rows))
        RETURNING 1)
    SELECT count(*) FROM gone
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION prune_events(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION prune_events(timestamptz, integer) TO tasker_app;

-- +goose Down
DROP FUNCTION prune_events(timestamptz, integer);
DROP FUNCTION auth_events_since(timestamptz);
DROP POLICY relay_prune ON events;
DROP POLICY relay_read ON events;
DROP INDEX events_created;
DROP INDEX events_project;
ALTER TABLE events DROP COLUMN actor_user_id;
ALTER TABLE events ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY;
DROP TABLE event_streams;
