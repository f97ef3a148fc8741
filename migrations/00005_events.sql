-- The outbox: every write that changes what clients see stores its event here, in the write's
-- own transaction, next to its audit entry. The realtime relay delivers them in id order.

-- +goose Up
CREATE TABLE events (
    tenant_id     uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- Monotonic across tenants in the order ids are taken, which is not the order transactions
    -- commit: a reader of "id > N" can pass an id whose transaction commits later. The realtime
    -- relay must read gap-safely (for example only below the oldest transaction still running).
    id            bigint      GENERATED ALWAYS AS IDENTITY,
    created_at    timestamptz NOT NULL DEFAULT now(),
    type          text        NOT NULL,
    resource_type text        NOT NULL,
    resource_id   uuid        NOT NULL,
    -- The project the resource belongs to, for project topics; not a foreign key, since the
    -- event of a deletion outlives its project.
    project_id    uuid,
    -- The resource exactly as REST returns it, built inside the transaction.
    payload       jsonb       NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
REVOKE UPDATE, DELETE ON events FROM tasker_app;

ALTER TABLE events ENABLE ROW LEVEL SECURITY;
ALTER TABLE events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON events
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

-- +goose Down
DROP TABLE events;
