-- Outbound webhook deliveries. The dispatcher reads each tenant's events after its webhook
-- cursor, stores one delivery per event and matching endpoint, queues a River job that names
-- only the delivery, and advances the cursor, all in one transaction: a crash at any point
-- either redoes the whole step or leaves it done. A tenant's event ids are gap-free and in
-- commit order (event_streams), so a cursor per tenant never skips an event.

-- +goose Up

ALTER TABLE webhook_endpoints
    -- Events up to this id of the tenant's stream predate the endpoint (or its last enabling)
    -- and are not sent to it: a disabled endpoint gets nothing, even later.
    ADD COLUMN after_event_id bigint NOT NULL DEFAULT 0,
    -- The first failed attempt since the last success; the endpoint is disabled once it is
    -- older than WEBHOOK_DISABLE_AFTER.
    ADD COLUMN failing_since timestamptz;

-- How far each tenant's events have been turned into deliveries.
CREATE TABLE webhook_streams (
    tenant_id     uuid   PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    last_event_id bigint NOT NULL CHECK (last_event_id >= 0)
);

-- One message to one endpoint: an event, a test ping, retried until it succeeds or gives up.
CREATE TABLE webhook_deliveries (
    tenant_id        uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- webhook-id is msg_ and this id, the same on every attempt, so receivers can deduplicate.
    id               uuid        NOT NULL,
    endpoint_id      uuid        NOT NULL,
    -- The event of the tenant's stream; NULL for a test ping.
    event_id         bigint,
    event_type       text        NOT NULL,
    -- The body, fixed when the delivery is made, so every attempt sends the same bytes.
    payload          jsonb       NOT NULL,
    status           text        NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'succeeded', 'failed', 'canceled')),
    attempts         integer     NOT NULL DEFAULT 0,
    -- The attempt count at which this round of retries gives up (a redelivery starts a round).
    attempts_allowed integer     NOT NULL CHECK (attempts_allowed > 0),
    next_attempt_at  timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, endpoint_id) REFERENCES webhook_endpoints (tenant_id, id) ON DELETE CASCADE,
    -- A dispatcher that runs a step twice cannot send an event twice.
    UNIQUE (tenant_id, endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_listing ON webhook_deliveries (tenant_id, endpoint_id, created_at DESC, id DESC);
CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at);

CREATE TABLE webhook_attempts (
    tenant_id   uuid        NOT NULL,
    delivery_id uuid        NOT NULL,
    n           integer     NOT NULL CHECK (n > 0),
    started_at  timestamptz NOT NULL,
    duration_ms integer     NOT NULL CHECK (duration_ms >= 0),
    -- NULL when no HTTP answer came (refused address, timeout, connection error).
    status_code integer,
    error       text        CHECK (octet_length(error) <= 1000),
    PRIMARY KEY (tenant_id, delivery_id, n),
    FOREIGN KEY (tenant_id, delivery_id) REFERENCES webhook_deliveries (tenant_id, id) ON DELETE CASCADE
);

-- Attempts in flight to an endpoint, across every server: a worker takes a lease before it
-- posts and drops it after; a crashed worker's lease ends by itself at expires_at.
CREATE TABLE webhook_leases (
    tenant_id   uuid        NOT NULL,
    endpoint_id uuid        NOT NULL,
    id          uuid        NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, endpoint_id, id),
    FOREIGN KEY (tenant_id, endpoint_id) REFERENCES webhook_endpoints (tenant_id, id) ON DELETE CASCADE
);

ALTER TABLE webhook_streams ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_streams FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhook_streams
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
ALTER TABLE webhook_deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_deliveries FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhook_deliveries
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
ALTER TABLE webhook_attempts ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_attempts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhook_attempts
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
ALTER TABLE webhook_leases ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_leases FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhook_leases
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

-- What webhook_backlog below may read, as the owner that runs it.
CREATE POLICY webhook_backlog ON event_streams FOR SELECT TO tasker_owner USING (true);
CREATE POLICY webhook_backlog ON webhook_streams FOR SELECT TO tasker_owner USING (true);
CREATE POLICY webhook_backlog ON webhook_endpoints FOR SELECT TO tasker_owner USING (true);

-- The tenants whose events the dispatcher has not turned into deliveries yet (those with an
-- enabled endpoint and events past their cursor): ids only. The dispatcher then works on each
-- under its own tenant. It is how a dispatcher catches up after a crash or a lost wake-up.
-- +goose StatementBegin
CREATE FUNCTION webhook_backlog(max_rows integer)
RETURNS TABLE (tenant_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT s.tenant_id
    FROM public.event_streams s
    LEFT JOIN public.webhook_streams w ON w.tenant_id = s.tenant_id
    WHERE s.last_id > coalesce(w.last_event_id, 0)
      AND EXISTS (SELECT FROM public.webhook_endpoints e WHERE e.tenant_id = s.tenant_id AND e.enabled)
    ORDER BY s.tenant_id
    LIMIT least(max_rows, 10000)
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION webhook_backlog(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION webhook_backlog(integer) TO tasker_app;

-- +goose Down
DROP FUNCTION webhook_backlog(integer);
DROP POLICY webhook_backlog ON webhook_endpoints;
DROP POLICY webhook_backlog ON webhook_streams;
DROP POLICY webhook_backlog ON event_streams;
DROP TABLE webhook_leases;
DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_streams;
ALTER TABLE webhook_endpoints DROP COLUMN failing_since, DROP COLUMN after_event_id;
